"""A realistic demo population for benchmarks and demos: members streamed with COPY, their history derived
set-based in SQL (orders, points lots, ledger and accounts that `loyalty points verify` accepts, consents,
complaints, WeChat links, birthdays). Deterministic for a given seed."""

from __future__ import annotations

import io
import json
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
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
    ages: list[float] = []
    big_city: list[bool] = []
    sources: list[str] = []
    tenure_days: list[int] = []
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
                ages.append(now.year - birthday.year)
                big_city.append(city in BIG_CITIES)
                sources.append(channel.value)
                tenure_days.append((now - joined).days)
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
    params["truth_inputs"] = (np.asarray(ages, dtype=np.float64), np.asarray(big_city), np.asarray(sources))
    params["tenure_days"] = np.asarray(tenure_days, dtype=np.int64)
    return n


# --- known truth: each member's true channel preference and acceptance drive their behaviour -----------------
# The scores are measured against this truth (``loyalty scores report``), never fitted to it: the scoring code
# reads only behaviour (usage facts, orders) and attributes, as it would in production.

USAGE_CHANNELS = ("phone", "sms", "wechat", "app", "store", "email")
BIG_CITIES = {"Shanghai", "Beijing", "Shenzhen", "Hangzhou"}
BASE_LOGIT = np.array([0.0, -0.3, 0.3, 0.2, 0.3, -1.0])
OLDER = np.array([1.2, 0.2, -0.3, -0.8, 0.6, 0.0])
"""50 and over: the phone and the store."""
YOUNGER = np.array([-0.8, -0.2, 0.6, 0.8, -0.4, 0.0])
"""Under 30: WeChat and the app."""
BIG_CITY = np.array([0.0, 0.0, 0.1, 0.3, -0.2, 0.1])
SOURCE_CHANNEL = {"call_center": "phone", "campaign_form": "sms", "wechat": "wechat", "app": "app", "web": "app",
                  "store": "store", "purchase": "store"}
"""Where a member joined hints at how they like to be reached."""
POPULARITY = np.array([0.15, 0.2, 0.25, 0.2, 0.15, 0.05])
"""A contact that does not go through the member's preferred channel goes through these, by share."""
LOYAL_SHARE = 0.45
"""Share of a member's contacts that go through their preferred channel."""
BASE_ACCEPTANCE = np.full(len(USAGE_CHANNELS), 0.06)
"""Acceptance of an offer on a channel the member does not prefer (the material: 6 % by phone); the same on
every channel, so the campaign benchmark measures matching, not one channel's own pull."""
MATCHED_ACCEPTANCE = 1.5
"""An offer on the member's preferred channel is accepted this much more often (9 %)."""
SILENT_SHARE = 0.2
"""Members who hardly contact the company at all: the ones the logistic model is for."""
USAGE_MONTHS = 8


def _draw_truth(params: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ages, big, sources = params["truth_inputs"]
    rng = np.random.default_rng(int(params["seed"]) + 18)
    n = len(ages)
    logits = np.tile(BASE_LOGIT, (n, 1)) + np.outer(ages >= 50, OLDER) + np.outer(ages < 30, YOUNGER) \
        + np.outer(big, BIG_CITY)
    for source, channel in SOURCE_CHANNEL.items():
        logits[sources == source, USAGE_CHANNELS.index(channel)] += 1.0
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    preferred = (p.cumsum(axis=1) > rng.random(n)[:, None]).argmax(axis=1)
    activity = np.where(rng.random(n) < SILENT_SHARE, 0.05, rng.lognormal(mean=0.0, sigma=0.7, size=n))
    acceptance = np.tile(BASE_ACCEPTANCE, (n, 1))
    acceptance[np.arange(n), preferred] *= MATCHED_ACCEPTANCE
    return preferred, activity, acceptance


def _member_ids(conn: sa.Connection, params: dict[str, Any]) -> np.ndarray:
    """The ids COPY gave the new members, in the order they were written (one COPY session assigns them in order)."""
    ids = conn.scalars(sa.text("SELECT id FROM members WHERE id > :first_id ORDER BY id"),
                       {"first_id": params["first_id"]}).all()
    return np.asarray(ids, dtype=np.int64)


def _copy_rows(conn: sa.Connection, table: str, columns: str, lines: Iterable[str]) -> None:
    raw: Any = conn.connection.dbapi_connection
    with raw.cursor() as cur, cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for line in lines:
            copy.write(line)


def _channel_truth(conn: sa.Connection, params: dict[str, Any]) -> int:
    preferred, activity, acceptance = _draw_truth(params)
    ids = _member_ids(conn, params)
    params["truth"] = (ids, preferred, activity)

    def lines() -> Iterator[str]:
        for start in range(0, len(ids), 50_000):
            chunk = slice(start, start + 50_000)
            yield "".join(
                f"{i}\t{USAGE_CHANNELS[p]}\t"
                + json.dumps(dict(zip(USAGE_CHANNELS, np.round(acc, 4).tolist(), strict=True)))
                + f"\t{a:.4f}\n"
                for i, p, acc, a in zip(ids[chunk], preferred[chunk], acceptance[chunk], activity[chunk], strict=True))

    _copy_rows(conn, "demo_channel_truth", "member_id, preferred, acceptance, activity", lines())
    return len(ids)


def _channel_usage(conn: sa.Connection, params: dict[str, Any]) -> int:
    """Contacts over the last months, most through the member's preferred channel, as usage facts that other
    systems (IVR, web and app logs, SMS replies) would have sent (source ``seed``)."""
    ids, preferred, activity = params["truth"]
    now = params["now"]
    months = min(int(params["months"]), USAGE_MONTHS)
    rng = np.random.default_rng(int(params["seed"]) + 1818)
    days = int(months * 30.4)
    today = now.date()
    written = 0
    for start in range(0, len(ids), 100_000):
        chunk = slice(start, start + 100_000)
        events = rng.poisson(activity[chunk] * months)
        who = np.repeat(np.arange(len(events)), events)
        loyal = rng.random(len(who)) < LOYAL_SHARE
        other = rng.choice(len(USAGE_CHANNELS), size=len(who), p=POPULARITY)
        channel = np.where(loyal, preferred[chunk][who], other)
        # A contact happens after the member joined, within the window.
        limit = np.maximum(1, np.minimum(days, params["tenure_days"][chunk][who]))
        ago = 1 + (rng.random(len(who)) * limit).astype(np.int64)
        key = (who.astype(np.int64) * 8 + channel) * 4096 + ago
        unique, counts = np.unique(key, return_counts=True)
        member = ids[chunk][unique // 4096 // 8]
        chan = (unique // 4096) % 8
        ago_u = unique % 4096
        stamp = now.isoformat()
        _copy_rows(conn, "channel_usage_facts", "member_id, channel, day, source, transactions, recorded_at",
                   (f"{m}\t{USAGE_CHANNELS[c]}\t{today - timedelta(days=int(a))}\tseed\t{k}\t{stamp}\n"
                    for m, c, a, k in zip(member.tolist(), chan.tolist(), ago_u.tolist(), counts.tolist(),
                                          strict=True)))
        written += len(unique)
    return written


ORDERS_SQL = """
INSERT INTO orders (order_id, member_id, amount_fen, refunded_fen, channel, occurred_at, items, payload_hash,
                    tier_at_order, points_earned, points_reversed, recorded_at)
SELECT 'seed-' || m.id || '-' || g.k, m.id, a.amount, 0,
       -- Orders go where the member likes to buy: their preferred channel when it sells, else mostly the store.
       CASE WHEN t.preferred IN ('store', 'app', 'wechat', 'phone') AND (hashint4(m.id * 41 + g.k) & 3) <> 0
            THEN t.preferred
            WHEN (hashint4(m.id * 43 + g.k) & 3) = 0 THEN 'app' ELSE 'store' END,
       o.at, '[]'::jsonb, md5(m.id || '-' || g.k), 'D', a.amount / 100, 0, o.at
FROM members m
LEFT JOIN demo_channel_truth t ON t.member_id = m.id
CROSS JOIN LATERAL generate_series(1, 1 + (hashint4(m.id) & 7)) AS g(k)
CROSS JOIN LATERAL (SELECT m.joined_at + (:now - m.joined_at) * ((hashint4(m.id * 31 + g.k) & 1023) / 1024.0) AS at) o
CROSS JOIN LATERAL (SELECT 2000 + (hashint4(m.id * 17 + g.k) & 65535) * 3 AS amount) a
WHERE m.id > :first_id
"""

LOTS_SQL = """
INSERT INTO points_lots (member_id, amount, remaining, state, source, source_ref, available_at, expires_at, created_at)
SELECT o.member_id, o.points_earned, o.points_earned,
       CASE WHEN o.occurred_at + interval '7 days' <= :now THEN 'available' ELSE 'pending' END,
       'order', o.id::text, o.occurred_at + interval '7 days', o.occurred_at + interval '7 days' + interval '12 months',
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
    SeedStep("channel truth", _channel_truth, analyze="demo_channel_truth"),
    SeedStep("channel usage", _channel_usage, analyze="channel_usage_facts"),
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
