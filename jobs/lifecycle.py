"""Lifecycle stage (daily) and the churn early warning (the start of every month), set-based per chunk."""

from __future__ import annotations

from typing import Any

from domain.lifecycle import service as lifecycle
from domain.settings import get_settings
from domain.tiers import service as tiers
from jobs.context import JobContext
from jobs.registry import JobSpec, register


def _over_members(ctx: JobContext, step: Any) -> dict[str, int]:
    with ctx.unit_of_work() as session:
        lo, hi = tiers.member_id_bounds(session)
    ctx.progress.start(max(0, hi - lo + 1))
    chunk = get_settings().job_chunk_members
    totals: dict[str, int] = {}
    start = lo
    while start <= hi:
        end = min(hi, start + chunk - 1)
        with ctx.unit_of_work() as session:
            counts = step(session, as_of=ctx.as_of, member_range=(start, end))
            session.commit()
        totals = {k: totals.get(k, 0) + v for k, v in counts.items()}
        ctx.progress.advance(end - start + 1)
        start = end + 1
    return totals


def refresh_lifecycle(ctx: JobContext) -> dict[str, Any]:
    """Every member's lifecycle stage (onboarding, growth, maturity, decline) as of now."""
    return _over_members(ctx, lifecycle.refresh_lifecycle)


def churn_warning(ctx: JobContext) -> dict[str, Any]:
    """The monthly churn early warning over the three cohorts; the at-risk list for retention calls."""
    return _over_members(ctx, lifecycle.refresh_churn_risk)


register(JobSpec(name="refresh-lifecycle", func=refresh_lifecycle, description=refresh_lifecycle.__doc__ or "",
                 schedule={"hour": 2, "minute": 45}))
register(JobSpec(name="churn-warning", func=churn_warning, description=churn_warning.__doc__ or "",
                 schedule={"day": 1, "hour": 3, "minute": 30}))
