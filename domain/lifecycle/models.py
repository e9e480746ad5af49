"""Each member's lifecycle stage and churn risk, refreshed by jobs."""

from __future__ import annotations

from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel


class MemberLifecycle(SQLModel, table=True):
    """The member's lifecycle stage as of the last daily refresh (the rule is ``rules.lifecycle_stage``)."""

    __tablename__ = "member_lifecycle"
    __table_args__ = (sa.Index("ix_member_lifecycle_stage", "stage"),)

    member_id: int = Field(foreign_key="members.id", primary_key=True)
    stage: str = Field(max_length=12)
    """onboarding, growth, maturity or decline."""
    as_of: date


class ChurnRisk(SQLModel, table=True):
    """The monthly churn early warning: a member's cohort, risk and the factors behind it."""

    __tablename__ = "churn_risks"
    __table_args__ = (sa.Index("ix_churn_risks_at_risk", "at_risk", "risk"),)

    member_id: int = Field(foreign_key="members.id", primary_key=True)
    month: date
    """First day of the month the warning was computed for."""
    cohort: str = Field(max_length=12)
    """``first_6m``, ``6_12m`` or ``term_ending`` (over a year with a contract/term ending soon)."""
    risk: float
    at_risk: bool
    factors: dict[str, Any] = Field(default_factory=dict, sa_column=sa.Column(JSONB, nullable=False))
