"""Lifecycle stages and the churn early warning: set-based refreshes and the pieces other concepts use."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlmodel import Session, col

from domain.lifecycle import rules
from domain.lifecycle.models import ChurnRisk, MemberLifecycle
from domain.organisations import service as organisations
from domain.settings import get_settings

STAGES = rules.STAGES


def policy() -> rules.LifecyclePolicy:
    return rules.policy_from_settings(get_settings())


def term_ends_sql() -> str:
    """(member_id, term_ends_on): when each member's contract or term ends, the "term ending soon" signal —
    today the organisations' contracts (issue #21's query piece, the earliest end among the member's
    organisations); another source of terms joins here. Parameter ``:as_of``."""
    return ("SELECT member_id, min(term_ends_at) AS term_ends_on "
            f"FROM ({organisations.term_ends_at_sql()}) terms GROUP BY member_id")


ACTIVITY_SQL = """
SELECT m.id AS member_id,
       CAST(floor(extract(epoch FROM (:as_of - m.joined_at)) / 86400) AS int) AS tenure_days,
       CAST(:today AS date) - greatest(u.last_day, CAST(timezone(:tz, m.last_purchase_at) AS date)) AS idle_days,
       CAST(coalesce(u.recent, 0) AS int) AS recent,
       CAST(coalesce(u.before, 0) AS int) AS before,
       CAST((SELECT count(*) FROM complaints c WHERE c.member_id = m.id AND c.opened_at >= :complaints_since
             AND c.opened_at < :as_of) AS int) AS complaints,
       CAST(terms.term_ends_on AS date) - CAST(:today AS date) AS term_ends_in_days
FROM members m
LEFT JOIN ({term_ends}) terms ON terms.member_id = m.id
LEFT JOIN (SELECT member_id, sum(transactions) FILTER (WHERE day >= :recent_start) AS recent,
                  sum(transactions) FILTER (WHERE day < :recent_start) AS before, max(day) AS last_day
           FROM channel_usage_facts WHERE day >= :before_start AND day < :today AND member_id BETWEEN :lo AND :hi
           GROUP BY member_id) u
  ON u.member_id = m.id
WHERE m.status <> 'closed' AND m.joined_at <= :as_of AND m.id BETWEEN :lo AND :hi
"""


def activity(*, as_of: datetime, member_range: tuple[int, int]) -> tuple[sa.Subquery, dict[str, Any]]:
    """Every member's ``rules.Activity`` as of ``as_of``, as a subquery (one row per member in the id range)
    with its parameters. Activity is channel usage facts (purchases included once derived) and purchases."""
    p = policy()
    today = as_of.date()
    query = sa.text(ACTIVITY_SQL.format(term_ends=term_ends_sql())).columns(
        sa.column("member_id", sa.Integer), sa.column("tenure_days", sa.Integer),
        sa.column("idle_days", sa.Integer), sa.column("recent", sa.Integer), sa.column("before", sa.Integer),
        sa.column("complaints", sa.Integer), sa.column("term_ends_in_days", sa.Integer))
    params = {"as_of": as_of, "today": today, "tz": get_settings().program_timezone,
              "recent_start": today - timedelta(days=p.recency_scale_days),
              "before_start": today - timedelta(days=2 * p.recency_scale_days),
              "complaints_since": as_of - timedelta(days=get_settings().complaint_cooldown_days),
              "lo": member_range[0], "hi": member_range[1]}
    return query.subquery("activity"), params


def refresh_lifecycle(session: Session, *, as_of: datetime, member_range: tuple[int, int]) -> dict[str, int]:
    """Store every member's lifecycle stage as of ``as_of``; idempotent. Returns members per stage."""
    a, params = activity(as_of=as_of, member_range=member_range)
    stage = rules.lifecycle_stage_sql(a.c, policy())
    rows = sa.select(a.c.member_id, stage.label("stage"), sa.literal(as_of.date(), sa.Date))
    stmt = insert(MemberLifecycle).from_select(["member_id", "stage", "as_of"], rows)
    stmt = stmt.on_conflict_do_update(index_elements=["member_id"],
                                      set_={"stage": stmt.excluded.stage, "as_of": stmt.excluded.as_of})
    written = stmt.returning(col(MemberLifecycle.stage)).cte("written")
    counts = dict(session.execute(sa.select(written.c.stage, sa.func.count()).group_by(written.c.stage),
                                  params).tuples().all())
    return {s: int(counts.get(s, 0)) for s in rules.STAGES}


def month_start(as_of: datetime) -> date:
    return as_of.date().replace(day=1)


def refresh_churn_risk(session: Session, *, as_of: datetime, member_range: tuple[int, int]) -> dict[str, int]:
    """The monthly churn early warning for members in the three cohorts; members outside them lose their row."""
    p = policy()
    a, params = activity(as_of=as_of, member_range=member_range)
    cohort, risk = rules.churn_cohort_sql(a.c, p), rules.churn_risk_sql(a.c, p)
    factors = sa.func.json_build_object("tenure_days", a.c.tenure_days, "idle_days", a.c.idle_days,
                                        "recent", a.c.recent, "before", a.c.before, "complaints", a.c.complaints,
                                        "term_ends_in_days", a.c.term_ends_in_days)
    scored = sa.select(a.c.member_id, cohort.label("cohort"), risk.label("risk"),
                       rules.at_risk_sql(a.c, p).label("at_risk"), factors.label("factors")).subquery()
    rows = sa.select(scored.c.member_id, sa.literal(month_start(as_of), sa.Date), scored.c.cohort, scored.c.risk,
                     scored.c.at_risk, sa.cast(scored.c.factors, sa.dialects.postgresql.JSONB)
                     ).where(scored.c.cohort.is_not(None))
    stmt = insert(ChurnRisk).from_select(["member_id", "month", "cohort", "risk", "at_risk", "factors"], rows)
    stmt = stmt.on_conflict_do_update(index_elements=["member_id"], set_={
        k: getattr(stmt.excluded, k) for k in ("month", "cohort", "risk", "at_risk", "factors")})
    written = stmt.returning(col(ChurnRisk.at_risk)).cte("written")
    scored_n, at_risk = session.execute(
        sa.select(sa.func.count(), sa.func.count().filter(written.c.at_risk)).select_from(written), params).one()
    lo, hi = member_range
    dropped = session.execute(sa.delete(ChurnRisk).where(
        col(ChurnRisk.member_id).between(lo, hi), col(ChurnRisk.month) != month_start(as_of)))
    return {"scored": int(scored_n), "at_risk": int(at_risk), "left_cohorts": int(dropped.rowcount or 0)}  # type: ignore[attr-defined]


# --- pieces for other concepts ----------------------------------------------------------------------------

def stage_piece(member_id: Any) -> sa.ScalarSelect[Any]:
    """The member's stored lifecycle stage (NULL before the first refresh), correlated to ``member_id``."""
    return sa.select(col(MemberLifecycle.stage)).where(col(MemberLifecycle.member_id) == member_id).scalar_subquery()


STAGE_SQL = "(SELECT stage FROM member_lifecycle WHERE member_id = {member_id})"
"""``stage_piece`` for text SQL (audience filters, the CRM picture)."""

AT_RISK_SQL = "EXISTS (SELECT 1 FROM churn_risks r WHERE r.member_id = {member_id} AND r.at_risk)"
"""Whether the member is on the at-risk list, for text SQL."""

AT_RISK_LIST_SQL = "SELECT r.member_id, r.month, r.risk FROM churn_risks r WHERE r.at_risk"
"""The at-risk list (the monthly warning's members at risk), for text SQL: the reactivation journey's source."""

CHURN_WARNING_SQL = "SELECT r.risk, r.cohort, r.at_risk FROM churn_risks r WHERE r.member_id = {member_id}"
"""The member's churn warning as a row (none outside the cohorts), for a lateral join in text SQL."""

LIFECYCLE_SQL = """json_build_object(
    'stage', (SELECT stage FROM member_lifecycle WHERE member_id = {member_id}),
    'churn', (SELECT json_build_object('cohort', r.cohort, 'risk', round(CAST(r.risk AS numeric), 3),
                                       'at_risk', r.at_risk, 'month', r.month)
              FROM churn_risks r WHERE r.member_id = {member_id}))"""
"""The member's stage and churn warning as a SQL piece (the CRM picture)."""


def stage_of(session: Session, *, member_id: int) -> str | None:
    return session.scalar(sa.select(stage_piece(member_id)))


def is_at_risk(session: Session, *, member_id: int) -> bool:
    risk = session.get(ChurnRisk, member_id)
    return bool(risk and risk.at_risk)


def lifecycle_of(session: Session, *, member_id: int) -> dict[str, Any]:
    """Stage and churn warning of one member (for ``/v1/me`` and the CRM)."""
    row = session.get(MemberLifecycle, member_id)
    risk = session.get(ChurnRisk, member_id)
    return {"stage": row.stage if row else None, "stage_as_of": row.as_of if row else None,
            "churn": None if risk is None else {"cohort": risk.cohort, "risk": round(risk.risk, 3),
                                                "at_risk": risk.at_risk, "month": risk.month}}


def at_risk_list(session: Session, *, limit: int = 100, cohort: str | None = None) -> list[dict[str, Any]]:
    """The at-risk list, highest risk first: what retention calls and reactivation offers work from."""
    query = sa.select(ChurnRisk).where(col(ChurnRisk.at_risk))
    if cohort:
        query = query.where(col(ChurnRisk.cohort) == cohort)
    rows = session.scalars(query.order_by(col(ChurnRisk.risk).desc(), col(ChurnRisk.member_id)).limit(limit))
    return [{"member_id": r.member_id, "cohort": r.cohort, "risk": r.risk, "factors": r.factors} for r in rows]
