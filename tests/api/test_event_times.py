"""Time at the edges (issue #16): one check (``domain/orders/rules.py::check_event_time``) for orders, refunds
and usage facts. A time without its offset is a 422; an order more than a few minutes ahead of the server is a
422; an order older than the back-dating window is a 422 on the systems' route and accepted by the operators'
import, where its points are dated by the order."""

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from api.deps import get_now
from domain.errors import InvalidInput
from domain.orders.rules import check_event_time
from tests.factories import make_member

NOW = datetime(2026, 3, 2, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai


@pytest.fixture(autouse=True)
def clock(app_client):
    app_client.app.dependency_overrides[get_now] = lambda: NOW


def order(client, headers, member_id, at: str, *, order_id="T-1", amount_fen=10_000, path="/v1/orders"):
    return client.post(path, headers=headers, json={"order_id": order_id, "member_id": member_id,
                                                    "amount_fen": amount_fen, "channel": "store", "occurred_at": at})


def test_a_time_without_an_offset_is_refused_not_read_as_utc(app_client, app_headers, session):
    member = make_member(session, now=NOW - timedelta(days=100))
    naive = order(app_client, app_headers, member.id, "2026-03-02T11:00:00")
    assert naive.status_code == 422
    assert naive.json()["error"]["details"]["errors"][0]["type"] == "timezone_aware"
    assert order(app_client, app_headers, member.id, "2026-03-02T11:00:00+08:00").status_code == 201
    refund = app_client.post("/v1/orders/T-1/refunds", headers=app_headers,
                             json={"refund_id": "R-1", "amount_fen": 100, "occurred_at": "2026-03-02T11:30:00"})
    assert refund.status_code == 422


def test_an_order_forty_minutes_ahead_is_refused_and_does_not_lift_the_tier(app_client, app_headers, admin_headers,
                                                                             session):
    member = make_member(session, now=NOW - timedelta(days=100))
    ahead = order(app_client, app_headers, member.id, (NOW + timedelta(minutes=40)).isoformat(), amount_fen=2_500_000)
    assert ahead.status_code == 422 and ahead.json()["error"]["code"] == "timestamp_in_future"
    assert ahead.json()["error"]["details"]["future_minutes"] == 5
    assert app_client.get(f"/v1/members/{member.id}/tier", headers=admin_headers).json()["tier"] == "D"
    # Within the drift allowance the same order is taken and lifts the member three steps at once.
    drift = order(app_client, app_headers, member.id, (NOW + timedelta(minutes=4)).isoformat(), amount_fen=2_500_000)
    assert drift.status_code == 201 and drift.json()["tier_at_order"] == "D"
    session.expire_all()  # the hot route wrote through the test's connection behind this session's identity map
    assert app_client.get(f"/v1/members/{member.id}/tier", headers=admin_headers).json()["tier"] == "A"


def test_an_old_order_needs_the_operators_import_and_earns_by_its_own_date(app_client, app_headers, admin_headers,
                                                                           session):
    member = make_member(session, now=NOW - timedelta(days=800))
    old_at = datetime(2024, 6, 1, 4, 0, tzinfo=UTC)
    refused = order(app_client, app_headers, member.id, old_at.isoformat(), order_id="OLD-1")
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "timestamp_too_old"
    assert refused.json()["error"]["details"]["backdating_days"] == 30
    # An app key may not import; an operator's key may.
    assert order(app_client, app_headers, member.id, old_at.isoformat(), order_id="OLD-1",
                 path="/v1/admin/orders").status_code == 403
    imported = order(app_client, admin_headers, member.id, old_at.isoformat(), order_id="OLD-1",
                     path="/v1/admin/orders")
    assert imported.status_code == 201 and imported.json()["points_earned"] == 100
    again = order(app_client, admin_headers, member.id, old_at.isoformat(), order_id="OLD-1", path="/v1/admin/orders")
    assert again.status_code == 200 and again.json()["replayed"]
    # Dated by the order: pending 7 days from June 2024, expiring 12 months after that, i.e. already due.
    ledger = app_client.get(f"/v1/members/{member.id}/points/ledger", headers=admin_headers).json()["entries"]
    order_pk = session.execute(sa.text("SELECT id FROM orders WHERE order_id = 'OLD-1'")).scalar_one()
    assert [(e["source"], e["source_ref"]) for e in ledger] == [("order", str(order_pk))]  # its row (migration 1503)
    lot = session.execute(sa.text(
        "SELECT available_at, expires_at FROM points_lots WHERE member_id = :m"), {"m": member.id}).one()
    assert lot.available_at == old_at + timedelta(days=7)
    assert lot.expires_at < NOW
    # A spend from 2024 is outside the 12-month window: no tier lift.
    assert app_client.get(f"/v1/members/{member.id}/tier", headers=admin_headers).json()["tier"] == "D"
    # Inside the window the systems' route still takes a late order.
    assert order(app_client, app_headers, member.id, (NOW - timedelta(days=29)).isoformat(),
                 order_id="LATE-1").status_code == 201


def test_a_refund_dated_in_the_future_is_refused(app_client, app_headers, session):
    member = make_member(session, now=NOW - timedelta(days=100))
    assert order(app_client, app_headers, member.id, NOW.isoformat()).status_code == 201
    ahead = app_client.post("/v1/orders/T-1/refunds", headers=app_headers, json={
        "refund_id": "R-1", "amount_fen": 100, "occurred_at": (NOW + timedelta(hours=2)).isoformat()})
    assert ahead.status_code == 422 and ahead.json()["error"]["code"] == "timestamp_in_future"


def test_a_usage_fact_of_tomorrow_in_shanghai_is_refused(app_client, admin_headers, session):
    member = make_member(session, now=NOW - timedelta(days=100))

    def send(day: str):
        return app_client.post("/v1/channel-usage", headers=admin_headers, json={
            "source": "ivr", "facts": [{"member_id": member.id, "channel": "phone", "day": day, "transactions": 1}]})

    assert send("2026-03-02").status_code == 200  # today in Shanghai (12:00)
    assert send("2025-09-02").status_code == 200  # history: the admin route is an import
    tomorrow = send("2026-03-03")
    assert tomorrow.status_code == 422 and tomorrow.json()["error"]["code"] == "timestamp_in_future"


@pytest.mark.parametrize(("at", "imported", "code"), [
    (NOW + timedelta(minutes=5), False, None),
    (NOW + timedelta(minutes=5, seconds=1), False, "timestamp_in_future"),
    (NOW + timedelta(minutes=5, seconds=1), True, "timestamp_in_future"),
    (NOW - timedelta(days=30), False, None),
    (NOW - timedelta(days=30, seconds=1), False, "timestamp_too_old"),
    (NOW - timedelta(days=3000), True, None),
    (datetime(2026, 3, 2, 12, 0), False, "timestamp_without_offset"),
])
def test_the_one_check_at_its_edges(at, imported, code):
    try:
        check_event_time(at, now=NOW, what="order", future_minutes=5, backdating_days=None if imported else 30)
    except InvalidInput as exc:
        assert exc.code == code
    else:
        assert code is None
