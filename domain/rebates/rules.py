"""Pure rules of rebates: periods and brackets."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from zoneinfo import ZoneInfo


def quarter_start(day: date) -> date:
    return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)


def last_completed_quarter(as_of: datetime, timezone: str) -> tuple[date, date]:
    """[start, end) of the calendar quarter that ended most recently before ``as_of`` (local dates)."""
    local = as_of.astimezone(ZoneInfo(timezone)).date()
    current = quarter_start(local)
    prev_month = current.month - 3
    start = date(current.year, prev_month, 1) if prev_month >= 1 else date(current.year - 1, prev_month + 12, 1)
    return start, current


def rebate_for(spend_fen: int, brackets: Sequence[Sequence[int]]) -> tuple[int, int]:
    """(rate in basis points, rebate in fen, rounded down) for the highest bracket the spend reaches.
    ``brackets``: [[minimum spend fen, rate bp], …]. ``REBATE_RATE_SQL``/``REBATE_FEN_SQL`` are the same rule
    in the settlement's statement."""
    reached = [rate for minimum, rate in brackets if spend_fen >= minimum]
    rate = max(reached) if reached else 0
    return rate, spend_fen * rate // 10_000


REBATE_RATE_SQL = ("(SELECT coalesce(max((rb.b->>1)::int), 0) FROM jsonb_array_elements(CAST(:brackets AS jsonb)) "
                   "AS rb(b) WHERE {spend} >= (rb.b->>0)::bigint)")
"""``rebate_for``'s rate in SQL; format ``spend``, bind ``brackets`` (the JSON of [[min fen, bp], …])."""

REBATE_FEN_SQL = "({spend} * {rate} / 10000)"
"""``rebate_for``'s amount in SQL (integer division rounds down, as ``//`` does for spend ≥ 0)."""


def brackets_fen(brackets_yuan: Sequence[Sequence[int]]) -> list[list[int]]:
    """Settings' [[minimum yuan, rate bp], …] as the programs store them: [[minimum fen, rate bp], …]."""
    return [[int(minimum) * 100, int(rate)] for minimum, rate in brackets_yuan]


# --- coupon state: one rule, in Python and as SQL over a coupons row ---------------------------------------------
COUPON_STATES = ("available", "redeemed", "voided", "expired")


def coupon_state(*, redeemed_at: datetime | None, voided_at: datetime | None, expires_at: datetime,
                 now: datetime) -> str:
    """A coupon is redeemed or voided for good (whichever happened: the two exclude each other); otherwise it is
    available until it expires (``expires_at`` itself is already expired)."""
    if redeemed_at is not None:
        return "redeemed"
    if voided_at is not None:
        return "voided"
    return "expired" if expires_at <= now else "available"


COUPON_STATE_SQL = ("CASE WHEN {c}.redeemed_at IS NOT NULL THEN 'redeemed' "
                    "WHEN {c}.voided_at IS NOT NULL THEN 'voided' "
                    "WHEN {c}.expires_at <= {now} THEN 'expired' ELSE 'available' END")
"""``coupon_state`` over a coupons row ``{c}`` at ``{now}`` (a bound parameter's SQL)."""
