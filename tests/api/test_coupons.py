"""Coupons can be used (issue #16): redeemed at a till or in the app once, idempotently by the redeeming system's
key, and voided by a supervisor with a reason; of two connections redeeming the same coupon exactly one wins; the
state is visible to the member (/v1/me/coupons) and to the call center's lookup; ``coupon.redeemed`` goes out."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from threading import Barrier

import pytest
import sqlalchemy as sa

from api.deps import get_now
from domain.db import unit_of_work
from domain.errors import Conflict
from domain.rebates import service as rebates
from domain.rebates.models import Coupon
from domain.rebates.rules import COUPON_STATE_SQL, coupon_state
from tests.factories import make_api_key, make_member, make_staff, member_auth, staff_auth

NOW = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.fixture(autouse=True)
def clock(app_client):
    app_client.app.dependency_overrides[get_now] = lambda: NOW


def give(session, member_id: int, code: str, *, expires_in: timedelta = 30 * DAY) -> Coupon:
    coupon = Coupon(code=code, member_id=member_id, value_fen=3_000, source="rebate", source_ref=code,
                    issued_at=NOW - DAY, expires_at=NOW + expires_in)
    session.add(coupon)
    session.commit()
    return coupon


@pytest.fixture
def till(session):
    return {"Authorization": f"Bearer {make_api_key(session, scope='pos', name='till-1')[1]}"}


def redeem(client, headers, member_id, code, redemption_id):
    return client.post(f"/v1/members/{member_id}/coupons/{code}/redemption", headers=headers,
                       json={"redemption_id": redemption_id})


def test_a_coupon_is_redeemed_once_and_a_replay_answers_the_first_redemption(app_client, session, till):
    member = make_member(session, now=NOW - 100 * DAY)
    give(session, member.id, "RB-1")
    first = redeem(app_client, till, member.id, "RB-1", "TILL-77")
    assert first.status_code == 201, first.text
    assert first.json()["state"] == "redeemed" and not first.json()["replayed"]
    again = redeem(app_client, till, member.id, "RB-1", "TILL-77")
    assert again.status_code == 200 and again.json()["replayed"]
    other = redeem(app_client, till, member.id, "RB-1", "TILL-78")
    assert other.status_code == 409 and other.json()["error"]["code"] == "coupon_redeemed"
    events = session.execute(sa.text("SELECT payload FROM domain_events WHERE kind = 'coupon.redeemed'")).scalars()
    assert list(events) == [{"code": "RB-1", "value_fen": 3_000, "redemption_id": "TILL-77"}]
    # Someone else's coupon, or a code that does not exist, is not found for this member.
    stranger = make_member(session, now=NOW - 100 * DAY)
    assert redeem(app_client, till, stranger.id, "RB-1", "TILL-79").status_code == 404


def test_an_expired_coupon_is_refused_and_a_voided_one_cannot_be_redeemed(app_client, session, till, staff_headers):
    member = make_member(session, now=NOW - 100 * DAY)
    give(session, member.id, "RB-OLD", expires_in=-DAY)
    give(session, member.id, "RB-BAD")
    expired = redeem(app_client, till, member.id, "RB-OLD", "T-1")
    assert expired.status_code == 422 and expired.json()["error"]["code"] == "coupon_expired"
    supervisor = staff_headers("supervisor", username="sup-c")
    body = {"void_id": "V-1", "reason": "issued twice by mistake"}
    assert app_client.post(f"/v1/members/{member.id}/coupons/RB-BAD/void", headers=till, json=body).status_code == 403
    voided = app_client.post(f"/v1/members/{member.id}/coupons/RB-BAD/void", headers=supervisor, json=body)
    assert voided.status_code == 201 and voided.json()["state"] == "voided"
    replay = app_client.post(f"/v1/members/{member.id}/coupons/RB-BAD/void", headers=supervisor, json=body)
    assert replay.status_code == 200 and replay.json()["replayed"]
    refused = redeem(app_client, till, member.id, "RB-BAD", "T-2")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "coupon_voided"
    row = session.execute(sa.text("SELECT void_reason, voided_by FROM coupons WHERE code = 'RB-BAD'")).one()
    assert row == ("issued twice by mistake", "staff:sup-c")


def test_a_redeemed_coupon_cannot_be_voided(app_client, session, till, staff_headers):
    member = make_member(session, now=NOW - 100 * DAY)
    give(session, member.id, "RB-2")
    assert redeem(app_client, till, member.id, "RB-2", "T-9").status_code == 201
    late = app_client.post(f"/v1/members/{member.id}/coupons/RB-2/void", headers=staff_headers("operator"),
                           json={"void_id": "V-9", "reason": "too late"})
    assert late.status_code == 409 and late.json()["error"]["code"] == "coupon_redeemed"


def test_the_state_is_visible_to_the_member_and_in_the_crm_lookup(app_client, session, till, staff_headers):
    member = make_member(session, now=NOW - 100 * DAY)
    for code, expires_in in (("RB-A", 30 * DAY), ("RB-U", 30 * DAY), ("RB-V", 30 * DAY), ("RB-E", -DAY)):
        give(session, member.id, code, expires_in=expires_in)
    assert redeem(app_client, till, member.id, "RB-U", "T-1").status_code == 201
    assert app_client.post(f"/v1/members/{member.id}/coupons/RB-V/void", headers=staff_headers("supervisor"),
                           json={"void_id": "V-1", "reason": "fraud case"}).status_code == 201
    expected = {"RB-A": "available", "RB-U": "redeemed", "RB-V": "voided", "RB-E": "expired"}
    mine = app_client.get("/v1/me/coupons", headers=member_auth(session, member)).json()
    assert {c["code"]: c["state"] for c in mine} == expected
    agent = staff_auth(session, make_staff(session, role="agent", username="agent-c"))
    looked = app_client.get("/v1/crm/members/lookup", headers=agent,
                            params={"phone": member.phone, "reason": "caller asks about coupons"})
    assert looked.status_code == 200, looked.text
    assert {c["code"]: c["state"] for c in looked.json()["coupons"]} == expected


def test_two_connections_redeeming_one_coupon_at_once_one_wins(committed_engine):
    with unit_of_work(committed_engine) as session:
        member = make_member(session, now=NOW - 100 * DAY)
        give(session, member.id, "RB-RACE")
        session.commit()
        member_id = member.id
    barrier = Barrier(4, timeout=30)

    def attempt(i: int) -> str:
        with unit_of_work(committed_engine) as session:
            barrier.wait()
            try:
                rebates.redeem_coupon(session, member_id=member_id, code="RB-RACE", redemption_id=f"TILL-{i}", now=NOW)
                session.commit()
                return "won"
            except Conflict as exc:
                return exc.code

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(attempt, range(4)))
    assert sorted(results) == ["coupon_redeemed"] * 3 + ["won"]
    with committed_engine.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM domain_events WHERE kind = 'coupon.redeemed'")) == 1


def test_the_coupon_state_rule_agrees_in_sql_and_python_on_generated_coupons(session):
    rng = random.Random(16)
    member = make_member(session, now=NOW - 100 * DAY)
    moments = [NOW - 2 * DAY, NOW - timedelta(seconds=1), NOW, NOW + timedelta(seconds=1), NOW + 2 * DAY]
    for i in range(200):
        session.add(Coupon(code=f"G-{i}", member_id=member.id, value_fen=100, source="gen", source_ref=str(i),
                           issued_at=NOW - 9 * DAY, expires_at=rng.choice(moments),
                           redeemed_at=rng.choice([None, None, NOW - DAY]),
                           voided_at=rng.choice([None, None, NOW - DAY])))
    session.flush()
    sql = COUPON_STATE_SQL.format(c="c", now=":now")
    rows = session.execute(sa.text(f"SELECT c.code, c.redeemed_at, c.voided_at, c.expires_at, {sql} AS state "
                                   "FROM coupons c WHERE c.source = 'gen'"), {"now": NOW}).all()
    assert len(rows) == 200 and {r.state for r in rows} == {"available", "redeemed", "voided", "expired"}
    for row in rows:
        assert row.state == coupon_state(redeemed_at=row.redeemed_at, voided_at=row.voided_at,
                                         expires_at=row.expires_at, now=NOW), row
