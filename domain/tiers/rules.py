"""Pure rules of the tier staircase."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from domain.points.rules import add_months

ORDER = ("D", "C", "B", "A")
"""Lowest to highest."""


@dataclass(frozen=True)
class Ladder:
    thresholds_fen: Mapping[str, int]
    """Qualifying spend (fen, rolling window) each tier needs."""

    @classmethod
    def from_yuan(cls, thresholds_yuan: Mapping[str, int]) -> Ladder:
        if set(thresholds_yuan) != set(ORDER):
            raise ValueError(f"the ladder needs exactly the tiers {ORDER}")
        values = [thresholds_yuan[t] for t in ORDER]
        if values[0] != 0 or values != sorted(values):
            raise ValueError("thresholds must start at 0 and rise with the tier")
        return cls({t: v * 100 for t, v in thresholds_yuan.items()})

    def tier_for(self, spend_fen: int) -> str:
        """The highest tier whose threshold the spend reaches. SQL form: ``loyalty_tier_for`` (migrations 1700,
        1709), compared with this one on generated cases in ``tests/domain/test_order_statement.py``."""
        reached = [t for t in ORDER if spend_fen >= self.thresholds_fen[t]]
        return reached[-1]

    def in_order(self) -> tuple[list[str], list[int]]:
        """Tiers lowest first and their thresholds: the parameters of the SQL form ``loyalty_tier_for``."""
        return list(ORDER), [self.thresholds_fen[t] for t in ORDER]

    def next_tier(self, tier: str) -> str | None:
        i = ORDER.index(tier)
        return ORDER[i + 1] if i + 1 < len(ORDER) else None


def rank(tier: str) -> int:
    return ORDER.index(tier)


def one_step_down(tier: str) -> str:
    return ORDER[max(0, rank(tier) - 1)]


def qualified_until(*, orders: Sequence[tuple[datetime, int]], threshold_fen: int,
                    window: timedelta) -> datetime | None:
    """The instant the rolling spend drops below ``threshold_fen`` if no more orders come.

    ``orders`` are (occurred_at, net fen) inside the current window. Counting back from the newest, the
    order that completes the threshold is the last one needed; when it leaves the window, the spend falls
    short. None when the threshold is 0 (always qualified) or not reached now.
    """
    if threshold_fen <= 0:
        return None
    total = 0
    for occurred_at, amount in sorted(orders, reverse=True):
        total += amount
        if total >= threshold_fen:
            return occurred_at + window
    return None


def downgrade_due(*, below_since: datetime | None, as_of: datetime, grace: timedelta) -> bool:
    """A member below their tier is downgraded (one step) once the grace period has fully passed.
    ``DOWNGRADE_DUE_SQL`` is the same rule in the scheduled evaluation."""
    return below_since is not None and as_of >= downgrade_at(below_since=below_since, grace=grace)


# --- qualifying spend over the rolling window --------------------------------------------------------
# The tier staircase, campaign audiences and call-list scores all mean the same spend: orders net of refunds
# in (now − 12 months, now]. The window, the Python sum and the SQL are here and nowhere else.


def spend_window(now: datetime, months: int) -> tuple[datetime, datetime]:
    """(start, end] of the rolling window: an order exactly ``months`` old no longer counts, nor one dated
    after ``now``."""
    return add_months(now, -months), now


def qualifying_spend(orders: Iterable[tuple[datetime, int]], *, now: datetime, months: int) -> int:
    """Net spend (fen) of ``orders`` — (occurred_at, amount net of refunds) — inside the window at ``now``."""
    start, end = spend_window(now, months)
    return sum(amount for at, amount in orders if start < at <= end)


SPEND_WINDOW_SQL = "{orders}.occurred_at > :spend_since AND {orders}.occurred_at <= :spend_until"
"""An order row inside the window; format ``orders`` (the orders alias), bind ``spend_params``."""

QUALIFYING_SPEND_SQL = ("coalesce((SELECT sum(qs.amount_fen - qs.refunded_fen) FROM orders qs "
                        "WHERE qs.member_id = {member_id} AND " + SPEND_WINDOW_SQL.format(orders="qs") + "), 0)")
"""``qualifying_spend`` of one member as a SQL expression; format ``member_id``, bind ``spend_params``."""


def spend_params(now: datetime, months: int) -> dict[str, datetime]:
    start, end = spend_window(now, months)
    return {"spend_since": start, "spend_until": end}


# --- downgrade -----------------------------------------------------------------------------------------


def downgrade_at(*, below_since: datetime, grace: timedelta) -> datetime:
    """When a member who fell below their tier's threshold at ``below_since`` steps down one tier."""
    return below_since + grace


DOWNGRADE_DUE_SQL = "({below_since} IS NOT NULL AND {below_since} <= :downgrade_cutoff)"
"""``downgrade_due`` in SQL; format ``below_since``, bind ``downgrade_params``."""


def downgrade_params(*, as_of: datetime, grace: timedelta) -> dict[str, datetime]:
    return {"downgrade_cutoff": as_of - grace}
