"""Tier use cases: upgrade at once on spend, evaluate downgrades on schedule, explain the tier."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from domain.members.service import get_member
from domain.settings import get_settings
from domain.tiers.models import TierEvent, TierStatus
from domain.tiers.rules import (
    DOWNGRADE_DUE_SQL,
    ORDER,
    QUALIFYING_SPEND_SQL,
    SPEND_WINDOW_SQL,
    Ladder,
    downgrade_at,
    downgrade_params,
    qualified_until,
    qualifying_spend,
    spend_params,
    spend_window,
)


def ladder() -> Ladder:
    return Ladder.from_yuan(get_settings().tier_thresholds_yuan)


def window_params(now: datetime) -> dict[str, datetime]:
    """The qualifying-spend window's bounds at ``now`` (``spend_since``, ``spend_until``) for the rule's SQL."""
    return spend_params(now, get_settings().tier_window_months)


QUALIFYING_SPEND_IN_ORDER_FUNCTION = "SELECT " + QUALIFYING_SPEND_SQL.format(member_id="p_member_id").replace(
    ":spend_since", "p_window_start").replace(":spend_until", "p_now")
"""The qualifying-spend rule's SQL as ``loyalty_record_order`` (migration 1703) runs it after the member's lock,
so it counts the orders committed meanwhile. The function holds this text (a static statement is planned once
per connection; an ``EXECUTE`` of it was planned on every order): tests/domain/test_rule_homes.py fails when
the two differ, and a change of the rule then needs a migration that replaces the function."""


def rolling_spend(session: Session, *, member_id: int, now: datetime) -> int:
    """The member's qualifying spend (fen, net of refunds) over the rolling window."""
    value = session.scalar(sa.text("SELECT " + QUALIFYING_SPEND_SQL.format(member_id=":m")),
                           {"m": member_id, **window_params(now)})
    return int(value or 0)


# The evaluation, set-based over a range of member ids. Tier rank: D 0, C 1, B 2, A 3.
EVALUATE_SQL = """
WITH spend AS (
    SELECT m.id AS member_id, m.tier, coalesce(sum(o.amount_fen - o.refunded_fen), 0) AS spend
    FROM members m
    LEFT JOIN orders o ON o.member_id = m.id AND {in_window}
    WHERE m.id BETWEEN :lo AND :hi AND m.status <> 'closed'
    GROUP BY m.id, m.tier
), judged AS (
    SELECT s.member_id, s.tier, s.spend, ts.below_since,
           array_position(ARRAY['D','C','B','A'], s.tier) - 1 AS current_rank,
           CASE WHEN s.spend >= :a THEN 3 WHEN s.spend >= :b THEN 2 WHEN s.spend >= :c THEN 1 ELSE 0 END
               AS qualified_rank
    FROM spend s LEFT JOIN member_tier_status ts ON ts.member_id = s.member_id
), decided AS (
    SELECT member_id, tier, spend, below_since, current_rank, qualified_rank,
           CASE
             WHEN qualified_rank > current_rank THEN qualified_rank
             WHEN qualified_rank < current_rank AND {downgrade_due} THEN current_rank - 1
             ELSE current_rank
           END AS new_rank
    FROM judged
), changed AS (
    UPDATE members m SET tier = (ARRAY['D','C','B','A'])[d.new_rank + 1], updated_at = :now
    FROM decided d WHERE m.id = d.member_id AND d.new_rank <> d.current_rank
      -- Re-checked on the row's latest version: an order that changed the tier meanwhile wins.
      AND m.tier = d.tier
    RETURNING m.id
), events AS (
    INSERT INTO tier_events (member_id, from_tier, to_tier, cause, spend_fen, at)
    SELECT d.member_id, d.tier, (ARRAY['D','C','B','A'])[d.new_rank + 1], 'evaluation', d.spend, :now
    FROM decided d JOIN changed c ON c.id = d.member_id
    RETURNING member_id, from_tier, to_tier, spend_fen
), domain_events AS (
    INSERT INTO domain_events (kind, member_id, payload, occurred_at)
    SELECT 'tier.changed', member_id,
           jsonb_build_object('from', from_tier, 'to', to_tier, 'cause', 'evaluation', 'spend_fen', spend_fen), :now
    FROM events
    RETURNING member_id
), status AS (
    INSERT INTO member_tier_status (member_id, below_since, evaluated_at)
    SELECT member_id,
           CASE
             WHEN qualified_rank >= new_rank THEN NULL                       -- qualifies for the tier held
             WHEN new_rank <> current_rank THEN :as_of                      -- stepped down, still below: new grace
             ELSE coalesce(below_since, :as_of)                             -- below: the grace clock runs
           END,
           :as_of
    FROM decided
    ON CONFLICT (member_id) DO UPDATE SET below_since = EXCLUDED.below_since, evaluated_at = EXCLUDED.evaluated_at
    RETURNING member_id, below_since
)
SELECT
    (SELECT count(*) FROM events e JOIN decided d USING (member_id) WHERE d.new_rank > d.current_rank) AS upgrades,
    (SELECT count(*) FROM events e JOIN decided d USING (member_id) WHERE d.new_rank < d.current_rank) AS downgrades,
    (SELECT count(*) FROM status WHERE below_since IS NOT NULL) AS in_grace,
    (SELECT count(*) FROM changed) AS changed
"""


def evaluate_tiers(session: Session, *, as_of: datetime, member_range: tuple[int, int], now: datetime
                   ) -> dict[str, int]:
    """The scheduled evaluation for members in the id range: upgrades anyone the ladder now lifts, starts
    the grace clock for members below their tier, and steps down by one those whose grace has passed.
    Re-running at the same ``as_of`` changes nothing."""
    thresholds = ladder().thresholds_fen
    grace = timedelta(days=get_settings().tier_downgrade_grace_days)
    sql = EVALUATE_SQL.replace("{in_window}", SPEND_WINDOW_SQL.format(orders="o")).replace(
        "{downgrade_due}", DOWNGRADE_DUE_SQL.format(below_since="below_since"))
    row = session.execute(sa.text(sql), {
        "as_of": as_of, "now": now, **window_params(as_of), **downgrade_params(as_of=as_of, grace=grace),
        "lo": member_range[0], "hi": member_range[1],
        "a": thresholds["A"], "b": thresholds["B"], "c": thresholds["C"]}).one()
    return {"upgrades": int(row.upgrades), "downgrades": int(row.downgrades), "in_grace": int(row.in_grace)}


@dataclass(frozen=True)
class TierView:
    tier: str
    spend_fen: int
    next_tier: str | None
    missing_fen: int | None
    safe_until: datetime | None
    """Until when the member keeps this tier if they buy nothing more (None: tier D, always safe)."""
    in_grace_since: datetime | None
    history: list[dict[str, Any]]


def tier_view(*, tier: str, spend: int, below_since: datetime | None, window_orders: list[tuple[datetime, int]],
              history: list[dict[str, Any]], now: datetime) -> TierView:
    """Compose the tier's explanation from its facts (shared by ``explain_tier`` and the CRM lookup)."""
    lad = ladder()
    nxt = lad.next_tier(tier)
    grace = timedelta(days=get_settings().tier_downgrade_grace_days)
    safe_until: datetime | None
    if tier == ORDER[0]:
        safe_until = None
    elif below_since is not None:
        safe_until = downgrade_at(below_since=below_since, grace=grace)
    else:
        since, _ = spend_window(now, get_settings().tier_window_months)
        drops = qualified_until(orders=window_orders, threshold_fen=lad.thresholds_fen[tier], window=now - since)
        # Falling below starts the grace clock at the next evaluation; the tier is kept through the grace.
        safe_until = (drops + grace) if drops else now + grace
    return TierView(tier=tier, spend_fen=spend, next_tier=nxt,
                    missing_fen=max(0, lad.thresholds_fen[nxt] - spend) if nxt else None,
                    safe_until=safe_until, in_grace_since=below_since, history=history)


def explain_tier(session: Session, *, member_id: int, now: datetime) -> TierView:
    """The member's tier, spend, what the next tier needs, how long the tier is safe, and its history."""
    member = get_member(session, member_id=member_id)
    status = session.get(TierStatus, member_id)
    orders = session.execute(sa.text(
        "SELECT occurred_at, amount_fen - refunded_fen FROM orders o WHERE o.member_id = :m AND "
        + SPEND_WINDOW_SQL.format(orders="o")), {"m": member_id, **window_params(now)}).all()
    history = [{"from": e.from_tier, "to": e.to_tier, "cause": e.cause, "spend_fen": e.spend_fen, "at": e.at}
               for e in session.exec(select(TierEvent).where(TierEvent.member_id == member_id)
                                     .order_by(col(TierEvent.id).desc()).limit(50))]
    window_orders = [(r[0], int(r[1])) for r in orders]
    spend = qualifying_spend(window_orders, now=now, months=get_settings().tier_window_months)
    return tier_view(tier=member.tier, spend=spend,
                     below_since=status.below_since if status else None,
                     window_orders=window_orders, history=history, now=now)


def member_id_bounds(session: Session) -> tuple[int, int]:
    row = session.execute(sa.text("SELECT coalesce(min(id), 0), coalesce(max(id), -1) FROM members")).one()
    return int(row[0]), int(row[1])
