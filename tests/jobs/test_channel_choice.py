"""One channel-choice rule for journeys, campaigns and the CRM, end to end on the clock, for members of every
consent profile and no preferred channel (the first release sent reactivations to WeChat for everyone)."""

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session

from domain.campaigns import service as campaigns
from domain.crm.service import member_picture
from domain.db import unit_of_work
from domain.members.models import ContactChannel
from jobs.runner import run_job
from tests.factories import make_member, make_order
from tests.jobs.test_journeys import no_control

T = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
DAY = timedelta(days=1)
PROFILES = {"sms": {ContactChannel.SMS: True}, "email": {ContactChannel.EMAIL: True},
            "app": {ContactChannel.APP: True}, "wechat": {ContactChannel.WECHAT: True}, "none": {}}


def _members_of_every_profile(session: Session, *, joined: datetime) -> dict[str, int]:
    made = {}
    for name, consents in PROFILES.items():
        member = make_member(session, now=joined, consents=consents, email=f"{name}@example.com",
                             wechat_openid=f"openid-{name}")
        made[name] = member.id
    return made


def _touch_channels(engine, source: str) -> dict[int, str]:
    with Session(engine) as session:
        return dict(session.execute(sa.text(
            "SELECT member_id, channel FROM touches WHERE source = :s AND decision = 'approved'"), {"s": source}).all())


def test_reactivation_reaches_each_consent_profile_on_its_own_channel_and_reports_the_unreachable(
        committed_engine):
    no_control(committed_engine, "reactivation")
    with unit_of_work(committed_engine) as session:
        made = _members_of_every_profile(session, joined=T - 400 * DAY)
        for member_id in made.values():
            make_order(session, member_id=member_id, amount_fen=10_000, occurred_at=T - 200 * DAY)
    assert run_job("mark-dormant", engine=committed_engine, as_of=T).counts == {"dormant": 5, "enrolled": 5}
    assert run_job("run-journeys", engine=committed_engine, as_of=T).status == "succeeded"
    sent = _touch_channels(committed_engine, "journey:reactivation")
    assert sent == {made[p]: p for p in ("sms", "email", "app", "wechat")}
    with Session(committed_engine) as session:
        outcome = session.execute(sa.text("""
            SELECT x.outcome, x.reasons, x.touch_id FROM journey_step_executions x
            JOIN journey_enrollments e ON e.id = x.enrollment_id WHERE e.member_id = :m"""),
            {"m": made["none"]}).one()
    assert (outcome.outcome, list(outcome.reasons), outcome.touch_id) == ("rejected", ["no_reachable_channel"], None)


def test_a_campaign_on_the_preferred_channel_uses_the_same_rule_and_the_crm_shows_it(committed_engine):
    with unit_of_work(committed_engine) as session:
        made = _members_of_every_profile(session, joined=T - 400 * DAY)
        campaign = campaigns.create_campaign(session, name="spring", channel="preferred", purpose="care",
                                             template="welcome",
                                             audience={"statuses": ["active"]}, control_share=0.0,
                                             actor="marketer", now=T)
        campaigns.approve(session, campaign_id=campaign.id, actor="manager", now=T)
        campaigns.launch(session, campaign_id=campaign.id, now=T)
        session.commit()
        campaign_id = campaign.id
    assert run_job("send-campaigns", engine=committed_engine, as_of=T).status == "succeeded"
    assert _touch_channels(committed_engine, f"campaign:{campaign_id}") == {
        made[p]: p for p in ("sms", "email", "app", "wechat")}
    with unit_of_work(committed_engine) as session:
        report = campaigns.report(session, campaign_id=campaign_id)
        assert report["suppressed"] == {"no_reachable_channel": 1}
        from domain.members.service import get_member
        for profile, member_id in made.items():
            picture = member_picture(session, member=get_member(session, member_id=member_id), unmasked=False, now=T)
            assert picture["member"]["message_channel"] == (None if profile == "none" else profile)
