"""Rebate use cases: settle a period once per member; coupons listed, redeemed and voided."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlmodel import Session, col, select

from domain.errors import Conflict, NotFound, PolicyRefused
from domain.events.service import record_event
from domain.rebates.models import Coupon, RebateProgram
from domain.rebates.rules import (
    COUPON_STATE_SQL,
    REBATE_FEN_SQL,
    REBATE_RATE_SQL,
    brackets_fen,
    coupon_state,
    last_completed_quarter,
)
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


def state_of(coupon: Coupon, *, now: datetime) -> str:
    """available, redeemed, voided or expired (``rules.coupon_state``)."""
    return coupon_state(redeemed_at=coupon.redeemed_at, voided_at=coupon.voided_at, expires_at=coupon.expires_at,
                        now=now)


def _coupon(session: Session, *, member_id: int, code: str) -> Coupon:
    coupon = session.exec(select(Coupon).where(Coupon.code == code, Coupon.member_id == member_id)
                          .execution_options(populate_existing=True)).first()
    if coupon is None:
        raise NotFound(f"coupon {code} not found for member {member_id}", code="coupon_not_found",
                       details={"code": code, "member_id": member_id})
    return coupon


def _refuse(coupon: Coupon, *, now: datetime) -> None:
    """Why a coupon cannot be used any more (its state at ``now``), as the error to answer."""
    state = state_of(coupon, now=now)
    details = {"code": coupon.code, "state": state, "redeemed_at": coupon.redeemed_at, "voided_at": coupon.voided_at,
               "expires_at": coupon.expires_at}
    if state == "expired":
        raise PolicyRefused(f"coupon {coupon.code} expired at {coupon.expires_at.isoformat()}", code="coupon_expired",
                            details=details)
    raise Conflict(f"coupon {coupon.code} is {state}", code=f"coupon_{state}", details=details)


# One statement claims the coupon: of two connections redeeming it at once, the second waits on the row and then
# finds it no longer available, so exactly one wins. Which coupons may be claimed is the state rule's, not its twin.
_STATE = COUPON_STATE_SQL.format(c="coupons", now=":now")
REDEEM_SQL = sa.text(f"""
UPDATE coupons SET redeemed_at = :now, redemption_ref = :ref
WHERE code = :code AND member_id = :member AND {_STATE} = 'available'
RETURNING id""")
VOID_SQL = sa.text(f"""
UPDATE coupons SET voided_at = :now, void_ref = :ref, void_reason = :reason, voided_by = :actor
WHERE code = :code AND member_id = :member AND {_STATE} IN ('available', 'expired')
RETURNING id""")


def _claim(session: Session, statement: sa.TextClause, params: dict[str, Any], *,
           ref_of: Callable[[Coupon], str | None], member_id: int, code: str, now: datetime) -> tuple[Coupon, bool]:
    """Run a claiming UPDATE (redeem or void) and answer the coupon and whether this was a replay of the same
    key (``params["ref"]``); a coupon the statement could not claim for another key is refused by its state."""
    claimed = session.execute(statement, {**params, "now": now, "code": code, "member": member_id}).first()
    coupon = _coupon(session, member_id=member_id, code=code)
    if claimed is None:
        if ref_of(coupon) == params["ref"]:
            return coupon, True
        _refuse(coupon, now=now)
    return coupon, False


def redeem_coupon(session: Session, *, member_id: int, code: str, redemption_id: str,
                  now: datetime) -> tuple[Coupon, bool]:
    """Use the member's coupon, once. Idempotent by ``redemption_id`` (the redeeming system's own key): the same
    key again answers the first redemption (``replayed``); any other key on a used coupon is a 409
    (``coupon_redeemed`` / ``coupon_voided``), an expired one a 422 (``coupon_expired``). Records
    ``coupon.redeemed`` for the outbox."""
    coupon, replayed = _claim(session, REDEEM_SQL, {"ref": redemption_id}, ref_of=lambda c: c.redemption_ref,
                              member_id=member_id, code=code, now=now)
    if replayed:
        return coupon, True
    record_event(session, kind="coupon.redeemed", member_id=member_id, now=now,
                 payload={"code": code, "value_fen": coupon.value_fen, "redemption_id": redemption_id})
    return coupon, False


def void_coupon(session: Session, *, member_id: int, code: str, void_id: str, reason: str, actor: str,
                now: datetime) -> tuple[Coupon, bool]:
    """Withdraw an unused coupon (issued by mistake, a fraud case), with a reason and who did it. Idempotent by
    ``void_id``; a redeemed coupon cannot be voided (409 ``coupon_redeemed``)."""
    coupon, replayed = _claim(session, VOID_SQL, {"ref": void_id, "reason": reason, "actor": actor},
                              ref_of=lambda c: c.void_ref, member_id=member_id, code=code, now=now)
    if replayed:
        return coupon, True
    record_event(session, kind="coupon.voided", member_id=member_id, now=now,
                 payload={"code": code, "value_fen": coupon.value_fen, "reason": reason})
    return coupon, False
