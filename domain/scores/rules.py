"""Channel preference: the pure arithmetic (DOMAIN.md, Channel preference).

Values in, values out — NumPy arrays for the set-based parts, so a million members are a handful of vector
operations, never a Python loop per member. The service reads the arrays (COPY) and writes the results.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np
from numpy.typing import NDArray

CHANNELS: tuple[str, ...] = ("phone", "sms", "wechat", "app", "store", "email")
"""The channels a member uses and is scored on: phone/call center, SMS, WeChat, web/app, store, email."""

INDICATORS: tuple[str, ...] = ("months_used", "days_used", "transactions")
"""Per member and channel over the scoring window (the material's three indicators)."""

ORDER_CHANNELS: dict[str, str] = {
    "store": "store", "pos": "store", "shop": "store",
    "app": "app", "web": "app", "ecommerce": "app", "online": "app", "mini_program": "wechat",
    "wechat": "wechat", "phone": "phone", "call_center": "phone", "telesales": "phone",
}
"""An order's ``channel`` (free text from the till or shop) → the channel it shows the member using."""

INTEREST_SOURCES: dict[str, str] = {"ivr": "phone", "call_center": "phone", "web": "app", "app": "app",
                                    "wechat": "wechat", "store": "store"}
"""Where a member asked about a product (``interest_events.source``) → the channel they used to ask."""


# --- the entropy method (熵值法) -----------------------------------------------------------------------

def entropy_weights(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """Indicator weights by the entropy method, for an (n rows × m indicators) matrix of non-negative values.

    Each column is min-max normalised, turned into shares p_ij = x'_ij / Σ_i x'_ij, its entropy is
    e_j = -Σ_i p_ij ln p_ij / ln n, and the weights are the normalised divergences d_j = 1 - e_j: an indicator
    whose values differ more between members says more about them and weighs more. A column that is the same
    for everybody carries no information (d_j = 0); if every column is like that the weights are equal.
    """
    n, m = x.shape
    if n < 2:
        return np.full(m, 1.0 / m)
    normalised = _min_max(x)
    totals = normalised.sum(axis=0)
    shares = np.divide(normalised, totals, out=np.zeros_like(normalised), where=totals > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(shares > 0, shares * np.log(shares), 0.0)
    entropy = np.where(totals > 0, -plogp.sum(axis=0) / np.log(n), 1.0)
    divergence = 1.0 - entropy
    if divergence.sum() <= 0:
        return np.full(m, 1.0 / m)
    return divergence / divergence.sum()


def _min_max(x: NDArray[np.float64]) -> NDArray[np.float64]:
    low, high = x.min(axis=0), x.max(axis=0)
    span = high - low
    return np.divide(x - low, span, out=np.zeros_like(x, dtype=np.float64), where=span > 0)


def usage_composite(usage: NDArray[np.float64], weights: NDArray[np.float64] | None = None
                    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Each member's entropy-weighted use of each channel: ``usage`` is (members × channels × indicators).

    The indicators are pooled over every member and channel (so a unit of use means the same on every channel),
    scaled by their maximum, and weighted by the entropy method (``weights`` if given). Returns (composite
    (members × channels), weights).
    """
    members, channels, indicators = usage.shape
    pooled = usage.reshape(members * channels, indicators).astype(np.float64)
    w = entropy_weights(pooled) if weights is None else weights
    high = pooled.max(axis=0) if len(pooled) else np.ones(indicators)
    normalised = np.divide(pooled, high, out=np.zeros_like(pooled), where=high > 0)
    return (normalised @ w).reshape(members, channels), w


def prior_strength(composite: NDArray[np.float64]) -> float:
    """How much evidence the model's prediction counts for: the usage of a typical (median) member with history."""
    totals = composite.sum(axis=1)
    totals = totals[totals > 0]
    return float(np.median(totals)) if len(totals) else 0.0


def preference_scores(composite: NDArray[np.float64], prior: NDArray[np.float64], strength: float
                      ) -> NDArray[np.float64]:
    """The share of a member's contact life on each channel, in [0, 1] and summing to 1 per member.

    A member's own usage counts as evidence, the model's prediction for them (``prior``, their expected channel
    mix from attributes) as ``strength`` worth of usage: a member who used the phone once is not yet a "100 %
    phone" member, while a heavy user's score is their own mix. Without any use the score is the prediction.
    """
    totals = composite.sum(axis=1, keepdims=True)
    return (composite + strength * prior) / np.maximum(totals + strength, 1e-12)


def baseline_preferred(transactions: NDArray[np.float64]) -> NDArray[np.int64]:
    """The material's baseline rule (seed 002): a member prefers the channel they used more often than every
    other channel. ``transactions`` is (members × channels); returns the channel index, or -1 on a tie or no use."""
    if transactions.size == 0:
        return np.zeros(0, dtype=np.int64)
    best = transactions.argmax(axis=1)
    top = transactions.max(axis=1)
    ties = (transactions == top[:, None]).sum(axis=1) > 1
    return np.where((top > 0) & ~ties, best, -1).astype(np.int64)


# --- validation: gains and lift -------------------------------------------------------------------------

@dataclass(frozen=True)
class Capture:
    top_share: float
    """The fraction of members taken from the top of the ranking (0.1 = top 10 %)."""
    captured: float
    """The share of all true preferrers found in that top."""
    lift: float
    """captured / top_share: how many times better than picking members at random."""


def capture_at(order: NDArray[np.int64], truth: NDArray[np.bool_], top_share: float) -> Capture:
    """Share of the true preferrers found in the first ``top_share`` of ``order`` (indices, best first)."""
    n = len(order)
    positives = int(truth.sum())
    k = max(1, int(round(n * top_share)))
    if positives == 0 or n == 0:
        return Capture(top_share, 0.0, 0.0)
    captured = float(truth[order[:k]].sum()) / positives
    return Capture(top_share, captured, captured / (k / n))


def gains_curve(order: NDArray[np.int64], truth: NDArray[np.bool_], points: int = 50
                ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The cumulative gains curve: (share of members contacted, share of true preferrers reached)."""
    n = len(order)
    hits = np.concatenate([[0.0], np.cumsum(truth[order].astype(np.float64))])
    xs = np.linspace(0.0, 1.0, points + 1)
    idx = np.round(xs * n).astype(np.int64)
    total = max(1.0, float(truth.sum()))
    return xs, hits[idx] / total


def ranking(scores: NDArray[np.float64], *, tiebreak: NDArray[np.float64]) -> NDArray[np.int64]:
    """Member indices by descending score; equal scores ordered by ``tiebreak`` (a seeded random draw), so a
    ranking that cannot tell members apart is no better than random rather than accidentally ordered by id."""
    return np.lexsort((tiebreak, -scores)).astype(np.int64)


# --- validation windows ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class ValidationSplit:
    fit_start: date
    fit_end: date
    """Fit on [fit_start, fit_end): the scores see only this window."""
    validate_start: date
    validate_end: date
    """Validate on [validate_start, validate_end): the behaviour the scores are judged against."""


def add_months(day: date, months: int) -> date:
    """``day`` moved by whole months, clamped to the end of shorter months."""
    month0 = day.month - 1 + months
    year, month = day.year + month0 // 12, month0 % 12 + 1
    last = [31, 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28, 31, 30, 31, 30, 31, 31,
            30, 31, 30, 31][month - 1]
    return date(year, month, min(day.day, last))


def validation_split(as_of: date, *, fit_months: int = 3, validate_months: int = 2) -> ValidationSplit:
    """The material's split: fit on ``fit_months`` and validate on the ``validate_months`` that follow, the
    validation window ending at ``as_of`` (exclusive) — nothing of the validation window leaks into the fit."""
    validate_start = add_months(as_of, -validate_months)
    return ValidationSplit(fit_start=add_months(validate_start, -fit_months), fit_end=validate_start,
                           validate_start=validate_start, validate_end=as_of)


def scoring_window(as_of: date, months: int = 6) -> tuple[date, date]:
    """The scoring window: the ``months`` before ``as_of`` (exclusive)."""
    return add_months(as_of, -months), as_of


# --- the model for members without history: features ---------------------------------------------------

AGE_BAND_EDGES: tuple[int, ...] = (25, 35, 45, 55)
"""Life-stage bands by age in years (DOMAIN.md: age band): under 25, 25–34, 35–44, 45–54, 55 and over."""
AGE_BANDS: tuple[str, ...] = ("unknown", "<25", "25-34", "35-44", "45-54", "55+")
"""Band names; the first is members without a birthday."""


@dataclass(frozen=True)
class FeatureSpec:
    """How member attributes become the model's numeric features; stored with the model so a score can be
    reproduced and explained."""

    numeric: tuple[str, ...]
    categories: dict[str, tuple[str, ...]]

    def names(self) -> list[str]:
        return list(self.numeric) + [f"{k}={v}" for k, values in self.categories.items() for v in values]


def encode(spec: FeatureSpec, numeric: NDArray[np.float64], categorical: Mapping[str, Sequence[str]]
           ) -> NDArray[np.float64]:
    """Numeric columns (log1p: spend and counts are skewed) and one-hot categories; unseen values are all-zero."""
    parts = [np.log1p(np.clip(numeric, 0, None))]
    for name, values in spec.categories.items():
        column = np.asarray(categorical[name], dtype=object)
        parts.append(np.stack([(column == v) for v in values], axis=1).astype(np.float64)
                     if values else np.zeros((len(column), 0)))
    return np.concatenate(parts, axis=1)
