"""Call-center jobs."""

from __future__ import annotations

from typing import Any

from domain.crm import service as crm
from jobs.context import JobContext
from jobs.registry import JobSpec, register


def recall_leads(ctx: JobContext) -> dict[str, Any]:
    """Return leads not worked within their call list's recall time to the pool."""
    with ctx.unit_of_work() as session:
        recalled = crm.recall_leads(session, as_of=ctx.as_of)
        session.commit()
    if recalled:
        ctx.log.info("recalled %d leads to the pool", recalled)
    return {"recalled": recalled}


register(JobSpec(name="recall-leads", func=recall_leads, description=recall_leads.__doc__ or "",
                 schedule={"minute": "*/15"}))
