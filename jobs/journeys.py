"""Journey jobs: enroll (set-based), mark dormant, greet on care dates, run due steps through the gate."""

from __future__ import annotations

from typing import Any

from domain.journeys import service as journeys
from jobs.context import JobContext
from jobs.registry import JobSpec, register


def enroll_journeys(ctx: JobContext) -> dict[str, Any]:
    """Enroll new members in the welcome journey and newly dormant ones in reactivation."""
    with ctx.unit_of_work() as session:
        journeys.ensure_builtin_journeys(session, now=ctx.as_of)
        welcome = journeys.enroll_new_members(session, as_of=ctx.as_of)
        reactivation = journeys.enroll_dormant_members(session, as_of=ctx.as_of)
        session.commit()
    return {"enrolled_on_join": welcome, "enrolled_on_dormancy": reactivation}


def mark_dormant(ctx: JobContext) -> dict[str, Any]:
    """Members with no purchase for the dormancy period become dormant and enter reactivation."""
    with ctx.unit_of_work() as session:
        journeys.ensure_builtin_journeys(session, now=ctx.as_of)
        dormant = journeys.mark_dormant(session, as_of=ctx.as_of)
        enrolled = journeys.enroll_dormant_members(session, as_of=ctx.as_of)
        session.commit()
    ctx.log.info("%d members became dormant", dormant)
    return {"dormant": dormant, "enrolled": enrolled}


def care_greetings(ctx: JobContext) -> dict[str, Any]:
    """Enroll members whose birthday or holiday greeting time has come in their own timezone."""
    with ctx.unit_of_work() as session:
        journeys.ensure_builtin_journeys(session, now=ctx.as_of)
        enrolled = journeys.enroll_care_dates(session, as_of=ctx.as_of)
        session.commit()
    return {"enrolled": enrolled}


def run_journeys(ctx: JobContext) -> dict[str, Any]:
    """Record conversions, then execute due journey steps in batches, one journey at a time: a journey that
    fails is recorded as failed in this run's counts and the others carry on (parallel runners share work)."""
    totals: dict[str, Any] = {}
    failed: dict[str, str] = {}
    with ctx.unit_of_work() as session:
        totals["converted_set_based"] = journeys.record_conversions(session, as_of=ctx.as_of)
        session.commit()
    with ctx.unit_of_work() as session:
        runnable = journeys.runnable_journeys(session)
    for journey_id, key in runnable:
        try:
            while True:
                with ctx.unit_of_work() as session:
                    counts = journeys.run_due_steps(session, as_of=ctx.as_of, journey_id=journey_id,
                                                    limit=int(ctx.options.get("batch", 500)))
                    session.commit()
                for name, value in counts.items():
                    totals[name] = totals.get(name, 0) + value
                if not any(counts.values()):
                    break
        except Exception as exc:  # one journey's fault must not stop the others' members
            ctx.log.exception("journey %s failed in this run", key)
            failed[key] = f"{type(exc).__name__}: {exc}"[:500]
    if failed:
        totals["failed_journeys"] = failed
    return totals


register(JobSpec(name="enroll-journeys", func=enroll_journeys, description=enroll_journeys.__doc__ or "",
                 schedule={"minute": "*/10"}))
register(JobSpec(name="mark-dormant", func=mark_dormant, description=mark_dormant.__doc__ or "",
                 schedule={"hour": 2, "minute": 30}))
register(JobSpec(name="care-greetings", func=care_greetings, description=care_greetings.__doc__ or "",
                 schedule={"minute": 5}))
# Not exclusive: runners claim enrollments with SKIP LOCKED; steps are unique per enrollment.
register(JobSpec(name="run-journeys", func=run_journeys, description=run_journeys.__doc__ or "",
                 schedule={"minute": "*/5"}, exclusive=False))
