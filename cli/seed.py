"""A realistic demo population for benchmarks and demos: members streamed with COPY, their history derived
set-based in SQL (orders, points lots, ledger and accounts that `loyalty points verify` accepts, consents,
complaints, WeChat links, birthdays). Deterministic for a given seed."""

from __future__ import annotations

import io
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from domain.members.models import SourceChannel
from domain.members.rules import member_code
from domain.tiers import service as tiers
from domain.tiers.rules import SPEND_WINDOW_SQL

CHANNELS = [(SourceChannel.STORE, 30), (SourceChannel.WECHAT, 25), (SourceChannel.APP, 15), (SourceChannel.WEB, 10),
            (SourceChannel.CAMPAIGN_FORM, 8), (SourceChannel.CALL_CENTER, 7), (SourceChannel.PURCHASE, 5)]
CAMPAIGNS = ["SPRING", "SUMMER", "DOUBLE11", "NEWYEAR", "STORE42", "REFERRAL", None]
CITIES = [("Shanghai", "Asia/Shanghai"), ("Beijing", "Asia/Shanghai"), ("Hangzhou", "Asia/Shanghai"),
          ("Shenzhen", "Asia/Shanghai"), ("Chengdu", "Asia/Shanghai"), ("Urumqi", "Asia/Urumqi"),
          ("Hong Kong", "Asia/Hong_Kong"), ("Singapore", "Asia/Singapore"), ("New York", "America/New_York")]
COLUMNS = ("member_code", "phone", "wechat_openid", "wechat_unionid", "name", "birthday", "gender", "city", "timezone",
           "tags", "tier", "status", "source_channel", "source_campaign", "joined_at", "created_at", "updated_at")


@dataclass(frozen=True)
class SeedStep:
    name: str
    run: Callable[[sa.Connection, dict[str, Any]], int]
    analyze: str | None = None
    """Table to ANALYZE after the step: later steps join it, and a fresh table's stale statistics would make
    the planner choose nested loops over a million rows."""


def _copy_members(conn: sa.Connection, params: dict[str, Any]) -> int:
    n, months, now = int(params["members"]), int(params["months"]), params["now"]
    assert isinstance(now, datetime)
    rng = random.Random(int(params["seed"]))  # noqa: S311 - demo data, not secrets
    start_serial = int(conn.scalar(sa.text("SELECT nextval('member_code_serial')")) or 1)
    phone_base = int(conn.scalar(sa.text("SELECT count(*) FROM members")) or 0)
    weights = [w for _, w in CHANNELS]
    raw: Any = conn.connection.dbapi_connection  # psycopg's own connection, for COPY
    batch = 100_000
    done = 0
    with raw.cursor() as cur:
        while done < n:
            buf = io.StringIO()
            for i in range(done, min(n, done + batch)):
                channel = rng.choices(CHANNELS, weights)[0][0]
                campaign = rng.choice(CAMPAIGNS)
                joined = now - timedelta(days=rng.random() * months * 30.4)
                city, tz = CITIES[0 if rng.random() < 0.6 else rng.randrange(len(CITIES))]
                wechat = channel == SourceChannel.WECHAT or rng.random() < 0.3
                year = rng.randint(1960, 2005)
                birthday = date(1992, 2, 29) if i % 997 == 0 else date(year, rng.randint(1, 12), rng.randint(1, 28))
                serial = start_serial + i
                row = (member_code(channel=channel, campaign=campaign, joined_on=joined.date(), serial=serial),
                       f"+86139{phone_base + i:08d}", f"o{serial:012d}" if wechat else "\\N",
                       f"u{serial:012d}" if wechat else "\\N", f"Member {serial}", birthday.isoformat(),
                       rng.choice(["female", "male", "unknown"]), city, tz, "{}", "D", "active", channel.value,
                       campaign or "\\N", joined.isoformat(), joined.isoformat(), joined.isoformat())
                buf.write("\t".join(row) + "\n")
            buf.seek(0)
            with cur.copy(f"COPY members ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                while chunk := buf.read(1 << 20):
                    copy.write(chunk)
            done = min(n, done + batch)
            progress = params.get("progress")
            if callable(progress):
                progress(done)
    conn.execute(sa.text("SELECT setval('member_code_serial', :v)"), {"v": start_serial + n})
    return n


ORDERS_SQL = """
INSERT INTO orders (order_id, member_id, amount_fen, refunded_fen, channel, occurred_at, items, payload_hash,
                    tier_at_order, points_earned, points_reversed, recorded_at)
SELECT 'seed-' || m.id || '-' || g.k, m.id, a.amount, 0, 'store', o.at, '[]'::jsonb, md5(m.id || '-' || g.k),
       'D', a.amount / 100, 0, o.at
FROM members m
CROSS JOIN LATERAL generate_series(1, 1 + (hashint4(m.id) & 7)) AS g(k)
CROSS JOIN LATERAL (SELECT m.joined_at + (:now - m.joined_at) * ((hashint4(m.id * 31 + g.k) & 1023) / 1024.0) AS at) o
CROSS JOIN LATERAL (SELECT 2000 + (hashint4(m.id * 17 + g.k) & 65535) * 3 AS amount) a
WHERE m.id > :first_id
"""

LOTS_SQL = """
INSERT INTO points_lots (member_id, amount, remaining, state, source, source_ref, available_at, expires_at, created_at)
SELECT o.member_id, o.points_earned, o.points_earned,
       CASE WHEN o.occurred_at + interval '7 days' <= :now THEN 'available' ELSE 'pending' END,
       'order', o.order_id, o.occurred_at + interval '7 days', o.occurred_at + interval '7 days' + interval '12 months',
       o.occurred_at
FROM orders o JOIN members m ON m.id = o.member_id WHERE m.id > :first_id AND o.points_earned > 0
"""

LEDGER_SQL = """
INSERT INTO points_ledger (member_id, kind, pending_delta, available_delta, lot_id, source, source_ref, details,
                           created_at)
SELECT l.member_id, 'earn', l.amount, 0, l.id, 'order', l.source_ref, '{}'::jsonb, l.created_at
FROM points_lots l WHERE l.member_id > :first_id
UNION ALL
SELECT l.member_id, 'release', -l.amount, l.amount, l.id, 'lot', l.id::text, '{}'::jsonb, l.available_at
FROM points_lots l WHERE l.member_id > :first_id AND l.state = 'available'
"""

ACCOUNTS_SQL = """
INSERT INTO points_accounts (member_id, available, pending, debt, updated_at)
SELECT member_id, coalesce(sum(remaining) FILTER (WHERE state = 'available'), 0),
       coalesce(sum(remaining) FILTER (WHERE state = 'pending'), 0), 0, :now
FROM points_lots WHERE member_id > :first_id GROUP BY member_id
"""

# The ladder and the qualifying-spend window come from the tier rules' home, not copies of their numbers.
TIERS_SQL = """
UPDATE members m SET tier = CASE WHEN s.spend >= :a THEN 'A' WHEN s.spend >= :b THEN 'B'
                                 WHEN s.spend >= :c THEN 'C' ELSE 'D' END,
                     last_purchase_at = s.last_at
FROM (SELECT member_id, sum(amount_fen) FILTER (WHERE {in_window}) AS spend,
             max(occurred_at) AS last_at FROM orders GROUP BY member_id) s
WHERE s.member_id = m.id AND m.id > :first_id
""".replace("{in_window}", SPEND_WINDOW_SQL.format(orders="orders"))


def _tiers(conn: sa.Connection, params: dict[str, Any]) -> int:
    thresholds = tiers.ladder().thresholds_fen
    result = conn.execute(sa.text(TIERS_SQL), {
        "first_id": params["first_id"], **tiers.window_params(params["now"]),
        "a": thresholds["A"], "b": thresholds["B"], "c": thresholds["C"]})
    return int(getattr(result, "rowcount", 0) or 0)

CONSENTS_SQL = """
INSERT INTO member_consents (member_id, channel, status, source, changed_at)
SELECT m.id, c.channel, CASE WHEN hashint4(m.id * 7 + c.n) & 15 = 0 THEN 'opted_out' ELSE 'granted' END, 'seed',
       m.joined_at
FROM members m CROSS JOIN (VALUES ('sms', 1), ('phone', 2), ('wechat', 3)) AS c(channel, n)
WHERE m.id > :first_id AND (hashint4(m.id * 13 + c.n) & 3) <> 0
"""

COMPLAINTS_SQL = """
INSERT INTO complaints (member_id, category, note, actor, opened_at)
SELECT m.id, 'service', '', 'seed', :now - (hashint4(m.id) & 255) * interval '1 day'
FROM members m WHERE m.id > :first_id AND hashint4(m.id * 3) % 100 = 0
"""


def _sql(statement: str) -> Callable[[sa.Connection, dict[str, Any]], int]:
    def run(conn: sa.Connection, params: dict[str, Any]) -> int:
        result = conn.execute(sa.text(statement), {"now": params["now"], "first_id": params["first_id"]})
        return int(getattr(result, "rowcount", 0) or 0)

    return run


STEPS = [
    SeedStep("members", _copy_members, analyze="members"),
    SeedStep("orders", _sql(ORDERS_SQL), analyze="orders"),
    SeedStep("points lots", _sql(LOTS_SQL), analyze="points_lots"),
    SeedStep("points ledger", _sql(LEDGER_SQL), analyze="points_ledger"),
    SeedStep("points accounts", _sql(ACCOUNTS_SQL), analyze="points_accounts"),
    SeedStep("tiers and last purchase", _tiers, analyze="members"),
    SeedStep("consents", _sql(CONSENTS_SQL), analyze="member_consents"),
    SeedStep("complaints", _sql(COMPLAINTS_SQL), analyze="complaints"),
]


def seed(engine: Engine, *, members: int, months: int, seed: int = 42, now: datetime | None = None,
         on_step: Callable[[str, int, float], None] | None = None,
         progress: Callable[[int], None] | None = None) -> dict[str, int]:
    """Add ``members`` members with ``months`` of history; returns rows written per step."""
    import time

    now = now or datetime.now(UTC)
    counts: dict[str, int] = {}
    with engine.begin() as conn:
        conn.exec_driver_sql("SET LOCAL statement_timeout = 0")  # bulk statements run for minutes at 1M members
        first_id = int(conn.scalar(sa.text("SELECT coalesce(max(id), 0) FROM members")) or 0)
        params: dict[str, Any] = {"members": members, "months": months, "seed": seed, "now": now,
                                     "first_id": first_id, "progress": progress}
        for step in STEPS:
            started = time.perf_counter()
            counts[step.name] = step.run(conn, params)
            if step.analyze:
                conn.exec_driver_sql(f"ANALYZE {step.analyze}")
            if on_step:
                on_step(step.name, counts[step.name], time.perf_counter() - started)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("ANALYZE")
    return counts
