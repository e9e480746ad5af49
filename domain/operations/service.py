"""Job-run records."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session, select

from domain.operations.models import JobRun, JobRunStatus


def start_job_run(session: Session, *, job: str, as_of: datetime, trigger: str, host: str, pid: int,
                  now: datetime, status: JobRunStatus = JobRunStatus.RUNNING) -> JobRun:
    """Record that a job run began (or was skipped)."""
    run = JobRun(job=job, as_of=as_of, trigger=trigger, status=status, host=host, pid=pid, started_at=now,
                 finished_at=now if status == JobRunStatus.SKIPPED else None)
    session.add(run)
    session.flush()
    return run


def finish_job_run(session: Session, *, run_id: int, status: JobRunStatus, counts: dict[str, Any],
                   error: str | None, now: datetime) -> JobRun:
    """Record how a job run ended."""
    run = session.get(JobRun, run_id)
    assert run is not None
    run.status, run.counts, run.error, run.finished_at = status, counts, error, now
    session.add(run)
    return run


def list_job_runs(session: Session, *, job: str | None = None, limit: int = 50, before_id: int | None = None
                  ) -> list[JobRun]:
    """Newest runs first."""
    query = select(JobRun)
    if job:
        query = query.where(JobRun.job == job)
    if before_id:
        query = query.where(JobRun.id < before_id)  # type: ignore[operator]
    return list(session.exec(query.order_by(JobRun.id.desc()).limit(limit)))  # type: ignore[union-attr]
