"""Campaign sending: launched campaigns' audiences go through the contact gate in batches."""

from __future__ import annotations

from typing import Any

from domain.campaigns import service as campaigns
from domain.campaigns.models import Campaign
from jobs.context import JobContext
from jobs.registry import JobSpec, register


def send_campaigns(ctx: JobContext) -> dict[str, Any]:
    """Request a gated touch for every not-yet-sent member of launched campaigns."""
    total = in_sql = 0
    limit = int(ctx.options.get("batch", 2000))
    read: dict[int, Campaign] = {}  # each campaign read once a run, not once a batch
    # One connection for the run's batches, each its own transaction: no pool checkout and pre-ping per batch.
    with ctx.connection() as connection:
        while True:
            with ctx.unit_of_work(connection) as session:
                done = campaigns.send_batch(session, now=ctx.as_of, limit=limit, campaigns_read=read)
                session.commit()
            total, in_sql = total + done.requested, in_sql + done.decided_in_sql
            # A short batch found nothing more to claim: what it skipped is another runner's, locked, and sent by
            # it (or, if that runner fails, by the next run). No empty batch to find that out.
            if done.requested < limit:
                return {"requested": total, "decided_in_sql": in_sql}


register(JobSpec(name="send-campaigns", func=send_campaigns, description=send_campaigns.__doc__ or "",
                 schedule={"minute": "*"}, exclusive=False))
