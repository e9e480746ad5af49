"""Rebate use cases: settle a period once per member, list coupons."""

from __future__ import annotations

import json
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session, col, select

from domain.rebates.models import Coupon, RebateProgram
from domain.rebates.rules import REBATE_FEN_SQL, REBATE_RATE_SQL, brackets_fen, last_completed_quarter
from domain.settings import get_settings

# One statement per program and member range: spend of the period net of refunds, the bracket reached,
# a settlement per member (unique per program/member/period, so re-runs and parallel runs add nothing),
# a coupon per new settlement, and the domain events for the notices.
SETTLE_SQL = """
WITH brackets AS (
    SELECT (b->>0)::bigint AS minimum, (b->>1)::int AS rate FROM jsonb_array_elements(CAST(:brackets AS jsonb)) b
), spend AS (
    SELECT o.member_id, sum(o.amount_fen - o.refunded_fen) AS spend
    FROM orders o JOIN members m ON m.id = o.member_id AND m.status <> 'closed'
    WHERE o.occurred_at >= :start AND o.occurred_at < :end AND o.member_id BETWEEN :lo AND :hi
    GROUP BY o.member_id
    HAVING sum(o.amount_fen - o.refunded_fen) >= (SELECT min(minimum) FROM brackets)
), rated AS (
    SELECT s.member_id, s.spend, {rate} AS rate FROM spend s
), settled AS (
    INSERT INTO rebate_settlements (program_id, member_id, period_start, period_end, spend_fen, rate_bp,
                                    rebate_fen, settled_at)
    SELECT :program_id, member_id, :period_start, :period_end, spend, rate, {rebate}, :now FROM rated
    ON CONFLICT (program_id, member_id, period_start) DO NOTHING
    RETURNING id, member_id, rebate_fen
), coupons AS (
    INSERT INTO coupons (code, member_id, value_fen, source, source_ref, issued_at, expires_at)
    SELECT 'RB' || upper(substr(md5(:program_key || ':' || id::text), 1, 14)), member_id, rebate_fen, 'rebate',
           id::text, :now, :coupon_expires
    FROM settled WHERE rebate_fen > 0
    RETURNING member_id, code, value_fen
), events AS (
    INSERT INTO domain_events (kind, member_id, payload, occurred_at)
    SELECT 'coupon.issued', member_id,
           jsonb_build_object('code', code, 'value_fen', value_fen, 'source', 'rebate', 'program', :program_key,
                              'period_start', CAST(:period_start AS text)), :now
    FROM coupons
    RETURNING 1
)
SELECT (SELECT count(*) FROM settled) AS settled, (SELECT coalesce(sum(value_fen), 0) FROM coupons) AS value_fen,
       (SELECT count(*) FROM events) AS events
""".replace("{rate}", REBATE_RATE_SQL.format(spend="s.spend")).replace(
    "{rebate}", REBATE_FEN_SQL.format(spend="spend", rate="rate"))


def ensure_default_program(session: Session) -> None:
    """The default quarterly program of DOMAIN.md, created once with the brackets from settings (an operator
    may change the program's brackets afterwards; they are data from then on)."""
    session.execute(sa.text(
        "INSERT INTO rebate_programs (key, name, period, brackets, coupon_valid_days, active) "
        "VALUES ('quarterly', 'Quarterly spend rebate', 'quarter', CAST(:b AS jsonb), 90, true) "
        "ON CONFLICT (key) DO NOTHING"), {"b": json.dumps(brackets_fen(get_settings().rebate_brackets_yuan))})


def active_programs(session: Session) -> list[RebateProgram]:
    return list(session.exec(select(RebateProgram).where(RebateProgram.active == True)  # noqa: E712
                             .order_by(col(RebateProgram.id))))


def settle_program(session: Session, *, program: RebateProgram, as_of: datetime, member_range: tuple[int, int],
                   now: datetime) -> dict[str, int]:
    """Settle the last completed quarter before ``as_of`` for members in the id range."""
    tz = get_settings().program_timezone
    start, end = last_completed_quarter(as_of, tz)
    zone = ZoneInfo(tz)
    row = session.execute(sa.text(SETTLE_SQL), {
        "brackets": json.dumps(program.brackets), "program_id": program.id, "program_key": program.key,
        "start": datetime.combine(start, time(0), zone), "end": datetime.combine(end, time(0), zone),
        "period_start": start, "period_end": end, "lo": member_range[0], "hi": member_range[1], "now": now,
        "coupon_expires": now + timedelta(days=program.coupon_valid_days)}).one()
    return {"settled": int(row.settled), "coupon_value_fen": int(row.value_fen)}


def coupons_of(session: Session, *, member_id: int) -> list[Coupon]:
    """The member's coupons, newest first."""
    return list(session.exec(select(Coupon).where(Coupon.member_id == member_id).order_by(col(Coupon.id).desc())))
