"""Privacy: export holds everything about a member, erasure leaves nothing to find them by and the ledger whole,
retention ages data at ``as_of``."""

from __future__ import annotations

import json
from datetime import timedelta

import sqlalchemy as sa
from click.testing import CliRunner
from sqlmodel import Session, SQLModel

from cli.main import main
from domain.contact_policy.service import record_complaint
from domain.crm.service import add_note, record_interest
from domain.members.models import ContactChannel, MemberStatus
from domain.members.service import MemberSearch, find_member, get_member, search_members
from domain.points.service import adjust_points, balances_of, redeem_points, verify_points
from domain.privacy import service as privacy
from domain.privacy.rules import MEMBER_KEYS, MEMBER_TABLES, OPENID_TABLES, RetentionPolicy
from tests.factories import DEFAULT_NOW, make_member, make_order

PHONE = "+8613912345678"
EMAIL = "li.lei@example.com"
OPENID = "o-privacy-openid-1"


def _rich_member(session: Session):
    """A member with something in most corners of the schema: identities, orders, points, notes, WeChat."""
    member = make_member(session, phone=PHONE, email=EMAIL, wechat_openid=OPENID, wechat_unionid="u-privacy-1",
                         name="Han Meimei", city="Hangzhou", tags=["vip"], external_ids={"pos": "P-99"},
                         consents={ContactChannel.SMS: True})
    make_order(session, member_id=member.id, amount_fen=250_000, order_id="O-PRIV-1")
    adjust_points(session, member_id=member.id, adjustment_id="adj-priv-1", points=500, reason="goodwill",
                  actor="tests", now=DEFAULT_NOW)
    redeem_points(session, member_id=member.id, redemption_id="red-priv-1", points=200, reason="gift",
                  now=DEFAULT_NOW)
    record_complaint(session, member_id=member.id, category="service", note="rude agent, call me on " + PHONE,
                     actor="tests", now=DEFAULT_NOW)
    add_note(session, member_id=member.id, agent_id="agent-1", fields={"spouse": "Li Lei"}, text="lives in Xihu",
             now=DEFAULT_NOW)
    record_interest(session, member_id=member.id, product="gold-card", source="ivr", at=DEFAULT_NOW)
    session.execute(sa.text("INSERT INTO wechat_followers (openid, member_id, subscribed, subscribed_at) "
                            "VALUES (:o, :m, true, :t)"), {"o": OPENID, "m": member.id, "t": DEFAULT_NOW})
    session.commit()
    return member


def test_every_table_holding_a_member_is_classified_for_erasure():
    """A new table with a member column must say what erasure does to it (and why) before it ships."""
    holding = {t.name for t in SQLModel.metadata.sorted_tables if any(k in t.c for k in MEMBER_KEYS)} | {"members"}
    assert holding == set(privacy.member_tables()) == set(MEMBER_TABLES)
    assert set(OPENID_TABLES) <= set(SQLModel.metadata.tables)
    assert all(treatment.why for treatment in MEMBER_TABLES.values())


def test_export_returns_everything_held_about_the_member_and_nothing_about_others(session):
    member = _rich_member(session)
    other = make_member(session, name="Someone Else")
    document = privacy.export_member(session, member_id=member.id, now=DEFAULT_NOW)
    json.dumps(document)  # JSON as it is
    tables = document["tables"]
    for name, keys in privacy.member_tables().items():  # every table with a row of theirs is in the export, whole
        held = session.execute(sa.text(f'SELECT count(*) FROM "{name}" WHERE '
                                       + " OR ".join(f"{k} = :m" for k in keys)), {"m": member.id}).scalar_one()
        assert len(tables.get(name, [])) == held, name
    assert tables["members"][0]["phone"] == PHONE and tables["members"][0]["email"] == EMAIL
    assert {"orders", "points_ledger", "points_lots", "complaints", "agent_notes", "interest_events",
            "member_external_ids", "member_consents", "wechat_followers", "domain_events"} <= set(tables)
    flat = json.dumps(tables)
    assert f'"member_id": {other.id},' not in flat and "Someone Else" not in flat


def test_erasure_leaves_nothing_to_find_the_member_by_and_the_ledger_whole(session):
    member = _rich_member(session)
    before = balances_of(session, member_ids=[member.id], now=DEFAULT_NOW)[member.id]

    tombstone, fresh = privacy.erase_member(session, member_id=member.id, actor="tests", reason="request #1",
                                            now=DEFAULT_NOW)

    assert fresh and tombstone.reason == "request #1"
    assert verify_points(session) == []
    assert balances_of(session, member_ids=[member.id], now=DEFAULT_NOW)[member.id] == before
    assert find_member(session, phone=PHONE) is None and find_member(session, openid=OPENID) is None
    assert find_member(session, unionid="u-privacy-1") is None
    assert find_member(session, external=("pos", "P-99")) is None
    assert search_members(session, search=MemberSearch(name_prefix="Han"), cursor=None, limit=10).items == []
    assert session.execute(sa.text("SELECT count(*) FROM members WHERE email = :e"), {"e": EMAIL}).scalar_one() == 0
    row = get_member(session, member_id=member.id)
    assert (row.status, row.name, row.phone, row.city, row.tags) == (MemberStatus.CLOSED, None, None, None, [])
    export = json.dumps(privacy.export_member(session, member_id=member.id, now=DEFAULT_NOW))
    for secret in (PHONE, EMAIL, OPENID, "Han Meimei", "Hangzhou", "Xihu", "Li Lei", "P-99"):
        assert secret not in export, secret
    orders = session.execute(sa.text("SELECT count(*) FROM orders WHERE member_id = :m"), {"m": member.id})
    assert orders.scalar_one() == 1  # the sale stays, pointing at the tombstone

    again, fresh_again = privacy.erase_member(session, member_id=member.id, actor="someone", reason="again",
                                              now=DEFAULT_NOW + timedelta(days=1))
    assert not fresh_again and (again.actor, again.erased_at) == ("tests", DEFAULT_NOW)


def test_cli_erase_then_points_verify_passes(committed_engine):
    with Session(committed_engine, expire_on_commit=False) as session:
        member = _rich_member(session)
    runner = CliRunner()
    erased = runner.invoke(main, ["privacy", "erase", str(member.id), "--reason", "ticket 7", "--yes"])
    assert erased.exit_code == 0, erased.output
    assert json.loads(erased.stdout)["replayed"] is False
    verify = runner.invoke(main, ["points", "verify"])
    assert verify.exit_code == 0 and "consistent" in verify.output, verify.output
    exported = runner.invoke(main, ["privacy", "export", str(member.id), "--reason", "ticket 7"])
    assert exported.exit_code == 0 and PHONE not in exported.stdout
    assert json.loads(exported.stdout)["tables"]["privacy_erasures"][0]["reason"] == "ticket 7"
    with committed_engine.connect() as conn:
        logged = conn.execute(sa.text("SELECT action FROM access_log WHERE member_id = :m"), {"m": member.id})
        assert logged.scalars().all() == ["privacy.export"]
    missing = runner.invoke(main, ["privacy", "erase", "999999", "--reason", "x", "--yes"])
    assert missing.exit_code != 0 and "member_not_found" in missing.output and "Traceback" not in missing.output


def test_retention_at_as_of_ages_access_log_touch_contents_and_long_closed_members(session):
    member = _rich_member(session)
    kept = make_member(session)
    as_of = DEFAULT_NOW + timedelta(days=400)
    policy = RetentionPolicy(access_log_days=365, touch_content_days=365, closed_member_days=300)
    for days_before, who in ((366, member.id), (364, kept.id)):
        session.execute(sa.text("INSERT INTO access_log (api_key_name, member_id, action, reason, at) "
                                "VALUES ('k', :m, 'lookup', 'call', :at)"),
                        {"m": who, "at": as_of - timedelta(days=days_before)})
    for days_before, who in ((366, member.id), (364, kept.id)):
        session.execute(sa.text(
            "INSERT INTO touches (member_id, channel, purpose, source, idempotency_key, template, variables, "
            "decision, reasons, status, requested_at, attempts) VALUES (:m, 'sms', 'service', 'tests', :k, 'x', "
            "'{\"name\": \"Han Meimei\"}', 'allowed', '{}', 'sent', :at, 1)"),
            {"m": who, "k": f"t-{who}", "at": as_of - timedelta(days=days_before)})
    session.execute(sa.text("UPDATE members SET status = 'closed', closed_at = :at WHERE id = :m"),
                    {"at": as_of - timedelta(days=301), "m": member.id})

    counts = privacy.apply_retention(session, policy=policy, as_of=as_of, limit=1000)
    assert counts == {"access_log_deleted": 1, "delivery_attempts_deleted": 0, "touches_scrubbed": 1,
                      "members_erased": 1}
    left = session.execute(sa.text("SELECT member_id FROM access_log")).scalars().all()
    assert left == [kept.id]
    variables = dict(session.execute(sa.text("SELECT member_id, variables FROM touches")).tuples().all())
    assert variables == {member.id: {}, kept.id: {"name": "Han Meimei"}}
    assert find_member(session, phone=PHONE) is None and find_member(session, phone=kept.phone) is not None
    assert verify_points(session) == []
    again = privacy.apply_retention(session, policy=policy, as_of=as_of, limit=1000)
    assert again == dict.fromkeys(again, 0)  # idempotent at the same as_of
