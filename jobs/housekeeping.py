"""Housekeeping: keep operational tables from growing without bound."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from jobs.context import JobContext
from jobs.registry import JobSpec, register

JOB_RUN_RETENTION = timedelta(days=90)


def prune_job_runs(ctx: JobContext) -> dict[str, Any]:
    """Delete job-run records older than the retention period."""
    with ctx.unit_of_work() as session:
        result = session.execute(sa.text("DELETE FROM job_runs WHERE started_at < :cutoff AND status <> 'running'"),
                                 {"cutoff": ctx.as_of - JOB_RUN_RETENTION})
        session.commit()
    deleted = int(getattr(result, "rowcount", 0) or 0)
    ctx.log.info("pruned %d job runs older than %s", deleted, JOB_RUN_RETENTION)
    return {"deleted": deleted}


register(JobSpec(name="prune-job-runs", func=prune_job_runs, description=prune_job_runs.__doc__ or "",
                 schedule={"hour": 4, "minute": 10}))
