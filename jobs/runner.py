"""Runs one job: takes its advisory lock, records the run, reports progress, never lets it run twice at once."""

from __future__ import annotations

import logging
import os
import socket
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.engine import Engine

from domain import telemetry
from domain.clock import ensure_aware, utcnow
from domain.db import advisory_unlock, try_advisory_lock, unit_of_work
from domain.operations.models import JobRunStatus
from domain.operations.service import finish_job_run, start_job_run
from jobs.context import JobContext, Progress
from jobs.registry import JOBS, load_all

log = logging.getLogger("jobs")


@dataclass
class RunOutcome:
    job: str
    run_id: int
    status: JobRunStatus
    counts: dict[str, Any]
    error: str | None = None


def run_job(name: str, *, engine: Engine, as_of: datetime | None = None, trigger: str = "manual",
            on_progress: Callable[[int, int | None], None] | None = None,
            options: dict[str, Any] | None = None) -> RunOutcome:
    """Run job ``name`` at ``as_of`` (default now). A job already running elsewhere is recorded as skipped."""
    load_all()
    spec = JOBS.get(name)
    if spec is None:
        raise KeyError(name)
    as_of = ensure_aware(as_of) if as_of else utcnow()
    job_log = logging.getLogger(f"jobs.{name}")
    host, pid = socket.gethostname(), os.getpid()

    # The lock lives on its own connection for the whole run, so the job's own commits do not release it,
    # and a killed process releases it when PostgreSQL notices the connection is gone.
    with engine.connect() as lock_conn:
        locked = try_advisory_lock(lock_conn, f"job:{name}") if spec.exclusive else True
        lock_conn.commit()
        with unit_of_work(engine) as session:
            run = start_job_run(session, job=name, as_of=as_of, trigger=trigger, host=host, pid=pid, now=utcnow(),
                                status=JobRunStatus.RUNNING if locked else JobRunStatus.SKIPPED)
            session.commit()
            run_id = run.id
        assert run_id is not None
        if not locked:
            job_log.warning("skipped: another process is running %s", name)
            return RunOutcome(name, run_id, JobRunStatus.SKIPPED, {})
        started = time.monotonic()
        structlog.contextvars.bind_contextvars(job=name, run_id=run_id)
        try:
            ctx = JobContext(engine=engine, as_of=as_of, log=job_log, progress=Progress(on_progress),
                             options=options or {})
            job_log.info("started (as_of=%s, run=%d)", as_of.isoformat(), run_id)
            counts = spec.func(ctx) or {}
            status, error = JobRunStatus.SUCCEEDED, None
            job_log.info("finished: %s", ", ".join(f"{k}={v}" for k, v in counts.items()) or "nothing to do")
        except Exception as exc:  # a failed job is recorded, not lost; the scheduler carries on
            counts, status = {}, JobRunStatus.FAILED
            error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            job_log.exception("failed: %s", error)
        finally:
            structlog.contextvars.unbind_contextvars("job", "run_id")
            if spec.exclusive:
                advisory_unlock(lock_conn, f"job:{name}")
                lock_conn.commit()
        telemetry.count_job_run(name, status.value, time.monotonic() - started, counts)
        with unit_of_work(engine) as session:
            finish_job_run(session, run_id=run_id, status=status, counts=counts, error=error, now=utcnow())
            session.commit()
        return RunOutcome(name, run_id, status, counts, error)
