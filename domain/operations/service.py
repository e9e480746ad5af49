"""Job-run records."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from domain.operations.models import JobRun, JobRunStatus
from domain.paging import Page, keyset_page


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


def running_job_runs(session: Session, *, job: str | None = None) -> list[JobRun]:
    """Runs recorded as running (their process may be gone: see ``jobs.runner.abandon_orphaned_runs``)."""
    query = select(JobRun).where(JobRun.status == JobRunStatus.RUNNING)
    if job:
        query = query.where(JobRun.job == job)
    return list(session.exec(query.order_by(JobRun.id)))  # type: ignore[arg-type]


def abandon_job_run(session: Session, *, run_id: int, reason: str, now: datetime) -> None:
    """Record that a run ended without finishing (still ``running`` only: a run that finished keeps its end)."""
    run = session.get(JobRun, run_id, with_for_update=True)
    if run is not None and run.status == JobRunStatus.RUNNING:
        run.status, run.error, run.finished_at = JobRunStatus.ABANDONED, reason, now
        session.add(run)


def list_job_runs(session: Session, *, job: str | None = None, status: JobRunStatus | None = None,
                  cursor: str | None = None, limit: int = 50) -> Page[JobRun]:
    """Job runs, newest first, optionally of one job or one outcome."""
    runs = JobRun.__table__.c  # type: ignore[attr-defined]
    query = sa.select(JobRun)
    if job:
        query = query.where(runs.job == job)
    if status:
        query = query.where(runs.status == status.value)
    return keyset_page(session, query, order_by=[runs.id], cursor=cursor, limit=limit)
