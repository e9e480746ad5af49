from datetime import UTC, datetime

import pytest

from api.deps import get_now
from domain.points.service import verify_points


@pytest.fixture(autouse=True)
def clock(app_client, now):
    """The orders below happened on 1 March 2026; the server's clock is the next day (orders older than the
    back-dating window are refused, docs/rules.md)."""
    app_client.app.dependency_overrides[get_now] = lambda: now


def member(client, headers):
    return client.post("/v1/members", json={"source_channel": "store", "phone": "13800138000"}, headers=headers).json()


def order(client, headers, member_id, order_id="O-1", amount_fen=600_000):
    return client.post("/v1/orders", headers=headers, json={
        "order_id": order_id, "member_id": member_id, "amount_fen": amount_fen, "channel": "store",
        "occurred_at": "2026-03-01T10:00:00+08:00", "items": [{"sku": "TEA-1", "qty": 2}]})


def test_an_order_over_http_is_recorded_once_and_a_changed_replay_is_409(app_client, app_headers, session):
    m = member(app_client, app_headers)
    first = order(app_client, app_headers, m["id"])
    assert first.status_code == 201 and first.json()["points_earned"] == 6_000 and not first.json()["replayed"]
    again = order(app_client, app_headers, m["id"])
    assert again.status_code == 200 and again.json()["replayed"]
    changed = order(app_client, app_headers, m["id"], amount_fen=1)
    assert changed.status_code == 409 and changed.json()["error"]["code"] == "order_conflict"
    assert verify_points(session) == []


def test_points_tier_and_ledger_read_back(app_client, app_headers, crm_key_headers):
    m = member(app_client, app_headers)
    order(app_client, app_headers, m["id"])
    assert app_client.get(f"/v1/members/{m['id']}/points", headers=crm_key_headers).json()["pending"] == 6_000
    tier = app_client.get(f"/v1/members/{m['id']}/tier", headers=crm_key_headers).json()
    assert (tier["tier"], tier["next_tier"], tier["missing_fen"]) == ("B", "A", 1_400_000)
    page = app_client.get(f"/v1/members/{m['id']}/points/ledger", headers=crm_key_headers).json()
    assert [e["kind"] for e in page["entries"]] == ["earn"]


def test_refund_redemption_and_adjustment_errors_are_clear(app_client, app_headers, admin_headers, crm_key_headers):
    m = member(app_client, app_headers)
    order(app_client, app_headers, m["id"], amount_fen=10_000)
    too_much = app_client.post("/v1/orders/O-1/refunds", json={"refund_id": "R1", "amount_fen": 10_001},
                               headers=app_headers)
    assert too_much.status_code == 422 and too_much.json()["error"]["code"] == "refund_exceeds_order"
    missing = app_client.post("/v1/orders/NOPE/refunds", json={"refund_id": "R1", "amount_fen": 1}, headers=app_headers)
    assert missing.status_code == 404
    short = app_client.post(f"/v1/members/{m['id']}/redemptions", headers=crm_key_headers,
                            json={"redemption_id": "RD1", "points": 1, "reason": "gift"})
    assert short.status_code == 422 and short.json()["error"]["code"] == "insufficient_points"
    adj = app_client.post(f"/v1/members/{m['id']}/points/adjustments", headers=app_headers,
                          json={"adjustment_id": "A1", "points": 10, "reason": "goodwill"})
    assert adj.status_code == 403
    adj = app_client.post(f"/v1/members/{m['id']}/points/adjustments", headers=admin_headers,
                          json={"adjustment_id": "A1", "points": 10, "reason": "goodwill"})
    assert adj.status_code == 201 and adj.json()["actor"] == "test-admin"
    ok = app_client.post(f"/v1/members/{m['id']}/redemptions", headers=crm_key_headers,
                         json={"redemption_id": "RD2", "points": 10, "reason": "gift"})
    assert ok.status_code == 201 and ok.json()["allocations"][0]["points"] == 10


def test_coupons_are_listed(app_client, app_headers, crm_key_headers):
    m = member(app_client, app_headers)
    assert app_client.get(f"/v1/members/{m['id']}/coupons", headers=crm_key_headers).json() == []


def test_points_verify_command_reports_consistency(committed_engine):
    from click.testing import CliRunner

    from cli.main import main
    from domain.db import unit_of_work
    from tests.factories import make_member, make_order

    with unit_of_work(committed_engine) as session:
        m = make_member(session)
        make_order(session, member_id=m.id, amount_fen=10_000, occurred_at=datetime(2026, 1, 1, tzinfo=UTC))
    assert CliRunner().invoke(main, ["points", "verify"]).exit_code == 0
    with committed_engine.begin() as conn:  # tamper with the cached balance
        conn.exec_driver_sql("UPDATE points_accounts SET pending = pending + 1")
    broken = CliRunner().invoke(main, ["points", "verify"])
    assert broken.exit_code == 1 and f"member {m.id}" in broken.output
