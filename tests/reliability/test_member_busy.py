"""A burst of orders on one member, through a real uvicorn process: that member's requests answer
``member_busy`` quickly when they cannot get its lock, and everyone else's keep answering normally."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import httpx
import sqlalchemy as sa
from sqlmodel import Session

from tests.factories import make_api_key, make_member
from tests.serving import serve

# A small pool: the shared test server has few connections to spare, and a burst of 60 against 8 connections
# is the harder case anyway.
POOL = {"LOYALTY_DB_POOL_SIZE": "4", "LOYALTY_DB_MAX_OVERFLOW": "4"}
AT = datetime.now(UTC).isoformat()  # a real server reads the real clock: an order of today (docs/rules.md)


def _setup(engine, members: int) -> tuple[dict[str, str], list[int]]:
    with Session(engine) as session:
        _, key = make_api_key(session, scope="pos", name="pos")
        ids = [make_member(session).id for _ in range(members)]
    return {"Authorization": f"Bearer {key}"}, [i for i in ids if i is not None]


def _order(client: httpx.Client, headers: dict[str, str], member_id: int, order_id: str) -> tuple[int, str, float]:
    started = time.monotonic()
    response = client.post("/v1/orders", headers=headers, json={
        "order_id": order_id, "member_id": member_id, "amount_fen": 1_000, "channel": "store", "occurred_at": AT})
    code = response.json()["error"]["code"] if response.status_code >= 400 else ""
    return response.status_code, code, time.monotonic() - started


def test_a_held_member_lock_answers_member_busy_within_the_lock_timeout(committed_engine, tmp_path):
    headers, (held, other) = _setup(committed_engine, 2)
    with serve(tmp_path, LOYALTY_LOCK_TIMEOUT_MS="500", **POOL) as server, \
            httpx.Client(base_url=server.url) as client, committed_engine.connect() as holder:
        holder.execute(sa.text("SELECT 1 FROM members WHERE id = :id FOR NO KEY UPDATE"), {"id": held})
        status, code, seconds = _order(client, headers, held, "busy-1")
        assert (status, code) == (429, "member_busy")
        assert 0.4 < seconds < 2.0
        assert _order(client, headers, other, "free-1")[0] == 201  # another member is not held up
        holder.rollback()
        assert _order(client, headers, held, "busy-1")[0] == 201  # once free, the same order goes through


def test_sixty_concurrent_orders_of_one_member_leave_other_members_answering(committed_engine, tmp_path):
    headers, (hot, *others) = _setup(committed_engine, 21)
    with Session(committed_engine) as session:  # the call center reads members while a till records orders
        reader = {"Authorization": f"Bearer {make_api_key(session, scope='crm', name='call-center')[1]}"}
    env = {"LOYALTY_RATE_LIMIT_PER_IP": "0", "LOYALTY_RATE_LIMIT_PER_KEY": "0", **POOL}
    with serve(tmp_path, **env) as server, httpx.Client(base_url=server.url, timeout=60,
                                                         limits=httpx.Limits(max_connections=100)) as client, \
            ThreadPoolExecutor(80) as pool:
        burst = [pool.submit(_order, client, headers, hot, f"hot-{i}") for i in range(60)]
        time.sleep(0.05)  # the burst is queued on the member's lock; now everyone else comes
        calm = [pool.submit(_order, client, headers, member, f"calm-{member}") for member in others]
        reads = [pool.submit(client.get, f"/v1/members/{member}", headers=reader) for member in others]
        burst_results = [f.result() for f in burst]
        calm_results = [f.result() for f in calm]
        read_statuses = [f.result().status_code for f in reads]
    outcomes = {(status, code) for status, code, _ in burst_results}
    assert outcomes <= {(201, ""), (429, "member_busy")}, outcomes  # never 500 or 503
    assert sum(status == 201 for status, _, _ in burst_results) >= 1
    assert all(status == 201 for status, _, _ in calm_results), calm_results
    assert read_statuses == [200] * len(others)
    slowest_calm = max(seconds for _, _, seconds in calm_results)
    slowest_burst = max(seconds for _, _, seconds in burst_results)
    print(f"burst: {sum(s == 201 for s, _, _ in burst_results)} recorded, "
          f"{sum(s == 429 for s, _, _ in burst_results)} member_busy, slowest {slowest_burst:.2f} s; "
          f"other members' orders: slowest {slowest_calm:.2f} s")
    assert slowest_calm < 5.0  # before the lock timeout: pool waits of 5 s and then 503s
