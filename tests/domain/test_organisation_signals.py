"""Group customers in the rest of the product: the churn signal of a contract ending, the account-level
do-not-contact in the gate, organisation and role filters for call lists and campaigns."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa

from domain.campaigns import service as campaigns
from domain.contact_policy import service as gate
from domain.crm import service as crm
from domain.errors import InvalidInput
from domain.members.models import ContactChannel
from domain.organisations import service as orgs
from domain.organisations.models import FamilyRelation, OrganisationRole, RevenueClass
from tests.factories import make_member

NOW = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)
DAY = timedelta(days=1)
OLD = NOW - 200 * DAY


def person(session):
    return make_member(session, now=OLD, consents={ContactChannel.PHONE: True, ContactChannel.SMS: True})


def account_with(session, name, **people):
    org = orgs.create_organisation(session, name=name, revenue_class=RevenueClass.KEY, now=OLD)
    for role, member in people.items():
        orgs.link_member(session, organisation_id=org.id, member_id=member.id, role=OrganisationRole(role),
                         actor="t", now=OLD)
    return org


def test_a_contract_ending_next_month_puts_its_key_contacts_on_the_churn_list(session):
    from domain.lifecycle import service as lifecycle
    from domain.scores import service as scores

    veteran_since = NOW - 500 * DAY  # over a year: only a term ending puts them in a churn cohort
    contact, employee, elsewhere, loner = (make_member(session, now=veteran_since) for _ in range(4))
    for member in (contact, employee, elsewhere, loner):  # busy every fortnight: nothing else says churn
        scores.ingest_usage(session, source="web-log", rows=[
            scores.UsageRow(member.id, "app", (NOW - d * DAY).date(), 2) for d in range(1, 180, 14)], now=NOW)
    ending = account_with(session, "Ending Co", key_contact=contact, employee=employee)
    renewed = account_with(session, "Renewed Co", key_contact=elsewhere)
    orgs.add_contract(session, organisation_id=ending.id, reference="C-1", kind="contract",
                      starts_on=date(2025, 4, 1), ends_on=date(2026, 4, 15), now=OLD)  # next month
    orgs.add_contract(session, organisation_id=renewed.id, reference="C-2", kind="contract",
                      starts_on=date(2025, 4, 1), ends_on=date(2026, 4, 15), now=OLD)
    orgs.add_contract(session, organisation_id=renewed.id, reference="C-3", kind="framework",
                      starts_on=date(2026, 4, 16), ends_on=date(2028, 4, 15), now=OLD)  # the renewal moves the end
    ids = (contact.id, loner.id)

    lifecycle.refresh_churn_risk(session, as_of=NOW, member_range=ids)
    lifecycle.refresh_lifecycle(session, as_of=NOW, member_range=ids)
    at_risk = {r["member_id"]: r for r in lifecycle.at_risk_list(session)}
    assert set(at_risk) == {contact.id, employee.id}  # the account's people; not the renewed one, not the loner
    assert at_risk[contact.id]["cohort"] == "term_ending" and at_risk[contact.id]["factors"]["term_ends_in_days"] == 36
    assert lifecycle.stage_of(session, member_id=contact.id) == "decline"
    assert lifecycle.stage_of(session, member_id=elsewhere.id) == "maturity"
    # The same list feeds the churn call list: the key contact is on it.
    rescue = crm.create_call_list(session, name="renewals", product="renewal", purpose="service",
                                  audience={"organisation_roles": ["key_contact"]}, weights={}, interest_days=30,
                                  recall_hours=48, agent_capacity=20, now=NOW, strategy="churn")
    crm.extract_leads(session, call_list_id=rescue.id, now=NOW)
    lead = crm.next_lead(session, call_list_id=rescue.id, agent_id="a", now=NOW)
    assert lead.member_id == contact.id and lead.reason.endswith("(term_ending)")
    assert crm.next_lead(session, call_list_id=rescue.id, agent_id="a", now=NOW) is None

    lifecycle.refresh_churn_risk(session, as_of=NOW - 60 * DAY, member_range=ids)  # four months ahead: no signal
    assert lifecycle.at_risk_list(session) == []


def test_an_account_level_do_not_contact_stops_marketing_and_care_to_all_its_people_but_not_service(session):
    leader, employee, outsider = person(session), person(session), person(session)
    org = account_with(session, "Quiet Co", leader=leader, employee=employee)
    assert gate.evaluate_contact(session, member_id=leader.id, channel="sms", purpose="marketing",
                                 now=NOW).verdict == "approved"
    orgs.update_organisation(session, organisation_id=org.id,
                             changes={"do_not_contact": True, "do_not_contact_reason": "legal asked"}, now=NOW)
    for member in (leader, employee):
        for purpose in ("marketing", "care"):
            decision = gate.evaluate_contact(session, member_id=member.id, channel="sms", purpose=purpose, now=NOW)
            assert (decision.verdict, decision.reasons) == ("rejected", ("account_do_not_contact",))
        assert gate.evaluate_contact(session, member_id=member.id, channel="sms", purpose="service",
                                     now=NOW).verdict == "approved"
    assert gate.evaluate_contact(session, member_id=outsider.id, channel="sms", purpose="marketing",
                                 now=NOW).verdict == "approved"
    touch, _ = gate.request_touch(session, member_id=employee.id, channel="sms", purpose="marketing", source="t",
                                  idempotency_key="dnc-1", template="offer", variables={}, now=NOW)
    assert touch.decision == "rejected" and "account_do_not_contact" in touch.reasons
    member = session.get(type(leader), leader.id)
    picture = crm.member_picture(session, member=member, unmasked=False, now=NOW)
    assert picture["may_pitch_by_phone"]["reasons"] == ["account_do_not_contact"]


def test_caps_and_consents_stay_the_persons_own(session):
    leader, spouse = person(session), make_member(session, now=OLD, consents={ContactChannel.SMS: False})
    account_with(session, "Capped Co", leader=leader)
    orgs.link_family(session, member_id=leader.id, relative_id=spouse.id, relation=FamilyRelation.SPOUSE,
                     consent_source="app", consented_at=OLD, actor="t", now=OLD)
    assert gate.evaluate_contact(session, member_id=spouse.id, channel="sms", purpose="marketing",
                                 now=NOW).reasons == ("consent_opted_out",)
    for i in range(4):
        gate.request_touch(session, member_id=leader.id, channel="sms", purpose="marketing", source="t",
                           idempotency_key=f"cap-{i}", template="offer", variables={}, now=NOW)
    assert gate.evaluate_contact(session, member_id=leader.id, channel="sms", purpose="marketing",
                                 now=NOW).verdict != "approved"


def test_call_lists_and_campaigns_filter_by_organisation_and_role(session):
    contact, leader, employee, outsider = (person(session) for _ in range(4))
    org = account_with(session, "Filter Co", key_contact=contact, leader=leader, employee=employee)
    audience = {"organisations": [org.id], "organisation_roles": ["key_contact", "leader"]}
    sql, params = campaigns.audience_sql(audience, NOW)
    assert set(session.execute(sa.text(sql), params).scalars()) == {contact.id, leader.id}
    call_list = crm.create_call_list(session, name="accounts", product="fleet", purpose="marketing",
                                     audience=audience, weights={}, interest_days=30, recall_hours=48,
                                     agent_capacity=20, now=NOW)
    crm.extract_leads(session, call_list_id=call_list.id, now=NOW)
    leads = session.execute(sa.text("SELECT member_id FROM leads WHERE call_list_id = :l"),
                            {"l": call_list.id}).scalars().all()
    assert set(leads) == {contact.id, leader.id}
    with pytest.raises(InvalidInput):
        campaigns.audience_sql({"organisation_roles": ["chairman"]}, NOW)
    orgs.update_organisation(session, organisation_id=org.id, changes={"do_not_contact": True}, now=NOW)
    again = crm.create_call_list(session, name="accounts 2", product="fleet", purpose="marketing",
                                 audience=audience, weights={}, interest_days=30, recall_hours=48,
                                 agent_capacity=20, now=NOW)
    assert crm.extract_leads(session, call_list_id=again.id, now=NOW)["excluded"] == {"account_do_not_contact": 2}


def test_an_accounts_founding_anniversary_greets_its_key_contacts_once(committed_engine):
    from domain.db import unit_of_work
    from jobs.runner import run_job

    with unit_of_work(committed_engine) as session:
        contact, employee = person(session), person(session)
        org = account_with(session, "Anniversary Co", key_contact=contact, employee=employee)
        orgs.set_important_date(session, organisation_id=org.id, kind="founding_anniversary", label="founded",
                                on_date=date(2001, 3, 10))
        session.commit()
    at_ten = datetime(2026, 3, 10, 2, 5, tzinfo=UTC)  # 10:05 in Shanghai
    assert run_job("care-greetings", engine=committed_engine, as_of=at_ten).counts["enrolled"] == 1
    assert run_job("care-greetings", engine=committed_engine, as_of=at_ten + DAY / 24).counts["enrolled"] == 0
    with unit_of_work(committed_engine) as session:
        refs = session.execute(sa.text("SELECT member_id, trigger_ref FROM journey_enrollments")).all()
    assert refs == [(contact.id, f"account:{org.id}:founding_anniversary:2026")]
