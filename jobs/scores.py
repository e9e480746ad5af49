"""Channel usage and preference jobs: derive usage facts from the product's records, refresh the scores."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from domain.scores import rules
from domain.scores import service as scores
from domain.settings import get_settings
from jobs.context import JobContext
from jobs.registry import JobSpec, register


def derive_channel_usage(ctx: JobContext) -> dict[str, Any]:
    """Derive channel usage facts for the last few days (option ``days``, default 3; ``--as-of`` to backfill)."""
    days = int(ctx.options.get("days", 3))
    end = ctx.as_of.date()
    with ctx.unit_of_work() as session:
        scores.allow_long_statements(session)
        written = scores.derive_usage_facts(session, start=end - timedelta(days=days), end=end, now=ctx.as_of)
        session.commit()
    return {"facts_written": written}


def score_channels(ctx: JobContext) -> dict[str, Any]:
    """Score every member's channel preference over the last 6 months (entropy method; logistic model without
    history), storing the scores and the model."""
    settings = get_settings()
    as_of = ctx.as_of.date()
    with ctx.unit_of_work() as session:
        scores.allow_long_statements(session)
        start, _ = rules.scoring_window(as_of, settings.score_window_months)
        # The window's facts first, so a member's latest orders and calls are in their scores.
        derived = scores.derive_usage_facts(session, start=start, end=as_of, now=ctx.as_of)
        counts = scores.score_members(session, as_of=as_of, seed=int(ctx.options.get("seed", settings.score_seed)),
                                      now=ctx.as_of)
        session.commit()
    return {**counts, "facts_derived": derived}


register(JobSpec(name="derive-channel-usage", func=derive_channel_usage,
                 description=derive_channel_usage.__doc__ or "", schedule={"hour": 0, "minute": 40}))
register(JobSpec(name="score-channels", func=score_channels, description=score_channels.__doc__ or "",
                 schedule={"day_of_week": "mon", "hour": 4, "minute": 30}))
