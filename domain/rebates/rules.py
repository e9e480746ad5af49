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
    """(rate in basis points, rebate in fen, rounded down) for the highest bracket the spend reaches."""
    reached = [rate for minimum, rate in brackets if spend_fen >= minimum]
    rate = max(reached) if reached else 0
    return rate, spend_fen * rate // 10_000
