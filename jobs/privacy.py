"""Retention: personal data past its retention period goes (``docs/operations.md``, Privacy)."""

from __future__ import annotations

from typing import Any

from domain.privacy import service as privacy
from domain.privacy.rules import RetentionPolicy
from domain.settings import get_settings
from jobs.context import JobContext
from jobs.registry import JobSpec, register

CHUNK_ROWS = 5_000
"""Rows of each kind per transaction: short locks on the access log and touches while the API writes them."""


def retention_policy() -> RetentionPolicy:
    settings = get_settings()
    return RetentionPolicy(access_log_days=settings.retention_access_log_days,
                           touch_content_days=settings.retention_touch_content_days,
                           closed_member_days=settings.retention_closed_member_days)


def privacy_retention(ctx: JobContext) -> dict[str, Any]:
    """Delete access-log entries and touch contents past retention; erase members closed long ago."""
    policy = retention_policy()
    totals = {"access_log_deleted": 0, "delivery_attempts_deleted": 0, "touches_scrubbed": 0, "members_erased": 0}
    ctx.progress.start(None)
    while True:
        with ctx.unit_of_work() as session:
            counts = privacy.apply_retention(session, policy=policy, as_of=ctx.as_of, limit=CHUNK_ROWS)
            session.commit()
        totals = {k: totals[k] + counts[k] for k in totals}
        done = sum(counts.values())
        ctx.progress.advance(done)
        if not any(counts[k] >= CHUNK_ROWS for k in counts):
            return totals


register(JobSpec(name="privacy-retention", func=privacy_retention, description=privacy_retention.__doc__ or "",
                 schedule={"hour": 4, "minute": 30}))
