"""Lifecycle stage and churn risk: each rule once, as a pure function and as the SQL expression jobs and filters
use (DOMAIN.md, Lifecycle and journeys). ``tests/domain/test_lifecycle.py`` runs both on the same generated
members in PostgreSQL and compares them.

Stages: **onboarding** (the first months: build trust, no selling), **decline** (a clear drop in activity,
consecutive idle days, or a contract/term ending soon), **maturity** (over a year), **growth** (the rest).
Churn early warning, monthly, over three cohorts with different causes: the first six months, 6–12 months,
and over a year with a term ending soon; risk from activity drop, recency, complaints and the cohort (tenure).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import sqlalchemy as sa


class LifecycleStage(StrEnum):
    """The four stages of DOMAIN.md, each with its own treatment."""

    ONBOARDING = "onboarding"
    """The first months: build trust, no selling."""
    GROWTH = "growth"
    """Recommend add-ons."""
    MATURITY = "maturity"
    """Over a year: higher-value offers, and help the member save money."""
    DECLINE = "decline"
    """A clear drop in activity, consecutive idle days, or a contract/term ending soon."""


STAGES = tuple(stage.value for stage in LifecycleStage)
COHORTS = ("first_6m", "6_12m", "term_ending")


@dataclass(frozen=True)
class LifecyclePolicy:
    onboarding_days: int = 90
    """Onboarding lasts the first 1–3 months."""
    maturity_days: int = 365
    idle_days: int = 60
    """This many days without any purchase or contact is decline."""
    drop_share: float = 0.5
    """Activity in the recent window this much below the window before is a clear drop …"""
    min_prior_activity: int = 3
    """… when there was at least this much activity before (two contacts to none is noise, not a drop)."""
    term_warning_days: int = 90
    """A contract/term ending within this many days (1–3 months) is decline and a churn signal."""
    first_cohort_days: int = 183
    second_cohort_days: int = 365
    cohort_base_risk: tuple[float, float, float] = (0.3, 0.2, 0.3)
    """Base risk of each cohort (tenure): the first six months are the riskiest."""
    drop_weight: float = 0.3
    recency_weight: float = 0.3
    recency_scale_days: int = 90
    """Recency adds its full weight at this many idle days."""
    complaint_weight: float = 0.2
    term_weight: float = 0.3
    """A contract/term ending within ``term_warning_days`` is a churn signal by itself (DOMAIN.md, group
    customers): with the term-ending cohort's base it reaches the at-risk threshold however active the member."""
    at_risk_threshold: float = 0.5


@dataclass(frozen=True)
class Activity:
    """What the rules read about a member as of a day."""

    tenure_days: int
    idle_days: int | None
    """Days since the last purchase or channel contact; None: never active (counts as the whole tenure)."""
    recent: int
    """Contacts and purchases in the recent window (the last ``recency_scale_days``)."""
    before: int
    """The same in the window before it."""
    complaints: int
    """Complaints in the cool-down window."""
    term_ends_in_days: int | None
    """Days until the member's contract/term ends (organisation contracts, issue #21); None: no known term."""


def _term_ending(term_days: int | None, policy: LifecyclePolicy) -> bool:
    return term_days is not None and 0 <= term_days <= policy.term_warning_days


def _dropped(recent: int, before: int, policy: LifecyclePolicy) -> bool:
    return before >= policy.min_prior_activity and recent <= before * (1 - policy.drop_share)


def lifecycle_stage(a: Activity, policy: LifecyclePolicy) -> str:
    """The member's stage. Onboarding wins (a new member is never sold to, even when quiet); then decline."""
    idle = a.tenure_days if a.idle_days is None else a.idle_days
    if a.tenure_days < policy.onboarding_days:
        return "onboarding"
    if idle >= policy.idle_days or _dropped(a.recent, a.before, policy) or _term_ending(a.term_ends_in_days, policy):
        return "decline"
    if a.tenure_days >= policy.maturity_days:
        return "maturity"
    return "growth"


def churn_cohort(a: Activity, policy: LifecyclePolicy) -> str | None:
    """The churn-warning cohort, or None for members of over a year with no term ending soon."""
    if a.tenure_days < policy.first_cohort_days:
        return "first_6m"
    if a.tenure_days < policy.second_cohort_days:
        return "6_12m"
    if _term_ending(a.term_ends_in_days, policy):
        return "term_ending"
    return None


def churn_risk(a: Activity, policy: LifecyclePolicy) -> tuple[str, float] | None:
    """(cohort, risk in [0, 1]) or None outside the cohorts."""
    cohort = churn_cohort(a, policy)
    if cohort is None:
        return None
    idle = a.tenure_days if a.idle_days is None else a.idle_days
    drop = max(0.0, 1.0 - a.recent / a.before) if a.before > 0 else 0.0
    recency = min(1.0, idle / policy.recency_scale_days)
    risk = (policy.cohort_base_risk[COHORTS.index(cohort)] + policy.drop_weight * drop
            + policy.recency_weight * recency + (policy.complaint_weight if a.complaints > 0 else 0.0)
            + (policy.term_weight if _term_ending(a.term_ends_in_days, policy) else 0.0))
    return cohort, min(1.0, risk)


def at_risk(a: Activity, policy: LifecyclePolicy) -> bool:
    """**At risk**: in a churn cohort with a risk at or above the threshold. The one home of the rule: the
    at-risk list the monthly warning stores (``at_risk_sql``) is what call lists' churn strategy, the
    reactivation journey, campaign audiences and journey branches read."""
    scored = churn_risk(a, policy)
    return scored is not None and scored[1] >= policy.at_risk_threshold


# --- the same rules as SQL over columns named like ``Activity``'s fields ---------------------------------------

def _sql_idle(c: Any) -> Any:
    return sa.func.coalesce(c.idle_days, c.tenure_days)


def _sql_term_ending(c: Any, policy: LifecyclePolicy) -> Any:
    return sa.and_(c.term_ends_in_days.is_not(None), c.term_ends_in_days >= 0,
                   c.term_ends_in_days <= policy.term_warning_days)


def lifecycle_stage_sql(c: Any, policy: LifecyclePolicy) -> sa.ColumnElement[str]:
    """``lifecycle_stage`` over a selectable's columns ``c`` (tenure_days, idle_days, recent, before,
    complaints, term_ends_in_days)."""
    dropped = sa.and_(c.before >= policy.min_prior_activity, c.recent <= c.before * (1 - policy.drop_share))
    return sa.case(
        (c.tenure_days < policy.onboarding_days, "onboarding"),
        (sa.or_(_sql_idle(c) >= policy.idle_days, dropped, _sql_term_ending(c, policy)), "decline"),
        (c.tenure_days >= policy.maturity_days, "maturity"),
        else_="growth")


def churn_cohort_sql(c: Any, policy: LifecyclePolicy) -> sa.ColumnElement[str | None]:
    return sa.case((c.tenure_days < policy.first_cohort_days, "first_6m"),
                   (c.tenure_days < policy.second_cohort_days, "6_12m"),
                   (_sql_term_ending(c, policy), "term_ending"), else_=sa.null())


def churn_risk_sql(c: Any, policy: LifecyclePolicy) -> sa.ColumnElement[float]:
    """``churn_risk``'s risk (NULL outside the cohorts)."""
    cohort = churn_cohort_sql(c, policy)
    base = sa.case(*[(cohort == name, policy.cohort_base_risk[i]) for i, name in enumerate(COHORTS)],
                   else_=sa.null())
    drop = sa.case((c.before > 0, sa.func.greatest(0.0, 1.0 - sa.cast(c.recent, sa.Float) / c.before)), else_=0.0)
    recency = sa.func.least(1.0, sa.cast(_sql_idle(c), sa.Float) / policy.recency_scale_days)
    complaint = sa.case((c.complaints > 0, policy.complaint_weight), else_=0.0)
    term = sa.case((_sql_term_ending(c, policy), policy.term_weight), else_=0.0)
    # PostgreSQL's least() skips NULLs, so outside the cohorts the NULL is kept explicitly.
    total = sa.func.least(1.0, base + policy.drop_weight * drop + policy.recency_weight * recency + complaint
                          + term)
    return sa.case((cohort.is_(None), sa.null()), else_=total)


def at_risk_sql(c: Any, policy: LifecyclePolicy) -> sa.ColumnElement[bool]:
    """``at_risk`` over a selectable's columns (false outside the cohorts, never NULL)."""
    return sa.func.coalesce(churn_risk_sql(c, policy) >= policy.at_risk_threshold, sa.false())


def policy_from_settings(settings: Any) -> LifecyclePolicy:
    return LifecyclePolicy(**settings.lifecycle_policy)
