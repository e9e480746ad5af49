"""The hot routes on their own async pool (api/hot.py), with real commits: the key cache, its invalidation by
NOTIFY, and the answers of the one-statement order, balance and lookup as the sync routes gave them."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa
from fastapi import Request
from fastapi.testclient import TestClient
from httpx import Response
from sqlmodel import Session, col

from api.encoding import json_bytes
from api.hot import KeyCache, PooledDb, positional
from api.main import create_app
from api.schemas.crm import CrmPicture
from domain.access.rules import prefix_of
from domain.access.service import revoke_api_key
from domain.access.tokens import verify_token
from domain.clock import utcnow
from domain.staff.models import StaffAccount
from domain.staff.service import STAFF_AUDIENCE, end_session
from tests.factories import make_api_key, make_member, make_staff, staff_auth


def _pooled(client: TestClient) -> PooledDb:
    db = client.app.state.hot_db  # type: ignore[attr-defined]
    assert isinstance(db, PooledDb)
    return db


def _wait_until_listening(client: TestClient) -> None:
    deadline = time.monotonic() + 10
    while not (_pooled(client).keys or KeyCache()).live:
        assert time.monotonic() < deadline, "the key-cache listener never started"
        time.sleep(0.02)


@pytest.fixture
def hot_client(committed_engine):
    with TestClient(create_app(), raise_server_exceptions=False) as client:
        yield client


def test_a_revoked_key_is_refused_as_soon_as_its_notification_arrives(committed_engine, hot_client):
    with Session(committed_engine, expire_on_commit=False) as session:
        _, key = make_api_key(session, scope="crm", name="crm-1")
        member = make_member(session)
    headers = {"Authorization": f"Bearer {key}"}
    assert hot_client.get(f"/v1/members/{member.id}/points", headers=headers).status_code == 200
    _wait_until_listening(hot_client)
    assert hot_client.get(f"/v1/members/{member.id}/points", headers=headers).status_code == 200
    prefix = prefix_of(key)
    assert prefix is not None
    cache = _pooled(hot_client).keys
    assert cache is not None and cache.get(prefix) is not None  # served from the cache from now on

    generation = cache.generation
    with Session(committed_engine, expire_on_commit=False) as session:
        revoke_api_key(session, name="crm-1", now=utcnow())
        session.commit()
    # The notification is sent at commit and reaches the worker a few milliseconds later (on this loaded
    # machine: measured below); a request racing it is like one already past its key check at the revoke.
    revoked_at = time.monotonic()
    while cache.generation == generation:
        assert time.monotonic() - revoked_at < 1.0, "no notification within a second of the revoke"
        time.sleep(0.001)

    refused = hot_client.get(f"/v1/members/{member.id}/points", headers=headers)
    assert refused.status_code == 401, refused.text
    assert refused.json()["error"]["code"] == "invalid_api_key"


def test_a_key_change_rolled_back_keeps_the_cache(committed_engine, hot_client):
    with Session(committed_engine, expire_on_commit=False) as session:
        _, key = make_api_key(session, scope="crm", name="crm-2")
        member = make_member(session)
    headers = {"Authorization": f"Bearer {key}"}
    assert hot_client.get(f"/v1/members/{member.id}/points", headers=headers).status_code == 200
    _wait_until_listening(hot_client)
    assert hot_client.get(f"/v1/members/{member.id}/points", headers=headers).status_code == 200
    cache = _pooled(hot_client).keys
    assert cache is not None
    generation = cache.generation
    with Session(committed_engine, expire_on_commit=False) as session:
        revoke_api_key(session, name="crm-2", now=utcnow())
        session.rollback()  # nothing committed: no notification, the key still works
    assert hot_client.get(f"/v1/members/{member.id}/points", headers=headers).status_code == 200
    assert cache.generation == generation


def test_without_the_listener_every_request_checks_the_key_in_the_database():
    cache = KeyCache()
    from domain.access.models import ApiKey

    key = ApiKey(name="k", scope="app", prefix="abcd", key_hash="0" * 64, created_at=utcnow())
    cache.put("abcd", key, generation=cache.generation)
    assert cache.get("abcd") is None  # not listening: nothing is kept
    cache.live = True
    stale = cache.generation
    cache.clear()  # a change arrived while the key was being read
    cache.put("abcd", key, generation=stale)
    assert cache.get("abcd") is None
    cache.put("abcd", key, generation=cache.generation)
    assert cache.get("abcd") is key


@pytest.mark.parametrize("ended_by", ["logout", "disabled account"])
def test_a_staff_session_ended_is_refused_as_soon_as_its_notification_arrives(committed_engine, hot_client, ended_by):
    """An agent's token costs the lookup no round trip of its own (the session row is cached per worker), and a
    logout or a disabled account stops it at once: migration 1706 NOTIFYs, the worker empties its session cache."""
    with Session(committed_engine, expire_on_commit=False) as session:
        make_member(session, phone="13800138124")
        agent = make_staff(session, role="agent", username=f"agent-{ended_by[0]}")
        headers = staff_auth(session, agent)
    session_id = verify_token(headers["Authorization"][7:], audience=STAFF_AUDIENCE, now=utcnow())["sid"]

    def lookup() -> Response:
        return hot_client.get("/v1/crm/members/lookup", params={"phone": "13800138124"}, headers=headers)

    assert lookup().status_code == 200
    _wait_until_listening(hot_client)
    assert lookup().status_code == 200
    sessions = _pooled(hot_client).sessions
    assert sessions is not None and sessions.get(session_id) is not None  # served from the cache from now on
    generation = sessions.generation
    with Session(committed_engine, expire_on_commit=False) as session:
        make_api_key(session, scope="crm", name=f"unrelated-{ended_by[0]}")  # a key change keeps the sessions
    keys = _pooled(hot_client).keys
    assert keys is not None
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline and sessions.generation == generation:
        time.sleep(0.01)
    assert sessions.generation == generation and lookup().status_code == 200

    with Session(committed_engine, expire_on_commit=False) as session:
        if ended_by == "logout":
            end_session(session, session_id=session_id, now=utcnow())
        else:
            session.execute(sa.update(StaffAccount).where(col(StaffAccount.id) == agent.id)
                            .values(disabled_at=utcnow()))
        session.commit()
    ended_at = time.monotonic()
    while sessions.generation == generation:
        assert time.monotonic() - ended_at < 1.0, "no notification within a second of the session's end"
        time.sleep(0.001)

    refused = lookup()
    assert refused.status_code == 401, refused.text
    assert refused.json()["error"]["code"] == "session_revoked"


def test_orders_on_the_pool_are_idempotent_and_refuse_a_conflicting_replay(committed_engine, hot_client):
    with Session(committed_engine, expire_on_commit=False) as session:
        _, key = make_api_key(session, scope="pos", name="pos-3")
        _, crm_key = make_api_key(session, scope="crm", name="crm-3")
        member = make_member(session)
    headers = {"Authorization": f"Bearer {key}"}
    body = {"order_id": "hot-1", "member_id": member.id, "amount_fen": 12_300, "channel": "store",
            "occurred_at": (utcnow() - timedelta(hours=1)).isoformat()}  # orders are checked against the clock
    first = hot_client.post("/v1/orders", json=body, headers=headers)
    assert first.status_code == 201, first.text
    again = hot_client.post("/v1/orders", json=body, headers=headers)
    assert again.status_code == 200 and again.json()["replayed"] is True
    assert again.json()["points_earned"] == first.json()["points_earned"]
    clash = hot_client.post("/v1/orders", json={**body, "amount_fen": 1}, headers=headers)
    assert clash.status_code == 409 and clash.json()["error"]["code"] == "order_conflict"
    missing = hot_client.post("/v1/orders", json={**body, "order_id": "hot-2", "member_id": 10**6}, headers=headers)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "member_not_found"
    assert hot_client.get(f"/v1/members/{member.id}/points", headers=headers).status_code == 403  # a till
    balance = hot_client.get(f"/v1/members/{member.id}/points", headers={"Authorization": f"Bearer {crm_key}"}).json()
    assert balance["pending"] == first.json()["points_earned"]


def test_refunds_on_the_pool_are_idempotent_per_till_and_bounded_by_the_order(committed_engine, hot_client):
    with Session(committed_engine, expire_on_commit=False) as session:
        _, key = make_api_key(session, scope="pos", name="pos-4")
        _, other = make_api_key(session, scope="pos", name="pos-5")
        _, crm_key = make_api_key(session, scope="crm", name="crm-4")
        member = make_member(session)
    headers = {"Authorization": f"Bearer {key}"}
    order = hot_client.post("/v1/orders", headers=headers, json={
        "order_id": "hot-r1", "member_id": member.id, "amount_fen": 10_000, "channel": "store",
        "occurred_at": (utcnow() - timedelta(hours=1)).isoformat()})
    assert order.status_code == 201 and order.json()["points_earned"] == 100, order.text
    body = {"refund_id": "hot-r1-a", "amount_fen": 4_000}
    first = hot_client.post("/v1/orders/hot-r1/refunds", json=body, headers=headers)
    assert first.status_code == 201, first.text
    assert first.json() == {"refund_id": "hot-r1-a", "order_id": "hot-r1", "amount_fen": 4_000,
                            "points_reversed": 40, "replayed": False}
    again = hot_client.post("/v1/orders/hot-r1/refunds", json=body, headers=headers)
    assert again.status_code == 200 and again.json() == {**first.json(), "replayed": True}
    clash = hot_client.post("/v1/orders/hot-r1/refunds", json={**body, "amount_fen": 1}, headers=headers)
    assert clash.status_code == 409 and clash.json()["error"]["code"] == "refund_conflict"
    too_much = hot_client.post("/v1/orders/hot-r1/refunds", json={"refund_id": "hot-r1-b", "amount_fen": 6_001},
                               headers=headers)
    assert too_much.status_code == 422 and too_much.json()["error"]["details"]["refundable_fen"] == 6_000
    # Another till refunds only the orders it recorded; a CRM key may not refund at all.
    theirs = hot_client.post("/v1/orders/hot-r1/refunds", json={"refund_id": "x", "amount_fen": 1},
                             headers={"Authorization": f"Bearer {other}"})
    assert theirs.status_code == 404 and theirs.json()["error"]["code"] == "order_not_found"
    assert hot_client.post("/v1/orders/hot-r1/refunds", json={"refund_id": "y", "amount_fen": 1},
                           headers={"Authorization": f"Bearer {crm_key}"}).status_code == 403
    balance = hot_client.get(f"/v1/members/{member.id}/points", headers={"Authorization": f"Bearer {crm_key}"})
    assert balance.json()["pending"] == 60  # the refunded 40 points taken back from the order's pending lot


def test_redemptions_on_the_pool_spend_once_and_refuse_a_short_balance(committed_engine, hot_client):
    from domain.points.service import adjust_points

    with Session(committed_engine, expire_on_commit=False) as session:
        _, key = make_api_key(session, scope="crm", name="crm-5")
        _, till = make_api_key(session, scope="pos", name="pos-6")
        member = make_member(session)
        adjust_points(session, member_id=member.id, adjustment_id="hot-grant", points=500, reason="welcome",
                      actor="test", now=utcnow())
        session.commit()
    headers = {"Authorization": f"Bearer {key}"}
    path = f"/v1/members/{member.id}/redemptions"
    body = {"redemption_id": "hot-rd-1", "points": 200, "reason": "cup"}
    first = hot_client.post(path, json=body, headers=headers)
    assert first.status_code == 201, first.text
    assert first.json()["points"] == 200 and first.json()["replayed"] is False
    again = hot_client.post(path, json=body, headers=headers)
    assert again.status_code == 200 and again.json() == {**first.json(), "replayed": True}
    clash = hot_client.post(path, json={**body, "points": 1}, headers=headers)
    assert clash.status_code == 409 and clash.json()["error"]["code"] == "redemption_conflict"
    short = hot_client.post(path, json={"redemption_id": "hot-rd-2", "points": 301, "reason": "cup"}, headers=headers)
    assert short.status_code == 422 and short.json()["error"]["details"] == {"available": 300, "requested": 301}
    missing = hot_client.post("/v1/members/999999/redemptions", json={**body, "redemption_id": "hot-rd-3"},
                              headers=headers)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "member_not_found"
    assert hot_client.post(path, json={**body, "redemption_id": "hot-rd-4"},
                           headers={"Authorization": f"Bearer {till}"}).status_code == 403
    assert hot_client.get(f"/v1/members/{member.id}/points", headers=headers).json()["available"] == 300


def test_the_lookup_on_the_pool_logs_the_read_and_masks_for_an_agent(committed_engine, hot_client):
    with Session(committed_engine, expire_on_commit=False) as session:
        member = make_member(session, phone="13800138123")
        headers = staff_auth(session, make_staff(session, role="agent", username="agent-hot"))
    found = hot_client.get("/v1/crm/members/lookup", params={"phone": "13800138123"},
                           headers={**headers, "X-Access-Reason": "inbound call"})
    assert found.status_code == 200, found.text
    assert found.json()["member"]["id"] == member.id
    CrmPicture.model_validate(found.json())  # the OpenAPI schema describes the answer (not validated per call)
    assert found.json()["member"]["phone_masked"] is True and "13800138123" not in found.text
    with committed_engine.connect() as conn:
        logged = conn.exec_driver_sql("SELECT agent_id, action, reason FROM access_log WHERE member_id = %(m)s",
                                      {"m": member.id}).all()
    assert [tuple(r) for r in logged] == [("agent-hot", "crm.lookup", "inbound call")]


def test_the_console_policy_header_is_on_pages_only(app_client):
    page = app_client.get("/console/login")
    assert page.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert "Content-Security-Policy" not in app_client.get("/healthz").headers


def test_the_lookup_answer_is_the_one_the_orm_and_jsonable_encoder_gave_on_generated_members(session, now):
    """The lookup builds its member as the ORM loads one and encodes in one pass (api/encoding.py): on generated
    members (with and without email, tags, orders, notes, complaints, consents) the picture equals the one
    composed from ``Member(**row)``, and the bytes equal ``JSONResponse(jsonable_encoder(picture))``'s."""
    import random

    from fastapi.encoders import jsonable_encoder
    from fastapi.responses import JSONResponse

    from api.encoding import json_bytes
    from domain.contact_policy.service import record_complaint
    from domain.crm import service as crm
    from domain.members.models import ContactChannel, Member
    from domain.members.service import member_from_row
    from tests.factories import make_order

    rng = random.Random(17)
    for n in range(12):
        member = make_member(session, email=f"m{n}@example.com" if rng.random() < 0.5 else None,
                             tags=rng.sample(["vip", "b2b", "新客"], rng.randint(0, 2)),
                             consents={ContactChannel.PHONE: rng.random() < 0.5,
                                       ContactChannel.EMAIL: rng.random() < 0.5},
                             birthday=None if n % 3 else now.date().replace(year=1990),
                             now=now - timedelta(days=rng.randint(1, 800)))
        for k in range(rng.randint(0, 4)):
            make_order(session, member_id=member.id, amount_fen=rng.randint(100, 300_000),
                       occurred_at=now - timedelta(days=rng.randint(1, 400), minutes=k))
        if rng.random() < 0.5:
            crm.add_note(session, member_id=member.id, agent_id="agent-7", fields={"kids": n}, text=f"note “{n}”",
                         now=now)
        if rng.random() < 0.3:
            record_complaint(session, member_id=member.id, category="delivery", note="late", actor="agent-7",
                             now=now)
        sql, params = crm.lookup_statement(column="id", key=member.id, access=None, now=now)
        row = session.connection().exec_driver_sql(sql, params).mappings().one()
        orm = Member(**{c: row[c] for c in Member.model_fields})
        for unmasked in (False, True):
            picture = crm.compose_picture(member_from_row(row), row, unmasked=unmasked, now=now)
            assert picture == crm.compose_picture(orm, row, unmasked=unmasked, now=now)
            assert json_bytes(picture) == JSONResponse(jsonable_encoder(picture)).body
            CrmPicture.model_validate_json(json_bytes(picture))


def test_a_hot_statement_is_numbered_once_as_psycopg_would():
    query, names = positional("SELECT %(a)s, %(b)s, %(a)s, 'x%%' LIKE 'x%%', %(c)s")
    assert query == "SELECT $1, $2, $1, 'x%' LIKE 'x%', $3" and names == ("a", "b", "c")
    assert positional("SELECT %(a)s, %(b)s, %(a)s, 'x%%' LIKE 'x%%', %(c)s")[0] is query  # converted once


def test_the_hot_routes_short_way_answers_every_request_as_fastapis_handler_does(app_client, session, now,
                                                                                 monkeypatch):
    """``HotRoute`` skips FastAPI's generic handling for an ordinary request. The same requests — new, replayed
    and conflicting orders, refunds and redemptions, a balance, refusals by the statement, bodies that do not
    parse or validate, other content types, a bad path parameter, no key and a key of the wrong scope — answer
    byte for byte the same through the short way and through FastAPI's handler (an override with a parameter
    sends every request there), on the same database state (a savepoint rolled back between the two)."""
    import fastapi.routing

    from api.deps import get_now
    from domain.points.service import adjust_points

    pos, crm = make_api_key(session, scope="pos", name="till-9")[1], make_api_key(session, scope="crm", name="crm-9")[1]
    member = make_member(session, now=now - timedelta(days=40))
    adjust_points(session, member_id=member.id, adjustment_id="seed", points=50, reason="seed", actor="t", now=now)
    session.flush()
    at = (now - timedelta(hours=1)).isoformat()
    order = {"order_id": "s-1", "member_id": member.id, "amount_fen": 12_345, "channel": "store", "occurred_at": at}
    till, desk = {"Authorization": f"Bearer {pos}"}, {"Authorization": f"Bearer {crm}"}
    spend = f"/v1/members/{member.id}/redemptions"
    requests = [
        ("POST", "/v1/orders", order, till),
        ("POST", "/v1/orders", order, till),  # replay: 200
        ("POST", "/v1/orders", {**order, "amount_fen": 1}, till),  # conflict: 409
        ("POST", "/v1/orders", {**order, "order_id": "s-2", "member_id": 99_999_999}, till),  # unknown member
        ("POST", "/v1/orders", {**order, "amount_fen": -5}, till),  # 422 from the body's validation
        ("POST", "/v1/orders", {**order, "extra": 1}, till),
        ("POST", "/v1/orders", b'{"order_id": ', {**till, "Content-Type": "application/json"}),  # bad JSON
        ("POST", "/v1/orders", b"", {**till, "Content-Type": "application/json"}),
        ("POST", "/v1/orders", b"null", {**till, "Content-Type": "application/json"}),
        ("POST", "/v1/orders", json_bytes({**order, "order_id": "s-3"}), {**till, "Content-Type": "text/plain"}),
        ("POST", "/v1/orders", json_bytes({**order, "order_id": "s-4"}),
         {**till, "Content-Type": "application/json; charset=utf-8"}),
        ("POST", "/v1/orders", {**order, "order_id": "s-5"}, {}),  # no key: 401
        ("POST", "/v1/orders", {**order, "order_id": "s-6"}, desk),  # a crm key may not record orders: 403
        ("POST", "/v1/orders", {**order, "amount_fen": -5}, desk),  # 403 before 422, as FastAPI orders them
        ("POST", "/v1/orders/s-1/refunds", {"refund_id": "r-1", "amount_fen": 100}, till),
        ("POST", "/v1/orders/s-1/refunds", {"refund_id": "r-1", "amount_fen": 100}, till),
        ("POST", "/v1/orders/s-1/refunds", {"refund_id": "r-2", "amount_fen": 10**9}, till),
        ("POST", "/v1/orders/nope/refunds", {"refund_id": "r-3", "amount_fen": 100}, till),
        ("POST", f"/v1/orders/{'x' * 300}/refunds", {"refund_id": "r-4", "amount_fen": 100}, till),
        ("POST", spend, {"redemption_id": "d-1", "points": 20, "reason": "gift"}, desk),
        ("POST", spend, {"redemption_id": "d-1", "points": 20, "reason": "gift"}, desk),
        ("POST", spend, {"redemption_id": "d-2", "points": 10**6, "reason": "gift"}, desk),
        ("POST", "/v1/members/0/redemptions", {"redemption_id": "d-3", "points": 1, "reason": "gift"}, desk),
        ("POST", f"/v1/members/{member.id + 10**6}/redemptions", {"redemption_id": "d-4", "points": 1, "reason": "x"},
         desk),
        ("GET", f"/v1/members/{member.id}/points", None, desk),
        ("GET", "/v1/members/abc/points", None, desk),
    ]

    def answers() -> list[tuple[int, list[tuple[str, str]], bytes]]:
        got = []
        with session.begin_nested() as savepoint:
            for method, path, body, headers in requests:
                sent = app_client.request(method, path, headers={**headers, "X-Request-ID": "same-id"},
                                          **({"content": body} if isinstance(body, bytes) else {"json": body}))
                kept = [(k, v) for k, v in sent.headers.items() if k != "date"]
                got.append((sent.status_code, kept, sent.content))
            savepoint.rollback()
        return got

    generic = 0
    solve = fastapi.routing.solve_dependencies

    async def counted(**kwargs):  # type: ignore[no-untyped-def]
        nonlocal generic
        generic += 1
        return await solve(**kwargs)

    monkeypatch.setattr(fastapi.routing, "solve_dependencies", counted)
    app_client.app.dependency_overrides[get_now] = lambda: now
    short = answers()
    # Requests whose body or path parameter does not validate, or whose body is not sent as application/json,
    # went FastAPI's way (nine; the bad JSON is refused before it solves anything); the others the short way.
    assert generic == 9, generic

    def clock(request: Request) -> datetime:
        return now

    app_client.app.dependency_overrides[get_now] = clock  # a parameter: FastAPI's handler for every request
    generic = 0
    assert answers() == short
    assert generic == len(requests) - 1  # the bad JSON is refused before FastAPI solves anything
    assert [status for status, _, _ in short] == [201, 200, 409, 404, 422, 422, 422, 422, 422, 422, 201, 401, 403,
                                                  403, 201, 200, 422, 404, 422, 201, 200, 422, 422, 404, 200, 422]
