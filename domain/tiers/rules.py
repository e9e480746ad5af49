"""Pure rules of the tier staircase."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

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
        """The highest tier whose threshold the spend reaches."""
        reached = [t for t in ORDER if spend_fen >= self.thresholds_fen[t]]
        return reached[-1]

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
    """A member below their tier is downgraded once the grace period has fully passed."""
    return below_since is not None and as_of - below_since >= grace
