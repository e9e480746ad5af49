"""Journeys as data: definitions with immutable versions, enrollments, and each executed step."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlmodel import Field, SQLModel

from domain.db import utc_column


class Journey(SQLModel, table=True):
    __tablename__ = "journeys"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=40, unique=True)
    name: str = Field(max_length=100)
    trigger: str = Field(max_length=40)
    """``member.joined``, ``member.dormant``, ``birthday``."""
    status: str = Field(default="active", max_length=10)
    current_version: int = 1
    priority: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    """A member is in at most one non-care journey at a time: a higher-priority journey's trigger ends a
    lower one's enrollment; a lower one's trigger is skipped while a higher (or equal) one runs."""
    enrolls_since: datetime | None = utc_column(nullable=True)
    """Trigger occurrences before this are not enrolled (a new journey does not back-enrol; an operator's
    backfill asks explicitly). None: since ever (the built-in journeys)."""
    created_at: datetime = utc_column()


class JourneyVersion(SQLModel, table=True):
    """Immutable: editing a journey adds a version; a running member keeps the version they started on."""

    __tablename__ = "journey_versions"
    __table_args__ = (sa.UniqueConstraint("journey_id", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    journey_id: int = Field(foreign_key="journeys.id")
    version: int
    steps: list[dict[str, Any]] = Field(sa_column=sa.Column(JSONB, nullable=False))
    """``[{"day": 0, "kind": "send", "message": "welcome", "channel": "preferred", "purpose": "care"},
    {"day": 45, "kind": "lapse"}]``"""
    control_share: float = 0.0
    goal: str = Field(default="purchase", max_length=20)
    created_at: datetime = utc_column()


class Enrollment(SQLModel, table=True):
    __tablename__ = "journey_enrollments"
    __table_args__ = (
        sa.UniqueConstraint("journey_id", "member_id", "trigger_ref"),
        sa.Index("ix_journey_enrollments_due", "next_run_at", postgresql_where=sa.text("state = 'active'")),
    )

    id: int | None = Field(default=None, primary_key=True)
    journey_id: int = Field(foreign_key="journeys.id")
    version: int
    member_id: int = Field(foreign_key="members.id", index=True)
    trigger_ref: str = Field(max_length=80)
    """The trigger occurrence (``event:123``, ``dormant:2026-03-01``, ``birthday:2026``): one enrollment each."""
    control: bool = False
    state: str = Field(default="active", max_length=10)
    """active → completed | converted | lapsed | exited."""
    step_index: int = 0
    enrolled_at: datetime = utc_column()
    next_run_at: datetime | None = utc_column(nullable=True)
    finished_at: datetime | None = utc_column(nullable=True)


class StepExecution(SQLModel, table=True):
    """A step done for one enrollment: unique, so no number of job processes can run it twice."""

    __tablename__ = "journey_step_executions"
    __table_args__ = (sa.UniqueConstraint("enrollment_id", "step_index"),)

    id: int | None = Field(default=None, primary_key=True)
    enrollment_id: int = Field(foreign_key="journey_enrollments.id")
    step_index: int
    outcome: str = Field(max_length=16)
    """approved, deferred, rejected (from the gate), control_holdout, lapsed."""
    reasons: list[str] = Field(default_factory=list, sa_column=sa.Column(ARRAY(sa.String(40)), nullable=False))
    touch_id: int | None = None
    at: datetime = utc_column()
