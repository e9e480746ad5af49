"""A 100,000-lead call list streams: the API process's memory stays flat while the file goes out, and the CSV
parses cleanly. The API runs as its own process (uvicorn), so what is measured is a real server's RSS."""

import csv
import io
import os
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime

import httpx
import sqlalchemy as sa

from domain.db import unit_of_work
from tests.factories import make_api_key

LEADS = 100_000
NOW = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def seed_call_list(engine) -> int:
    """100,000 members and their leads, set-based (the factories would take minutes)."""
    with engine.begin() as conn:
        conn.execute(sa.text("""
            INSERT INTO members (member_code, phone, name, gender, city, timezone, tags, tier, status, source_channel,
                                 joined_at, created_at, updated_at)
            SELECT 'ST-NA-20250101-' || lpad(g::text, 6, '0'), '+86139' || lpad(g::text, 8, '0'),
                   CASE WHEN g % 1000 = 0 THEN '=cmd|'' /C calc''!A0' ELSE 'Member ' || g END, 'unknown',
                   'Shanghai', 'Asia/Shanghai', '{}', 'C', 'active', 'store', :now, :now, :now
            FROM generate_series(1, :n) g"""), {"n": LEADS, "now": NOW})
        list_id = conn.scalar(sa.text("""
            INSERT INTO call_lists (name, product, purpose, audience, weights, interest_days, recall_hours,
                                    agent_capacity, exclusions, created_at)
            VALUES ('big', 'family-plan', 'marketing', '{}', '{}', 30, 48, 20, '{}', :now) RETURNING id"""),
            {"now": NOW})
        conn.execute(sa.text("""
            INSERT INTO leads (call_list_id, member_id, priority, band, reason, state, recalls)
            SELECT :list, id, random(), 2 + (id % 2), 'score ' || id, 'pooled', 0 FROM members"""), {"list": list_id})
    return int(list_id)


def test_a_hundred_thousand_lead_export_streams_with_flat_memory(committed_engine):
    list_id = seed_call_list(committed_engine)
    with unit_of_work(committed_engine) as session:
        _, key = make_api_key(session, scope="admin", name="dialer")
        session.commit()
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "api.main:create_app", "--factory", "--port", str(port),
         "--log-level", "warning"], env={**os.environ}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        headers = {"Authorization": f"Bearer {key}"}
        small = httpx.get(f"{base}/v1/crm/call-lists/{list_id}/leads", headers=headers, timeout=30)
        assert small.status_code == 200  # warm: imports, pool, the first query
        before = rss_kib(server.pid)
        peak, done = [before], threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak.append(rss_kib(server.pid))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample)
        sampler.start()
        body = bytearray()
        try:
            with httpx.stream("GET", f"{base}/v1/crm/call-lists/{list_id}/leads.csv", headers=headers,
                              timeout=120) as answer:
                assert answer.status_code == 200
                for chunk in answer.iter_bytes():
                    body += chunk
                    time.sleep(0.0005)  # a client slower than PostgreSQL: rows must wait in the socket, not in RAM
        finally:
            done.set()
            sampler.join()
        growth_kib = max(peak) - before
        rows = list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"), newline="")))
        assert len(rows) == LEADS
        assert len({r["lead_id"] for r in rows}) == LEADS
        assert sum(r["name"].startswith("'=") for r in rows) == LEADS // 1000
        print(f"\nexport: {len(body) / 1e6:.1f} MB, {LEADS} rows; API RSS {before / 1024:.0f} MB before, "
              f"peak +{growth_kib / 1024:.1f} MB")
        assert growth_kib * 1024 < len(body) / 4, (growth_kib, len(body))
    finally:
        server.terminate()
        server.wait(timeout=10)
