"""Outbound call lists: extracted by rule, allocated without doubles, recalled on time, reported."""

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from threading import Barrier

import pytest

from domain.contact_policy import service as gate
from domain.crm import service as crm
from domain.db import unit_of_work
from domain.errors import PolicyRefused
from domain.members.models import ContactChannel
from jobs.runner import run_job
from tests.factories import make_member, make_order

NOW = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)
DAY = timedelta(days=1)
OLD = NOW - 200 * DAY


def caller(session, **kw):
    return make_member(session, now=OLD, consents={ContactChannel.PHONE: True}, **kw)


def new_list(session, **kw):
    return crm.create_call_list(session, name="family plan", product="family-plan", purpose="marketing",
                                audience=kw.pop("audience", {}), weights=kw.pop("weights", {}), interest_days=30,
                                recall_hours=48, agent_capacity=kw.pop("agent_capacity", 20), now=NOW, **kw)


def test_members_who_asked_about_the_product_are_dialled_first_and_exclusions_are_counted(session):
    asked = caller(session)
    big_spender = caller(session)
    plain = caller(session)
    complained = caller(session)
    opted_out = make_member(session, now=OLD, consents={ContactChannel.PHONE: False})
    never_asked = make_member(session, now=OLD)
    newcomer = make_member(session, now=NOW - 5 * DAY, consents={ContactChannel.PHONE: True})
    recently_called = caller(session)
    make_order(session, member_id=big_spender.id, amount_fen=900_000, occurred_at=NOW - 20 * DAY)
    crm.record_interest(session, member_id=asked.id, product="family-plan", source="ivr", at=NOW - 2 * DAY)
    gate.record_complaint(session, member_id=complained.id, category="billing", note="", actor="a", now=NOW - 10 * DAY)
    gate.request_touch(session, member_id=recently_called.id, channel="phone", purpose="marketing", source="t",
                       idempotency_key="c1", template="call", variables={}, now=NOW - 3 * DAY)
    call_list = new_list(session)
    counts = crm.extract_leads(session, call_list_id=call_list.id, now=NOW)
    assert counts["excluded"] == {"complaint": 1, "consent_opted_out": 1, "consent_missing": 1,
                                  "onboarding_window": 1, "cap:marketing_calls": 1}
    del opted_out, never_asked, newcomer
    leads = []
    while (lead := crm.next_lead(session, call_list_id=call_list.id, agent_id="agent-1", now=NOW)) is not None:
        leads.append(lead)
    assert [lead.member_id for lead in leads] == [asked.id, big_spender.id, plain.id]
    assert leads[0].band == 1 and leads[0].reason == "asked about family-plan on 2026-03-08"
    assert leads[1].reason.startswith("score")
    again = crm.extract_leads(session, call_list_id=call_list.id, now=NOW)
    assert again["leads_by_band"] == {}  # re-extraction never duplicates a lead


def test_product_feature_targeting_by_age(session):
    young = caller(session, birthday=date(2000, 5, 1))
    caller(session, birthday=date(1970, 5, 1))
    call_list = new_list(session, audience={"max_age": 29})
    crm.extract_leads(session, call_list_id=call_list.id, now=NOW)
    lead = crm.next_lead(session, call_list_id=call_list.id, agent_id="a", now=NOW)
    assert lead.member_id == young.id and crm.next_lead(session, call_list_id=call_list.id, agent_id="a",
                                                        now=NOW) is None


def test_an_agent_gets_their_own_members_first_and_no_more_than_their_capacity(session):
    others = caller(session)
    mine = caller(session, assigned_rep="agent-7")
    make_order(session, member_id=others.id, amount_fen=900_000, occurred_at=NOW - DAY)  # others ranks higher
    call_list = new_list(session, agent_capacity=1)
    crm.extract_leads(session, call_list_id=call_list.id, now=NOW)
    assert crm.next_lead(session, call_list_id=call_list.id, agent_id="agent-7", now=NOW).member_id == mine.id
    with pytest.raises(PolicyRefused):
        crm.next_lead(session, call_list_id=call_list.id, agent_id="agent-7", now=NOW)


def test_concurrent_agents_never_get_the_same_lead(committed_engine):
    with unit_of_work(committed_engine) as session:
        for _ in range(30):
            caller(session)
        call_list = new_list(session, agent_capacity=100)
        crm.extract_leads(session, call_list_id=call_list.id, now=NOW)
        session.commit()
    agents = 6
    barrier = Barrier(agents, timeout=60)

    def pull(i: int) -> list[int]:
        got = []
        barrier.wait()
        while True:
            with unit_of_work(committed_engine) as session:
                lead = crm.next_lead(session, call_list_id=call_list.id, agent_id=f"agent-{i}", now=NOW)
                session.commit()
            if lead is None:
                return got
            got.append(lead.id)

    with ThreadPoolExecutor(agents) as pool:
        pulled = [lead for batch in pool.map(pull, range(agents)) for lead in batch]
    assert len(pulled) == 30 and len(set(pulled)) == 30


def test_a_lead_not_worked_within_the_recall_time_returns_to_the_pool(committed_engine):
    with unit_of_work(committed_engine) as session:
        member = caller(session)
        call_list = new_list(session)
        crm.extract_leads(session, call_list_id=call_list.id, now=NOW)
        lead = crm.next_lead(session, call_list_id=call_list.id, agent_id="slow", now=NOW)
        session.commit()
    assert run_job("recall-leads", engine=committed_engine, as_of=NOW + 47 * DAY / 24).counts == {"recalled": 0}
    assert run_job("recall-leads", engine=committed_engine, as_of=NOW + 2 * DAY).counts == {"recalled": 1}
    with unit_of_work(committed_engine) as session:
        again = crm.next_lead(session, call_list_id=call_list.id, agent_id="fast", now=NOW + 2 * DAY)
        assert (again.id, again.member_id, again.recalls) == (lead.id, member.id, 1)


def test_do_not_call_from_an_agent_blocks_the_next_call_at_once_and_outcomes_feed_the_report(session):
    member = caller(session)
    other = caller(session)
    call_list = new_list(session)
    crm.extract_leads(session, call_list_id=call_list.id, now=NOW)
    first = crm.next_lead(session, call_list_id=call_list.id, agent_id="a1", now=NOW)
    second = crm.next_lead(session, call_list_id=call_list.id, agent_id="a1", now=NOW)
    by_member = {first.member_id: first, second.member_id: second}
    crm.record_call_outcome(session, member_id=member.id, agent_id="a1", outcome="do_not_call", note="",
                            callback_at=None, lead_id=by_member[member.id].id, now=NOW)
    decision = gate.evaluate_contact(session, member_id=member.id, channel="phone", purpose="service", now=NOW)
    assert decision.verdict == "rejected" and decision.reasons == ("consent_opted_out",)
    crm.record_call_outcome(session, member_id=other.id, agent_id="a1", outcome="accepted", note="signed",
                            callback_at=None, lead_id=by_member[other.id].id, now=NOW)
    report = crm.call_list_report(session, call_list_id=call_list.id)
    assert (report["leads"], report["dialled"], report["reached"], report["accepted"]) == (2, 2, 2, 1)


def test_a_scheduled_callback_passes_the_gate(session):
    member = caller(session)
    callback_at = datetime(2026, 3, 10, 14, 0, tzinfo=UTC)  # 22:00 Shanghai: quiet hours
    crm.record_call_outcome(session, member_id=member.id, agent_id="a1", outcome="callback", note="",
                            callback_at=callback_at, lead_id=None, now=NOW)
    from domain.touchpoints.service import touches_of

    touch = touches_of(session, member_id=member.id)[0]
    assert touch.decision == "deferred" and touch.send_at == datetime(2026, 3, 11, 1, 0, tzinfo=UTC)


def test_the_churn_strategy_calls_the_at_risk_list_highest_risk_first(session):
    from domain.crm.models import CallListStrategy
    from domain.lifecycle import service as lifecycle
    from domain.scores import service as scores

    def use(member, days_ago):
        scores.ingest_usage(session, source="web-log", rows=[
            scores.UsageRow(member.id, "app", (NOW - d * DAY).date(), 1) for d in days_ago], now=NOW)

    fading = make_member(session, now=NOW - 250 * DAY, consents={ContactChannel.PHONE: True})
    use(fading, [100, 110, 120, 130, 140])  # 6–12 months, busy 3–5 months ago, silent since: risk 0.8
    quiet_newcomer = make_member(session, now=NOW - 100 * DAY, consents={ContactChannel.PHONE: True})  # 0.6
    steady = make_member(session, now=NOW - 200 * DAY, consents={ContactChannel.PHONE: True})
    use(steady, [3, 10, 40, 100])  # active: in a cohort, not at risk
    veteran = make_member(session, now=NOW - 600 * DAY, consents={ContactChannel.PHONE: True})  # in no cohort
    crm.record_interest(session, member_id=steady.id, product="family-plan", source="ivr", at=NOW - DAY)
    ids = (fading.id, veteran.id)
    lifecycle.refresh_churn_risk(session, as_of=NOW, member_range=ids)
    assert {r["member_id"] for r in lifecycle.at_risk_list(session)} == {fading.id, quiet_newcomer.id}

    rescue = new_list(session, strategy=CallListStrategy.CHURN)
    counts = crm.extract_leads(session, call_list_id=rescue.id, now=NOW)
    leads = []
    while (lead := crm.next_lead(session, call_list_id=rescue.id, agent_id="agent-1", now=NOW)) is not None:
        leads.append(lead)
    # Only the at-risk list, by risk; asking about the product does not put a member who is not at risk on it.
    assert [lead.member_id for lead in leads] == [fading.id, quiet_newcomer.id]
    assert [lead.reason for lead in leads] == ["churn risk 0.80 (6_12m)", "churn risk 0.60 (first_6m)"]
    assert leads[0].priority > leads[1].priority and sum(counts["leads_by_band"].values()) == 2

    weighted = new_list(session)  # the weighted strategy reaches everyone; its churn weight reads the same risk
    crm.extract_leads(session, call_list_id=weighted.id, now=NOW)
    reached = {crm.next_lead(session, call_list_id=weighted.id, agent_id="agent-2", now=NOW).member_id
               for _ in range(4)}
    assert reached == {fading.id, quiet_newcomer.id, steady.id, veteran.id}


def test_a_churn_list_refuses_an_audience_of_members_not_at_risk_and_lists_filter_by_stage(session):
    from domain.crm.models import CallListStrategy
    from domain.errors import InvalidInput
    from domain.lifecycle import service as lifecycle

    with pytest.raises(InvalidInput):
        new_list(session, strategy=CallListStrategy.CHURN, audience={"at_risk": False})
    with pytest.raises(InvalidInput):
        new_list(session, audience={"lifecycle_stages": ["teenage"]})
    newcomer = make_member(session, now=NOW - 40 * DAY, consents={ContactChannel.PHONE: True})
    grown = caller(session)
    lifecycle.refresh_lifecycle(session, as_of=NOW, member_range=(newcomer.id, grown.id))
    call_list = new_list(session, audience={"lifecycle_stages": ["onboarding"]})
    crm.extract_leads(session, call_list_id=call_list.id, now=NOW)
    assert crm.next_lead(session, call_list_id=call_list.id, agent_id="a", now=NOW).member_id == newcomer.id
    assert crm.next_lead(session, call_list_id=call_list.id, agent_id="a", now=NOW) is None


def test_the_dialer_export_shows_the_tier_a_lead_is_served_at_beside_their_own(session):
    from domain.organisations import service as orgs
    from domain.organisations.models import OrganisationRole, RevenueClass

    leader, plain = caller(session), caller(session)
    org = orgs.create_organisation(session, name="Export Co", revenue_class=RevenueClass.KEY, now=OLD)
    orgs.link_member(session, organisation_id=org.id, member_id=leader.id, role=OrganisationRole.LEADER,
                     actor="t", now=OLD)
    call_list = new_list(session)
    crm.extract_leads(session, call_list_id=call_list.id, now=NOW)
    rows = session.execute(crm.leads_export_query(call_list_id=call_list.id, unmasked=False)).mappings().all()
    tiers = {r["member_code"]: (r["tier"], r["served_tier"]) for r in rows}
    assert tiers == {leader.member_code: ("D", "A"), plain.member_code: ("D", "D")}
