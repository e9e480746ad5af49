"""Lifecycle stage and churn risk: the SQL forms agree with the Python rules on generated members, and the
refreshes store what the rules say."""

import random
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa

from domain.contact_policy.service import record_complaint
from domain.lifecycle import rules
from domain.lifecycle import service as lifecycle
from domain.scores import service as scores
from tests.factories import make_member, make_order

AS_OF = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
P = rules.LifecyclePolicy()
FIELDS = ("tenure_days", "idle_days", "recent", "before", "complaints", "term_ends_in_days")


def _generated(n=2000, seed=11):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        tenure = rng.choice([rng.randint(0, 800), rng.choice([89, 90, 182, 183, 364, 365])])
        out.append(rules.Activity(
            tenure_days=tenure, idle_days=rng.choice([None, rng.randint(0, 200), 59, 60]),
            recent=rng.randint(0, 8), before=rng.randint(0, 8), complaints=rng.choice([0, 0, 1]),
            term_ends_in_days=rng.choice([None, None, rng.randint(-30, 200), 90, 91])))
    return out


def test_the_sql_forms_decide_like_the_python_rules_on_generated_members(session):
    members = _generated()
    table = sa.values(*[sa.column(f, sa.Integer) for f in FIELDS], sa.column("i", sa.Integer), name="gen").data(
        [tuple(getattr(a, f) for f in FIELDS) + (i,) for i, a in enumerate(members)])
    rows = session.execute(sa.select(table.c.i, rules.lifecycle_stage_sql(table.c, P),
                                     rules.churn_cohort_sql(table.c, P), rules.churn_risk_sql(table.c, P),
                                     rules.at_risk_sql(table.c, P))
                           .order_by(table.c.i)).all()
    for (_, stage, cohort, risk, at_risk), a in zip(rows, members, strict=True):
        assert stage == rules.lifecycle_stage(a, P), a
        expected = rules.churn_risk(a, P)
        assert cohort == (expected[0] if expected else None), a
        assert (risk is None) == (expected is None) and (risk is None or risk == pytest.approx(expected[1])), a
        assert at_risk is rules.at_risk(a, P), a
    assert {r[1] for r in rows} == set(rules.STAGES)
    assert {r[4] for r in rows} == {True, False}  # the generated members reach both sides of the threshold


def _use(session, member_id, days_ago, n=1):
    scores.ingest_usage(session, source="web-log", rows=[
        scores.UsageRow(member_id, "app", (AS_OF - timedelta(days=d)).date(), n) for d in days_ago], now=AS_OF)


def test_the_refreshes_store_stages_and_the_at_risk_list(session):
    newcomer = make_member(session, now=AS_OF - timedelta(days=20))
    steady = make_member(session, now=AS_OF - timedelta(days=500))
    _use(session, steady.id, [5, 30, 60, 100, 130, 160])
    fading = make_member(session, now=AS_OF - timedelta(days=250))
    _use(session, fading.id, [100, 110, 120, 130, 140])  # all activity 3–5 months ago, none since
    make_order(session, member_id=fading.id, occurred_at=AS_OF - timedelta(days=95))
    record_complaint(session, member_id=fading.id, category="service", note="", actor="t",
                     now=AS_OF - timedelta(days=10))
    ids = (min(newcomer.id, steady.id, fading.id), max(newcomer.id, steady.id, fading.id))

    stages = lifecycle.refresh_lifecycle(session, as_of=AS_OF, member_range=ids)
    assert stages == {"onboarding": 1, "growth": 0, "maturity": 1, "decline": 1}
    assert lifecycle.stage_of(session, member_id=fading.id) == "decline"
    assert lifecycle.refresh_lifecycle(session, as_of=AS_OF, member_range=ids) == stages  # idempotent

    warned = lifecycle.refresh_churn_risk(session, as_of=AS_OF, member_range=ids)
    assert warned["scored"] == 2 and warned["at_risk"] == 1  # the steady member of over a year is no cohort
    at_risk = lifecycle.at_risk_list(session)
    assert [r["member_id"] for r in at_risk] == [fading.id]
    assert at_risk[0]["cohort"] == "6_12m" and at_risk[0]["risk"] == pytest.approx(1.0)
    assert at_risk[0]["factors"]["idle_days"] == 95 and at_risk[0]["factors"]["complaints"] == 1
    me = lifecycle.lifecycle_of(session, member_id=newcomer.id)
    assert me["stage"] == "onboarding" and me["churn"]["cohort"] == "first_6m"
    assert me["stage_as_of"] == date(2026, 12, 1)


def test_lifecycle_and_the_at_risk_list_filter_a_campaign_audience_and_branch_a_journey(session):
    from domain.campaigns.service import audience_sql
    from domain.errors import InvalidInput
    from domain.journeys.models import Enrollment
    from domain.journeys.rules import branch_condition_problem
    from domain.journeys.service import branch_condition_holds

    newcomer = make_member(session, now=AS_OF - timedelta(days=20))
    fading = make_member(session, now=AS_OF - timedelta(days=250))
    ids = (min(newcomer.id, fading.id), max(newcomer.id, fading.id))
    lifecycle.refresh_lifecycle(session, as_of=AS_OF, member_range=ids)
    lifecycle.refresh_churn_risk(session, as_of=AS_OF, member_range=ids)

    def audience(filters):
        sql, params = audience_sql(filters, AS_OF)
        return set(session.scalars(sa.text(sql), params)) & {newcomer.id, fading.id}

    assert audience({"lifecycle_stages": ["decline"]}) == {fading.id}
    assert audience({"lifecycle_stages": ["onboarding", "growth"]}) == {newcomer.id}
    assert audience({"at_risk": True}) == {fading.id}
    assert audience({"at_risk": False}) == {newcomer.id}
    with pytest.raises(InvalidInput):
        audience_sql({"lifecycle_stages": ["teenage"]}, AS_OF)

    assert branch_condition_problem("lifecycle:decline,growth") is None and branch_condition_problem("at_risk") is None
    assert branch_condition_problem("lifecycle:teenage")
    enrolled = Enrollment(journey_id=1, version=1, member_id=fading.id, state="active", step_index=0,
                          enrolled_at=AS_OF, trigger_ref="t", control=False)
    assert branch_condition_holds(session, condition="lifecycle:decline", enrollment=enrolled)
    assert branch_condition_holds(session, condition="at_risk", enrollment=enrolled)
    assert not branch_condition_holds(session, condition="lifecycle:maturity", enrollment=enrolled)


def test_an_organisation_contract_ending_within_three_months_is_the_term_ending_signal(session):
    from domain.organisations import service as organisations
    from domain.organisations.models import OrganisationRole, RevenueClass

    veteran = make_member(session, now=AS_OF - timedelta(days=700))
    _use(session, veteran.id, [5, 20, 40, 100, 120, 150])  # active: nothing else says decline
    org = organisations.create_organisation(session, name="Acme", revenue_class=RevenueClass.LARGE,
                                            now=AS_OF - timedelta(days=700))
    organisations.link_member(session, organisation_id=org.id, member_id=veteran.id,
                              role=OrganisationRole.KEY_CONTACT, actor="t", now=AS_OF - timedelta(days=600))
    ids = (veteran.id, veteran.id)
    organisations.add_contract(session, organisation_id=org.id, reference="C-1", kind="contract",
                               starts_on=date(2025, 1, 1), ends_on=(AS_OF + timedelta(days=120)).date(), now=AS_OF)
    assert lifecycle.refresh_lifecycle(session, as_of=AS_OF, member_range=ids)["maturity"] == 1
    assert lifecycle.refresh_churn_risk(session, as_of=AS_OF, member_range=ids)["scored"] == 0
    session.execute(sa.text("UPDATE organisation_contracts SET ends_on = :d WHERE organisation_id = :o"),
                    {"d": (AS_OF + timedelta(days=60)).date(), "o": org.id})
    assert lifecycle.refresh_lifecycle(session, as_of=AS_OF, member_range=ids)["decline"] == 1
    assert lifecycle.refresh_churn_risk(session, as_of=AS_OF, member_range=ids)["scored"] == 1
    assert lifecycle.lifecycle_of(session, member_id=veteran.id)["churn"]["cohort"] == "term_ending"


def test_the_reactivation_journey_enrols_the_at_risk_list_once_and_never_lapses_an_active_member(session):
    from domain.journeys import service as journeys
    from domain.journeys.models import Enrollment
    from domain.members.models import ContactChannel
    from domain.members.service import get_member

    journeys.ensure_builtin_journeys(session, now=AS_OF - timedelta(days=400))
    reactivation = journeys.journey_by_key(session, key="reactivation")
    steps = journeys._version(session, reactivation.id, reactivation.current_version).steps
    journeys.edit_journey(session, journey_id=reactivation.id, steps=steps, control_share=0.0,
                          now=AS_OF - timedelta(days=400))
    fading = make_member(session, now=AS_OF - timedelta(days=250), consents={ContactChannel.SMS: True})
    steady = make_member(session, now=AS_OF - timedelta(days=250))
    _use(session, steady.id, [3, 20, 60, 100])
    lifecycle.refresh_churn_risk(session, as_of=AS_OF, member_range=(fading.id, steady.id))
    assert lifecycle.is_at_risk(session, member_id=fading.id) and not lifecycle.is_at_risk(session, member_id=steady.id)

    assert journeys.enroll_dormant_members(session, as_of=AS_OF) == 1
    assert journeys.enroll_dormant_members(session, as_of=AS_OF + timedelta(days=1)) == 0  # once per warning
    enrolled = session.exec(sa.select(Enrollment).where(Enrollment.member_id == fading.id)).scalars().all()
    assert [(e.journey_id, e.trigger_ref, e.state) for e in enrolled] == [
        (reactivation.id, "at_risk:2026-12-01", "active")]
    for day in (0, 7, 21, 45):
        journeys.run_due_steps(session, as_of=AS_OF + timedelta(days=day, hours=3))
    session.refresh(enrolled[0])
    # An active member who did not answer the offers is not lapsed: the enrolment completes.
    assert enrolled[0].state == "completed" and get_member(session, member_id=fading.id).status == "active"
