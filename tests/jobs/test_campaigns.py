"""Campaigns: preview on a sample, approval by a second person, sending through the gate, measured uplift."""

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlmodel import Session, select

from domain.campaigns import service as campaigns
from domain.campaigns.models import CampaignMember
from domain.contact_policy import service as gate
from domain.db import unit_of_work
from domain.errors import Conflict
from domain.journeys.rules import in_control_group
from domain.members.models import ContactChannel
from jobs.runner import run_job
from tests.factories import make_member, make_order

NOW = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=400)
SMS = {ContactChannel.SMS: True}


def draft(session, audience, control_share=0.0, author="marketer-1"):
    from domain.templates.service import publish_template

    publish_template(session, key="spring_offer", channel="any", purpose="marketing",
                     body="{name}, spring offer for {tier} members", variables=["name", "tier"], actor="t", now=NOW)
    return campaigns.create_campaign(session, name="spring", channel="sms", purpose="marketing",
                                     template="spring_offer", audience=audience, control_share=control_share,
                                     actor=author, now=NOW)


def test_the_audience_filter_preview_and_four_eyes_approval(session):
    shanghai_b = make_member(session, now=OLD, city="Shanghai", consents=SMS, birthday=date(1995, 1, 1))
    make_order(session, member_id=shanghai_b.id, amount_fen=600_000, occurred_at=NOW - timedelta(days=20))
    make_member(session, now=OLD, city="Beijing", consents=SMS)
    make_member(session, now=OLD, city="Shanghai", consents=SMS, birthday=date(1960, 1, 1))
    campaign = draft(session, {"cities": ["Shanghai"], "tiers": ["B", "A"], "max_age": 40,
                               "min_spend_fen": 500_000})
    shown = campaigns.preview(session, campaign_id=campaign.id, now=NOW)
    assert shown["audience_size"] == 1 and shown["sample"][0]["id"] == shanghai_b.id
    with pytest.raises(Conflict):
        campaigns.launch(session, campaign_id=campaign.id, now=NOW)          # not approved
    with pytest.raises(Conflict):
        campaigns.approve(session, campaign_id=campaign.id, actor="marketer-1", now=NOW)  # own campaign
    campaigns.approve(session, campaign_id=campaign.id, actor="manager-1", now=NOW)
    assert campaigns.launch(session, campaign_id=campaign.id, now=NOW) == {"audience": 1}


def test_unknown_filters_are_refused_when_the_campaign_is_created(session):
    from domain.errors import InvalidInput

    with pytest.raises(InvalidInput):
        draft(session, {"star_sign": "leo"})


def test_a_launched_campaign_goes_through_the_gate_with_a_control_group_and_a_report(committed_engine):
    with unit_of_work(committed_engine) as session:
        people = [make_member(session, now=OLD, consents=SMS) for _ in range(40)]
        campaign = draft(session, {"statuses": ["active"]}, control_share=0.25)
        # The complainer is one the campaign would contact (not control), so the gate's suppression is tested.
        complainer = next(p for p in people if not in_control_group(
            member_id=p.id, experiment=f"campaign:{campaign.id}", control_share=campaign.control_share))
        gate.record_complaint(session, member_id=complainer.id, category="x", note="", actor="a", now=NOW)
        campaigns.approve(session, campaign_id=campaign.id, actor="manager", now=NOW)
        campaigns.launch(session, campaign_id=campaign.id, now=NOW)
        session.commit()
    assert run_job("send-campaigns", engine=committed_engine, as_of=NOW).status == "succeeded"
    assert run_job("send-campaigns", engine=committed_engine, as_of=NOW).counts == {"requested": 0}
    with Session(committed_engine) as session:
        rows = session.exec(select(CampaignMember)).all()
        control = [r for r in rows if r.control]
        treated = [r for r in rows if not r.control]
        assert len(rows) == 40 and 0 < len(control) < 20
        assert all(r.decision is None for r in control) and all(r.decision for r in treated)
        buyers = [r.member_id for r in treated[:5]] + [r.member_id for r in control[:1]]
    with unit_of_work(committed_engine) as session:
        for member_id in buyers:
            make_order(session, member_id=member_id, amount_fen=10_000, occurred_at=NOW + timedelta(days=3))
        result = campaigns.report(session, campaign_id=campaign.id)
    assert result["audience"] == 40 and result["control"] == len(control)
    assert result["converted"] == {"treatment": 5, "control": 1}
    assert complainer.id in [r.member_id for r in treated]
    assert result["suppressed"] == {"complaint_cooldown": 1}
    assert result["uplift"]["uplift"] == pytest.approx(5 / len(treated) - 1 / len(control))
