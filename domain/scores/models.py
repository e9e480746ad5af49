"""Channel usage facts, preference scores and the models that made them."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from domain.db import utc_column

PRODUCT_SOURCE = "product"
"""The ``source`` of facts the derivation job reads from what the product records itself."""


class ChannelUsageFact(SQLModel, table=True):
    """How often a member used a channel on a day, by source: the material every score is computed from.

    Keyed by (member, channel, day, source) and written by upsert, so a batch sent twice, or a derivation
    run twice, leaves the same numbers — never double counts.
    """

    __tablename__ = "channel_usage_facts"
    __table_args__ = (sa.CheckConstraint("transactions >= 0", name="transactions_non_negative"),
                      sa.Index("ix_channel_usage_facts_day", "day"))

    member_id: int = Field(foreign_key="members.id", primary_key=True)
    channel: str = Field(max_length=10, primary_key=True)
    day: date = Field(primary_key=True)
    source: str = Field(max_length=40, primary_key=True)
    """``product`` (derived by the job) or the name of the system that sent the batch (``ivr``, ``web`` …)."""
    transactions: int
    recorded_at: datetime = utc_column()


class ChannelScore(SQLModel, table=True):
    """A member's current preference score for a channel, with the model version and the day it is as of."""

    __tablename__ = "channel_scores"
    __table_args__ = (sa.Index("ix_channel_scores_channel_score", "channel", "score"),)

    member_id: int = Field(foreign_key="members.id", primary_key=True)
    channel: str = Field(max_length=10, primary_key=True)
    score: float
    """In [0, 1]; a member's scores sum to 1 (share of their contact life on this channel)."""
    basis: str = Field(max_length=10)
    """``usage`` (entropy-weighted history of the last 6 months) or ``model`` (logistic regression, no history)."""
    baseline: bool = False
    """The material's baseline rule: the channel this member used more often than every other one."""
    model_version: str = Field(max_length=40)
    scored_on: date


class ScoreModel(SQLModel, table=True):
    """One scoring run's model: entropy weights, the logistic regression's coefficients, its window and seed —
    everything needed to reproduce or explain a score."""

    __tablename__ = "score_models"

    version: str = Field(primary_key=True, max_length=40)
    window_start: date
    window_end: date
    seed: int
    entropy_weights: dict[str, float] = Field(default_factory=dict, sa_column=sa.Column(JSONB, nullable=False))
    features: list[str] = Field(default_factory=list, sa_column=sa.Column(JSONB, nullable=False))
    coefficients: dict[str, Any] = Field(default_factory=dict, sa_column=sa.Column(JSONB, nullable=False))
    """The logistic regression: ``classes`` (channels), ``intercept`` and ``coef`` (one row per class, or one row
    for two classes) over ``features`` standardised with ``scaling``'s mean and std."""
    scaling: dict[str, Any] = Field(default_factory=dict, sa_column=sa.Column(JSONB, nullable=False))
    counts: dict[str, Any] = Field(default_factory=dict, sa_column=sa.Column(JSONB, nullable=False))
    """Members with history, without, training rows, per-channel label counts."""
    trained_at: datetime = utc_column()


class ScoreReport(SQLModel, table=True):
    """A validation run (fit on 3 months, validate on the next 2): the lift table and the gains curves, kept so
    the console can draw the chart without recomputing it."""

    __tablename__ = "score_reports"

    id: int | None = Field(default=None, primary_key=True)
    as_of: date
    truth: str = Field(max_length=20)
    """``seeded`` (the demo population's known preferences) or ``observed`` (the validation window's behaviour)."""
    report: dict[str, Any] = Field(default_factory=dict, sa_column=sa.Column(JSONB, nullable=False))
    created_at: datetime = utc_column()


class DemoChannelTruth(SQLModel, table=True):
    """Written only by ``loyalty demo seed``: each generated member's true channel preference and true acceptance
    per channel, which drove their generated behaviour. Scores are measured against it, never fitted to it."""

    __tablename__ = "demo_channel_truth"

    member_id: int = Field(foreign_key="members.id", primary_key=True)
    preferred: str = Field(max_length=10)
    acceptance: dict[str, float] = Field(default_factory=dict, sa_column=sa.Column(JSONB, nullable=False))
    """Channel → probability that the member accepts an offer made on it."""
    activity: float
    """Channel contacts per month the member makes."""
