"""PostgreSQL SIGKILLed (not shut down) in the middle of a stream of orders, then restarted with crash recovery:
the API answers 503 in the one error shape while it is away, recovers by itself, and no order is lost or doubled.

A client that got no acknowledgement sends the same order again (as the POS does): the order id is the
idempotency key, so an order committed just before the kill answers 200 ``replayed`` and is stored once.
Runs on a throwaway embedded PostgreSQL (tests.reliability.test_database_restart.own_server), never the shared one.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlmodel import Session

from api.main import create_app
from domain.points.service import verify_points
from tests.factories import make_api_key, make_member
from tests.reliability.test_database_restart import own_server  # noqa: F401  (the fixture)


def kill_server(pgdata: Path) -> None:
    """SIGKILL the postmaster and every backend of it at once: a crash, an OOM kill, a lost machine."""
    postmaster = int((pgdata / "postmaster.pid").read_text().splitlines()[0])
    children = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit() and _parent(p) == postmaster]
    for pid in [postmaster, *children]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while Path(f"/proc/{postmaster}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def _parent(proc: Path) -> int | None:
    try:
        return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


@pytest.mark.timeout(180)
def test_orders_survive_postgres_being_killed_mid_stream(own_server):  # noqa: F811
    server, own = own_server
    with Session(own, expire_on_commit=False) as session:
        _, key = make_api_key(session, scope="admin", name="crash-orders")
        members = [make_member(session).id for _ in range(5)]
    headers = {"Authorization": f"Bearer {key}"}
    acked: dict[str, int] = {}  # order id → status of its acknowledgement
    unacked: list[str] = []  # sent, answered with an error: the client will send them again
    outages: list[dict] = []
    stop = threading.Event()

    bodies: dict[int, dict] = {}  # a retry sends exactly the same order (another payload would be a 409)

    def order(client: TestClient, n: int) -> tuple[str, int, dict]:
        order_id = f"CRASH-{n:05d}"
        body = bodies.setdefault(n, {"order_id": order_id, "member_id": members[n % len(members)],
                                     "amount_fen": 10_000 + n, "channel": "store",
                                     "occurred_at": datetime.now(UTC).isoformat()})
        response = client.post("/v1/orders", json=body, headers=headers)
        return order_id, response.status_code, response.json()

    with TestClient(create_app(), raise_server_exceptions=False) as client:

        def stream() -> None:
            n = 0
            while not stop.is_set():
                order_id, status, body = order(client, n)
                if status in (200, 201):
                    acked[order_id] = status
                else:
                    unacked.append(order_id)
                    outages.append({"status": status, **body})
                n += 1

        writer = threading.Thread(target=stream)
        writer.start()
        deadline = time.monotonic() + 60
        while len(acked) < 30 and time.monotonic() < deadline:
            time.sleep(0.05)
        kill_server(server.pgdata)
        time.sleep(1.5)  # orders keep coming while the server is dead
        down_body = {"order_id": "CRASH-DOWN", "member_id": members[0], "amount_fen": 100, "channel": "store",
                     "occurred_at": datetime.now(UTC).isoformat()}
        down = client.post("/v1/orders", headers=headers, json=down_body)
        server.ensure_postgres_running()  # crash recovery replays the WAL
        recovered_at = time.monotonic()
        while len(acked) < 30 + 30 and time.monotonic() < recovered_at + 60:
            time.sleep(0.05)
        stop.set()
        writer.join(timeout=30)

        # The client retries what it never got an answer for: a committed one answers 200 replayed.
        for order_id in [*unacked, "CRASH-DOWN"]:
            n = int(order_id.split("-")[1]) if order_id != "CRASH-DOWN" else None
            for _ in range(50):
                if n is None:
                    status = client.post("/v1/orders", headers=headers, json=down_body).status_code
                else:
                    _, status, _ = order(client, n)
                if status in (200, 201):
                    acked[order_id] = status
                    break
                time.sleep(0.2)

    assert down.status_code == 503, down.text
    assert down.json()["error"]["code"] in ("database_unavailable", "busy") and down.json()["error"]["request_id"]
    assert down.headers["Retry-After"]
    assert outages and all(o["status"] == 503 and o["error"]["code"] in ("database_unavailable", "busy")
                           for o in outages), outages[:3]  # never a 500, always the one error shape
    assert len(acked) >= 60 and set(unacked) <= set(acked)  # recovered, and every retried order got in
    with own.connect() as conn:
        stored = dict(conn.execute(sa.text("SELECT order_id, count(*) FROM orders GROUP BY order_id")).tuples().all())
        earned = dict(conn.execute(sa.text(
            "SELECT source_ref, count(*) FROM points_ledger WHERE source = 'order' AND kind = 'earn' "
            "GROUP BY source_ref")).tuples().all())
    assert set(stored) == set(acked) and set(stored.values()) == {1}  # every acknowledged order exactly once
    assert set(earned.values()) <= {1} and len(earned) == len(stored)  # credited once each
    with Session(own) as session:
        assert verify_points(session) == []
