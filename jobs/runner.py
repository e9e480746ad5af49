"""Runs one job: takes its advisory lock, records the run, reports progress, never lets it run twice at once."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.engine import Engine
from sqlmodel import Session

from domain import telemetry
from domain.clock import ensure_aware, utcnow
from domain.db import advisory_unlock, commit_without_flush_wait, try_advisory_lock, unit_of_work
from domain.operations.models import JobRunStatus
from domain.operations.service import abandon_job_run, finish_job_run, running_job_runs, start_job_run
from jobs.context import JobContext, JobStopped, Progress
from jobs.registry import JOBS, load_all

log = logging.getLogger("jobs")


@dataclass
class RunOutcome:
    job: str
    run_id: int
    status: JobRunStatus
    counts: dict[str, Any]
    error: str | None = None


STOP = threading.Event()
"""Set when the process is told to stop (SIGTERM): running jobs abandon at their next chunk boundary."""
ACTIVE: dict[int, str] = {}
"""Runs of this process still going: run id → job name (for a shutdown that cannot wait any longer)."""
_active_lock = threading.Lock()


def _run_lock(run_id: int) -> str:
    return f"job-run:{run_id}"


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
        if locked:
            abandon_orphaned_runs(engine, job=name)
        # The run row is written on the lock connection, and the run's own lock taken in the same transaction:
        # no other process can see it ``running`` without its owner's lock (see abandon_orphaned_runs).
        with Session(bind=lock_conn, expire_on_commit=False) as session:
            run = start_job_run(session, job=name, as_of=as_of, trigger=trigger, host=host, pid=pid, now=utcnow(),
                                status=JobRunStatus.RUNNING if locked else JobRunStatus.SKIPPED)
            run_id = run.id
            assert run_id is not None
            if locked:
                try_advisory_lock(lock_conn, _run_lock(run_id))
            # The run's start is worth keeping only with what follows it: the job's first commit (or the finish
            # record's), synchronous, makes it durable too, and waiting for the disk here was in the run's own time
            # (1-5 ms, hundreds when the disk is busy). A skipped run's record reaches the disk within the WAL
            # writer's delay; a crash before then loses a record of a run that did nothing.
            commit_without_flush_wait(session)
            session.commit()
        if not locked:
            job_log.warning("skipped: another process is running %s", name)
            return RunOutcome(name, run_id, JobRunStatus.SKIPPED, {})
        started = time.monotonic()
        structlog.contextvars.bind_contextvars(job=name, run_id=run_id)
        with _active_lock:
            ACTIVE[run_id] = name
        progress = Progress(on_progress, should_stop=STOP.is_set)
        try:
            try:
                ctx = JobContext(engine=engine, as_of=as_of, log=job_log, progress=progress, options=options or {})
                job_log.info("started (as_of=%s, run=%d)", as_of.isoformat(), run_id)
                if STOP.is_set():
                    raise JobStopped
                counts = spec.func(ctx) or {}
                status, error = JobRunStatus.SUCCEEDED, None
                job_log.info("finished: %s", ", ".join(f"{k}={v}" for k, v in counts.items()) or "nothing to do")
            except JobStopped:
                counts, status = {"done": progress.done}, JobRunStatus.ABANDONED
                error = f"stopped at a chunk boundary after {progress.done} of {progress.total} (process stopping)"
                job_log.warning("abandoned: %s", error)
            except Exception as exc:  # a failed job is recorded, not lost; the scheduler carries on
                counts, status = {}, JobRunStatus.FAILED
                error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
                job_log.exception("failed: %s", error)
            with unit_of_work(engine) as session:
                finish_job_run(session, run_id=run_id, status=status, counts=counts, error=error, now=utcnow())
                session.commit()
        finally:
            # Session-level locks outlive the transaction: release them before the connection goes back to the pool.
            structlog.contextvars.unbind_contextvars("job", "run_id")
            with _active_lock:
                ACTIVE.pop(run_id, None)
            advisory_unlock(lock_conn, _run_lock(run_id))
            if spec.exclusive:
                advisory_unlock(lock_conn, f"job:{name}")
            lock_conn.commit()
        telemetry.count_job_run(name, status.value, time.monotonic() - started, counts)
        return RunOutcome(name, run_id, status, counts, error)


def abandon_orphaned_runs(engine: Engine, *, job: str | None = None) -> list[int]:
    """Mark ``abandoned`` every run still recorded as running whose process is gone (crashed, killed, its
    machine lost). A live run holds its own advisory lock for as long as it runs, so a run whose lock is free
    has no owner; PostgreSQL releases the lock of a dead process when its connection goes."""
    abandoned: list[int] = []
    with engine.connect() as conn:
        with Session(bind=conn) as session:
            candidates = [(r.id, r.host, r.pid) for r in running_job_runs(session, job=job)]
            session.rollback()
        for run_id, host, pid in candidates:
            assert run_id is not None
            if not try_advisory_lock(conn, _run_lock(run_id)):
                continue  # its process is alive and running it
            try:
                with Session(bind=conn) as session:
                    abandon_job_run(session, run_id=run_id, now=utcnow(),
                                    reason=f"its process ({host} pid {pid}) ended without finishing it")
                    session.commit()
                abandoned.append(run_id)
            finally:
                advisory_unlock(conn, _run_lock(run_id))
                conn.commit()
    if abandoned:
        log.warning("marked runs abandoned (their process is gone): %s", abandoned)
    return abandoned


def abandon_active_runs(engine: Engine, reason: str) -> None:
    """A shutdown that cannot wait any longer: record this process's runs as abandoned before it exits (the
    transactions in flight roll back when the process's connections close)."""
    with _active_lock:
        runs = list(ACTIVE)
    if not runs:
        return
    with unit_of_work(engine) as session:
        for run_id in runs:
            abandon_job_run(session, run_id=run_id, reason=reason, now=utcnow())
        session.commit()
    log.warning("abandoned runs %s: %s", runs, reason)
