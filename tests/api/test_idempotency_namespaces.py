"""Idempotency keys are namespaced by the calling credential (migration 1503): one key can neither replay
another's order, refund, redemption or touch (and so read its answer) nor pre-empt it by sending its id first."""

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from threading import Barrier

from sqlmodel import Session, select

from domain.orders.models import Order
from domain.orders.service import NewOrder, record_order
from domain.points.models import LedgerEntry
from domain.points.service import verify_points
from tests.factories import make_api_key, make_member, make_order, make_staff, staff_auth

AT = (datetime.now(UTC) - timedelta(hours=1)).isoformat()  # the API checks orders against the real clock


def _key(session, scope: str, name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_api_key(session, scope=scope, name=name)[1]}"}


def _order(client, headers, *, member_id: int, order_id: str = "1001", amount_fen: int = 10_000):
    return client.post("/v1/orders", headers=headers, json={
        "order_id": order_id, "member_id": member_id, "amount_fen": amount_fen, "channel": "store", "occurred_at": AT})


def test_two_tills_with_the_same_order_id_each_get_their_own_order_and_never_the_others(app_client, session):
    till_a, till_b = _key(session, "pos", "till-a"), _key(session, "pos", "till-b")
    alice, bob = make_member(session), make_member(session)
    first_a = _order(app_client, till_a, member_id=alice.id, amount_fen=10_000)
    first_b = _order(app_client, till_b, member_id=bob.id, amount_fen=20_000)
    assert (first_a.status_code, first_b.status_code) == (201, 201), (first_a.text, first_b.text)
    again_b = _order(app_client, till_b, member_id=bob.id, amount_fen=20_000)
    assert again_b.status_code == 200 and again_b.json()["replayed"]
    assert (again_b.json()["member_id"], again_b.json()["amount_fen"]) == (bob.id, 20_000)
    # Till B replaying till A's order as A sent it is a new order of B's, never A's answer.
    copy = _order(app_client, till_b, member_id=alice.id, amount_fen=10_000, order_id="1002")
    assert copy.status_code == 201
    rows = session.exec(select(Order.sent_by, Order.order_id, Order.member_id).order_by(Order.id)).all()
    assert [tuple(r) for r in rows] == [("api:till-a", "1001", alice.id), ("api:till-b", "1001", bob.id),
                                        ("api:till-b", "1002", alice.id)]
    # Each order earns its points once, under its own ledger reference (the order's row id).
    earned = session.exec(select(LedgerEntry.source_ref, LedgerEntry.details).where(
        LedgerEntry.source == "order").order_by(LedgerEntry.id)).all()
    order_ids = session.exec(select(Order.id).order_by(Order.id)).all()
    assert [ref for ref, _ in earned] == [str(i) for i in order_ids]
    assert [details["order_id"] for _, details in earned] == ["1001", "1001", "1002"]
    assert verify_points(session) == []


def test_a_key_that_sends_an_order_id_first_does_not_pre_empt_the_real_order(app_client, session):
    honest, rogue = _key(session, "pos", "till-honest"), _key(session, "app", "rogue-app")
    member = make_member(session)
    squat = _order(app_client, rogue, member_id=member.id, order_id="R-77", amount_fen=1)
    assert squat.status_code == 201
    real = _order(app_client, honest, member_id=member.id, order_id="R-77", amount_fen=50_000)
    assert real.status_code == 201 and not real.json()["replayed"], real.text
    assert real.json()["points_earned"] == 500


def test_a_refund_finds_only_the_callers_own_order_and_refund_ids_are_per_caller(app_client, session):
    till_a, till_b = _key(session, "pos", "till-a"), _key(session, "pos", "till-b")
    member = make_member(session)
    assert _order(app_client, till_a, member_id=member.id, order_id="O-9").status_code == 201
    session.commit()  # the hot route autocommits in production; here a refused request would roll it back
    refund = {"refund_id": "RF-1", "amount_fen": 1_000}
    foreign = app_client.post("/v1/orders/O-9/refunds", headers=till_b, json=refund)
    assert (foreign.status_code, foreign.json()["error"]["code"]) == (404, "order_not_found")
    assert _order(app_client, till_b, member_id=member.id, order_id="O-9").status_code == 201
    mine_a = app_client.post("/v1/orders/O-9/refunds", headers=till_a, json=refund)
    mine_b = app_client.post("/v1/orders/O-9/refunds", headers=till_b, json={**refund, "amount_fen": 2_000})
    assert (mine_a.status_code, mine_b.status_code) == (201, 201), (mine_a.text, mine_b.text)
    assert (mine_a.json()["amount_fen"], mine_b.json()["amount_fen"]) == (1_000, 2_000)
    replay_a = app_client.post("/v1/orders/O-9/refunds", headers=till_a, json=refund)
    assert replay_a.status_code == 200 and replay_a.json()["amount_fen"] == 1_000
    assert verify_points(session) == []


def test_redemption_ids_are_per_caller(app_client, session, now):
    member = make_member(session)
    from domain.points.service import adjust_points

    adjust_points(session, member_id=member.id, adjustment_id="seed", points=500, reason="t", actor="tests", now=now)
    session.commit()
    desk = _key(session, "crm", "service-desk")
    agent = staff_auth(session, make_staff(session, role="agent", username="agent-ns"))
    body = {"redemption_id": "gift-1", "points": 100, "reason": "mug"}
    path = f"/v1/members/{member.id}/redemptions"
    by_desk = app_client.post(path, headers=desk, json=body)
    by_agent = app_client.post(path, headers=agent, json={**body, "points": 50})
    assert (by_desk.status_code, by_agent.status_code) == (201, 201), (by_desk.text, by_agent.text)
    replay = app_client.post(path, headers=agent, json={**body, "points": 50})
    assert replay.status_code == 200 and replay.json()["points"] == 50
    assert app_client.post(path, headers=desk, json={**body, "points": 1}).status_code == 409  # its own, changed
    assert verify_points(session) == []


def test_touch_idempotency_keys_are_per_caller_and_cannot_claim_a_journeys_source(app_client, session, admin_headers):
    member = make_member(session, consents={"sms": True})
    app_a, app_b = _key(session, "app", "shop-a"), _key(session, "app", "shop-b")
    body = {"channel": "sms", "idempotency_key": "welcome-1", "template": "how_it_works",
            "variables": {"name": "Li"}, "source": "journey:welcome"}
    path = f"/v1/members/{member.id}/contacts"
    first_a = app_client.post(path, headers=app_a, json=body)
    first_b = app_client.post(path, headers=app_b, json=body)
    assert (first_a.status_code, first_b.status_code) == (201, 201), (first_a.text, first_b.text)
    assert first_a.json()["id"] != first_b.json()["id"]
    assert (first_a.json()["source"], first_b.json()["source"]) == ("api:shop-a/journey:welcome",
                                                                    "api:shop-b/journey:welcome")
    without = app_client.post(path, headers=app_a, json={k: v for k, v in body.items() if k != "source"})
    assert without.status_code == 201 and without.json()["source"] == "api:shop-a"


def test_two_callers_racing_with_one_order_id_both_get_their_own_order(committed_engine):
    """Several real connections: the unique key is (sent_by, order_id), so neither waits for nor sees the other."""
    with Session(committed_engine, expire_on_commit=False) as session:
        member = make_member(session)
        make_order(session, member_id=member.id, order_id="warm-up")
        session.commit()
    callers = [f"api:till-{i}" for i in range(6)]
    barrier = Barrier(len(callers), timeout=30)

    def send(sent_by: str) -> tuple[str, bool, str]:
        with Session(committed_engine, expire_on_commit=False) as session:
            barrier.wait()
            order, replayed = record_order(session, new=NewOrder(
                order_id="SAME", member_id=member.id, amount_fen=5_000, channel="store",
                occurred_at=datetime(2026, 3, 1, 4, tzinfo=UTC), items=[], sent_by=sent_by),
                now=datetime(2026, 3, 1, 5, tzinfo=UTC))
            session.commit()
            return order.sent_by, replayed, order.order_id

    with ThreadPoolExecutor(len(callers)) as pool:
        results = sorted(pool.map(send, callers))
    assert results == [(c, False, "SAME") for c in callers]
    with Session(committed_engine) as session:
        assert verify_points(session) == []
