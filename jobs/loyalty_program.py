"""Nightly loyalty-program jobs: release pending points, expire points, evaluate tiers, settle rebates.

Each is set-based SQL over a range of member ids per transaction (one chunk failing does not undo the
others) and idempotent: re-running at the same ``as_of`` changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from sqlmodel import Session

from domain.organisations import service as organisations
from domain.points import expiring
from domain.points import service as points
from domain.rebates import service as rebates
from domain.settings import get_settings
from domain.tiers import service as tiers
from jobs.context import JobContext
from jobs.registry import JobSpec, register


def _chunks(ctx: JobContext, bounds: Callable[[Session], tuple[int, int]]) -> Iterator[tuple[int, int]]:
    with ctx.unit_of_work() as session:
        lo, hi = bounds(session)
    ctx.progress.start(max(0, hi - lo + 1))
    chunk = get_settings().job_chunk_members
    start = lo
    while start <= hi:
        end = min(hi, start + chunk - 1)
        yield start, end
        ctx.progress.advance(end - start + 1)
        start = end + 1


def _over_lots(ctx: JobContext, step: Callable[..., tuple[int, int]]) -> tuple[int, int]:
    """Run a points step chunk by chunk, one transaction each; returns (lots, points) in total."""
    lots = total = 0
    for member_range in _chunks(ctx, points.member_id_bounds):
        with ctx.unit_of_work() as session:
            n, p = step(session, as_of=ctx.as_of, member_range=member_range, now=ctx.as_of)
            session.commit()
        lots, total = lots + n, total + p
    return lots, total


def release_points(ctx: JobContext) -> dict[str, Any]:
    """Make points available once their order's return window has closed; they pay any debt first."""
    lots, total = _over_lots(ctx, points.release_due_points)
    return {"lots_released": lots, "points_released": total}


def expire_points(ctx: JobContext) -> dict[str, Any]:
    """Expire what is left of lots past their expiry date, oldest first; then announce the points expiring
    within the window (``points.expiring_soon``, once per member and expiry day)."""
    lots, total = _over_lots(ctx, points.expire_due_points)
    if total:
        ctx.log.info("expired %d points in %d lots", total, lots)
    notices, soon = _over_lots(ctx, expiring.record_expiring_soon)
    return {"lots_expired": lots, "points_expired": total, "expiring_soon_notices": notices,
            "points_expiring_soon": soon}


def tier_evaluation(ctx: JobContext) -> dict[str, Any]:
    """Re-evaluate every member's tier: upgrades the ladder now grants, grace clocks, one-step downgrades;
    then the treatment shared through organisations and families (a removed link's benefit ends here)."""
    totals = {"upgrades": 0, "downgrades": 0, "in_grace": 0}
    for member_range in _chunks(ctx, tiers.member_id_bounds):
        with ctx.unit_of_work() as session:
            counts = tiers.evaluate_tiers(session, as_of=ctx.as_of, member_range=member_range, now=ctx.as_of)
            session.commit()
        totals = {k: totals[k] + counts[k] for k in totals}
    ctx.log.info("tiers: %(upgrades)d upgraded, %(downgrades)d downgraded, %(in_grace)d in grace", totals)
    shared = {"shared_held": 0, "shared_removed": 0, "shared_served_tier_changed": 0}
    for member_range in _chunks(ctx, organisations.member_id_bounds):
        with ctx.unit_of_work() as session:
            counts = organisations.evaluate_shared_treatment(session, as_of=ctx.as_of, member_range=member_range,
                                                             now=ctx.as_of)
            session.commit()
        shared = {k: shared[k] + counts[k] for k in shared}
    return {**totals, **shared}


def settle_rebates(ctx: JobContext) -> dict[str, Any]:
    """Settle every active rebate program for the last completed quarter, once per member."""
    with ctx.unit_of_work() as session:
        rebates.ensure_default_program(session)
        session.commit()
        programs = rebates.active_programs(session)
    totals = {"settled": 0, "coupon_value_fen": 0}
    for program in programs:
        for member_range in _chunks(ctx, tiers.member_id_bounds):
            with ctx.unit_of_work() as session:
                counts = rebates.settle_program(session, program=program, as_of=ctx.as_of, member_range=member_range,
                                                now=ctx.as_of)
                session.commit()
            totals = {k: totals[k] + counts[k] for k in totals}
    return totals


register(JobSpec(name="release-points", func=release_points, description=release_points.__doc__ or "",
                 schedule={"hour": 1, "minute": 0}))
register(JobSpec(name="expire-points", func=expire_points, description=expire_points.__doc__ or "",
                 schedule={"hour": 1, "minute": 30}))
register(JobSpec(name="tier-evaluation", func=tier_evaluation, description=tier_evaluation.__doc__ or "",
                 schedule={"hour": 2, "minute": 0}))
register(JobSpec(name="settle-rebates", func=settle_rebates, description=settle_rebates.__doc__ or "",
                 schedule={"hour": 3, "minute": 0}))

