"""The CRM lookup reads the member's picture in one statement; every figure in it must equal what the
per-concept reads (tier, balance, gate, coupons, contacts …) say, or agents would tell members the wrong thing."""

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from domain.contact_policy import service as gate
from domain.crm import service as crm
from domain.journeys import service as journeys
from domain.members import service as members
from domain.members.models import ContactChannel
from domain.orders import service as orders
from domain.points import service as points
from domain.rebates.models import Coupon
from domain.rebates.service import coupons_of, state_of
from domain.tiers import service as tiers
from domain.tiers.models import TierStatus
from domain.touchpoints import service as touchpoints
from tests.factories import make_member, make_order

JOINED = datetime(2025, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)


def rich_member(session, *, below_since=None):
    member = make_member(session, now=JOINED, consents={ContactChannel.PHONE: True, ContactChannel.SMS: True})
    make_order(session, member_id=member.id, amount_fen=600_000, occurred_at=datetime(2025, 4, 1, tzinfo=UTC))
    make_order(session, member_id=member.id, amount_fen=90_000, occurred_at=datetime(2026, 2, 1, tzinfo=UTC))
    make_order(session, member_id=member.id, amount_fen=20_000, occurred_at=datetime(2026, 3, 5, tzinfo=UTC))
    # Some points have become available and are about to expire (the release job's work, done here directly).
    session.execute(sa.text("UPDATE points_lots SET state = 'available', expires_at = :soon WHERE member_id = :m "
                            "AND amount = (SELECT min(amount) FROM points_lots WHERE member_id = :m)"),
                    {"m": member.id, "soon": NOW + timedelta(days=20)})
    session.add(Coupon(code=f"CPN-{member.id}", member_id=member.id, value_fen=5_000, source="rebate",
                       source_ref=f"q-{member.id}", issued_at=NOW, expires_at=NOW + timedelta(days=90)))
    if below_since:
        session.merge(TierStatus(member_id=member.id, below_since=below_since, evaluated_at=below_since))
    for i, (channel, purpose) in enumerate([("phone", "marketing"), ("sms", "service"), ("phone", "care")]):
        gate.request_touch(session, member_id=member.id, channel=channel, purpose=purpose, source="test",
                           idempotency_key=f"{member.id}-{i}", template="t", variables={}, now=NOW - timedelta(days=i))
    gate.record_complaint(session, member_id=member.id, category="delivery", note="late", actor="agent-1",
                          now=NOW - timedelta(days=3))
    crm.add_note(session, member_id=member.id, agent_id="agent-1", fields={"kids": 2}, text="call after 6", now=NOW)
    members.set_channel_reachability(session, member_id=member.id, channel=ContactChannel.WECHAT, reachable=False,
                                     reason="wechat_unsubscribed", now=NOW)
    session.flush()
    return member


@pytest.mark.parametrize("below_since", [None, datetime(2026, 2, 20, tzinfo=UTC)])
@pytest.mark.parametrize("days_later", [0, 15, 45])
def test_the_one_statement_picture_agrees_with_every_per_concept_read(session, below_since, days_later):
    member = rich_member(session, below_since=below_since)
    now = NOW + timedelta(days=days_later)
    picture = crm.member_picture(session, member=member, unmasked=False, now=now)

    tier = tiers.explain_tier(session, member_id=member.id, now=now)
    assert picture["tier"] == {"tier": tier.tier, "spend_fen": tier.spend_fen, "next_tier": tier.next_tier,
                               "missing_fen": tier.missing_fen, "safe_until": tier.safe_until}
    balance = points.balance_of(session, member_id=member.id, now=now)
    assert picture["points"] == {"available": balance.available, "pending": balance.pending,
                                 "expiring_soon": balance.expiring_soon,
                                 "expiring_soon_date": balance.expiring_soon_date}
    verdict = gate.evaluate_contact(session, member_id=member.id, channel="phone", purpose="marketing", now=now)
    assert picture["may_pitch_by_phone"] == {
        "verdict": verdict.verdict, "reasons": list(verdict.reasons),
        "next_allowed_at": verdict.send_at if verdict.verdict == "deferred" else verdict.next_allowed_at}
    assert [(c["code"], c["expires_at"], c["state"]) for c in picture["coupons"]] == [
        (c.code, c.expires_at, state_of(c, now=now)) for c in coupons_of(session, member_id=member.id)][:10]
    assert [(o["order_id"], o["occurred_at"]) for o in picture["recent_orders"]] == [
        (o.order_id, o.occurred_at) for o in orders.recent_orders(session, member_id=member.id, limit=5)]
    assert [(t["id"], t["decision"], t["reasons"], t["requested_at"]) for t in picture["recent_contacts"]] == [
        (t.id, t.decision, t.reasons, t.requested_at) for t in touchpoints.touches_of(session, member_id=member.id,
                                                                                      limit=10)]
    assert [(c["id"], c["opened_at"]) for c in picture["open_complaints"]] == [
        (c.id, c.opened_at) for c in gate.complaints_of(session, member_id=member.id, open_only=True)]
    assert picture["consents"] == members.consents_of(session, member_id=member.id)
    assert picture["unreachable_channels"] == members.unreachable_channels(session, member_id=member.id)
    assert [(n["text"], n["created_at"]) for n in picture["notes"]] == [
        (n.text, n.created_at) for n in crm.notes_of(session, member_id=member.id)]
    assert picture["active_journeys"] == journeys.active_journeys_of(session, member_id=member.id)
    assert picture["points"]["pending"] > 0 and picture["recent_contacts"] and picture["open_complaints"]


def test_a_member_with_nothing_yet_has_an_empty_picture_not_an_error(session):
    member = make_member(session, now=JOINED)
    picture = crm.member_picture(session, member=member, unmasked=True, now=NOW)
    assert picture["tier"]["tier"] == "D" and picture["tier"]["spend_fen"] == 0
    assert picture["points"] == {"available": 0, "pending": 0, "expiring_soon": 0, "expiring_soon_date": None}
    assert picture["coupons"] == picture["recent_orders"] == picture["notes"] == [] and picture["consents"] == {}


@pytest.mark.parametrize("durable", [False, True])
def test_a_lookups_access_log_commit_waits_for_the_disk_only_when_configured(session, monkeypatch, durable):
    from domain.access.service import record_access
    from domain.settings import get_settings

    monkeypatch.setattr(get_settings(), "access_log_durable_commit", durable)
    member = make_member(session, now=JOINED)
    record_access(session, api_key_name="k", agent_id="a", member_id=member.id, action="crm.lookup", reason="call",
                  now=NOW, read_only_transaction=True)
    assert session.execute(sa.text("SHOW synchronous_commit")).scalar_one() == ("on" if durable else "off")
    record_access(session, api_key_name="k", agent_id="a", member_id=member.id, action="x", reason="y", now=NOW)
    session.flush()
    assert session.execute(sa.text("SELECT count(*) FROM access_log WHERE member_id = :m"),
                           {"m": member.id}).scalar_one() == 2


def test_the_picture_shows_the_top_channel_and_lifecycle_and_chooses_the_message_channel_by_score(session):
    from domain.lifecycle import service as lifecycle
    from domain.scores import service as scores

    member = make_member(session, now=JOINED, consents={ContactChannel.APP: True, ContactChannel.SMS: True})
    before = crm.member_picture(session, member=member, unmasked=False, now=NOW)["member"]
    assert before["top_channel"] is None and before["lifecycle_stage"] is None
    assert before["message_channel"] == "app"  # the configured order before there are scores
    scores.ingest_usage(session, source="ivr", rows=[scores.UsageRow(member.id, "sms", datetime(2026, 3, d).date(), 1)
                                                     for d in (1, 2, 3)], now=NOW)
    scores.score_members(session, as_of=NOW.date(), seed=1, now=NOW)
    lifecycle.refresh_lifecycle(session, as_of=NOW, member_range=(member.id, member.id))
    picture = crm.member_picture(session, member=member, unmasked=False, now=NOW)["member"]
    assert picture["top_channel"]["channel"] == "sms" and "sms" in picture["top_channel"]["why"]
    assert picture["message_channel"] == "sms"  # the best-scoring consented channel, not the configured order's
    assert picture["lifecycle_stage"] == "maturity"
    assert picture["top_channel"] == scores.top_channel_of(session, member_id=member.id)
