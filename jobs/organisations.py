"""Group-customer jobs: family points pools."""

from __future__ import annotations

from typing import Any

from domain.organisations import service as organisations
from jobs.context import JobContext
from jobs.registry import JobSpec, register


def pool_points(ctx: JobContext) -> dict[str, Any]:
    """Move pool members' available points into their pool owner's account (after release-points), one
    transaction per pool; the as-of date keys the transfers, so a re-run moves nothing twice."""
    with ctx.unit_of_work() as session:
        pools = organisations.pool_ids(session)
    ctx.progress.start(len(pools))
    totals = {"points_pooled": 0, "contributors": 0}
    for pool_id in pools:
        with ctx.unit_of_work() as session:
            counts = organisations.sweep_pool(session, pool_id=pool_id, sweep_key=ctx.as_of.date().isoformat(),
                                              now=ctx.as_of)
            session.commit()
        totals = {k: totals[k] + counts[k] for k in totals}
        ctx.progress.advance()
    return totals


register(JobSpec(name="pool-points", func=pool_points, description=pool_points.__doc__ or "",
                 schedule={"hour": 1, "minute": 15}))
