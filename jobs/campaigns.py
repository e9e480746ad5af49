"""Campaign sending: launched campaigns' audiences go through the contact gate in batches."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextvars import copy_context
from typing import Any

from domain.campaigns import service as campaigns
from domain.campaigns.models import Campaign
from domain.settings import get_settings
from jobs.context import JobContext
from jobs.registry import JobSpec, register


def send_campaigns(ctx: JobContext) -> dict[str, Any]:
    """Request a gated touch for every not-yet-sent member of launched campaigns."""
    settings = get_settings()
    limit = int(ctx.options.get("batch", settings.campaign_send_batch))
    workers = int(ctx.options.get("workers", settings.campaign_send_worker_count()))
    if workers == 1:
        requested, in_sql = _send(ctx, limit)
    else:
        # The work is the database's (one statement a batch); a batch's Python runs while the others' statements do.
        # Workers share the audience as two runs would (the claim's SKIP LOCKED); each copies the run's log context.
        with ThreadPoolExecutor(workers, thread_name_prefix="send-campaigns") as pool:
            done = [f.result() for f in [pool.submit(copy_context().run, _send, ctx, limit) for _ in range(workers)]]
        requested, in_sql = sum(r for r, _ in done), sum(s for _, s in done)
    return {"requested": requested, "decided_in_sql": in_sql}


def _send(ctx: JobContext, limit: int) -> tuple[int, int]:
    """One worker: batches until one comes back short. Returns (taken through the gate, of them decided in SQL)."""
    total = in_sql = 0
    read: dict[int, Campaign] = {}  # each campaign read once a worker, not once a batch
    # One connection for the worker's batches, each its own transaction: no pool checkout and pre-ping per batch.
    with ctx.connection() as connection:
        while True:
            with ctx.unit_of_work(connection) as session:
                done = campaigns.send_batch(session, now=ctx.as_of, limit=limit, campaigns_read=read)
                session.commit()
            total, in_sql = total + done.requested, in_sql + done.decided_in_sql
            # A short batch found nothing more to claim: what it skipped is another worker's or runner's, locked,
            # and sent by it (or, if that one fails, by the next run). No empty batch to find that out.
            if done.requested < limit:
                return total, in_sql


register(JobSpec(name="send-campaigns", func=send_campaigns, description=send_campaigns.__doc__ or "",
                 schedule={"minute": "*"}, exclusive=False))
