"""Pure rules of points: earning, FIFO allocation, proportional reversal, lot dates."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal


def earn_points(*, amount_fen: int, multiplier: Decimal) -> int:
    """1 point per yuan × the tier multiplier, rounded down: ¥99.99 at 1.2× earns 119, never 120.
    SQL form: ``loyalty_earn_points`` (migration 1700), compared with this one in
    ``tests/domain/test_order_statement.py``."""
    return int((Decimal(amount_fen) / 100 * multiplier).to_integral_value(rounding=ROUND_FLOOR))


def points_to_reverse(*, points_earned: int, points_reversed: int, amount_fen: int, refunded_before_fen: int,
                      refund_fen: int) -> int:
    """Points a refund takes back, in proportion to the money refunded.

    Computed on the cumulative refund so partial refunds never add up to more than was earned, and a
    full refund takes back exactly everything (each partial refund rounds in the member's favour).
    """
    refunded_after = refunded_before_fen + refund_fen
    target = points_earned * refunded_after // amount_fen
    return max(0, target - points_reversed)


@dataclass(frozen=True)
class LotView:
    lot_id: int
    remaining: int
    expires_at: datetime


def allocate_redemption_to_lots(lots: Sequence[LotView], points: int) -> list[tuple[int, int]]:
    """Take ``points`` from the lots that expire first (ties by lot id): ``[(lot_id, taken), …]``.

    Raises ValueError if the lots do not hold enough; the caller checks the balance first.
    """
    allocations: list[tuple[int, int]] = []
    left = points
    for lot in sorted(lots, key=lambda lot: (lot.expires_at, lot.lot_id)):
        if left == 0:
            break
        take = min(lot.remaining, left)
        if take > 0:
            allocations.append((lot.lot_id, take))
            left -= take
    if left:
        raise ValueError(f"lots hold {points - left} of {points} points")
    return allocations


def add_months(moment: datetime, months: int) -> datetime:
    """Same day-of-month ``months`` later, clamped to the month's last day (31 Jan + 1 month = 28/29 Feb)."""
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    for day in (moment.day, 30, 29, 28):
        try:
            return moment.replace(year=year, month=month, day=day)
        except ValueError:
            continue
    raise AssertionError("unreachable")


def lot_dates(*, occurred_at: datetime, return_window_days: int, expiry_months: int) -> tuple[datetime, datetime]:
    """When an order's points become available (after the return window) and when they expire
    (``expiry_months`` after becoming available, so every point lives the full period once usable)."""
    available_at = occurred_at + timedelta(days=return_window_days)
    return available_at, add_months(available_at, expiry_months)
