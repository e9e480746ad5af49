"""Touches: every requested contact with the gate's decision, the outbox they wait in, their delivery."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlmodel import Field, SQLModel

from domain.db import utc_column


class TouchStatus(StrEnum):
    QUEUED = "queued"
    """Approved or deferred: waits in the outbox until ``send_at``."""
    SENDING = "sending"
    """Claimed by a dispatcher until ``claimed_until``; if that passes, another dispatcher takes it over."""
    SENT = "sent"
    FAILED = "failed"
    """Permanent failure or retries used up; ``last_error`` says why."""
    REJECTED = "rejected"
    """The gate refused it; ``reasons`` say why."""
    SUPPRESSED = "suppressed"
    """Allowed when requested, refused at send time (an opt-out or complaint arrived meanwhile)."""


COUNTED = (TouchStatus.QUEUED, TouchStatus.SENDING, TouchStatus.SENT)
"""Touches that count against frequency caps: everything the gate let through, whether sent or waiting."""


class Touch(SQLModel, table=True):
    __tablename__ = "touches"
    __table_args__ = (
        sa.UniqueConstraint("source", "idempotency_key"),
        sa.Index("ix_touches_member_id_send_at", "member_id", "send_at"),
        sa.Index("ix_touches_due", "send_at", postgresql_where=sa.text("status IN ('queued', 'sending')")),
        sa.Index("ix_touches_provider_ref", "channel", "provider_ref"),
    )

    id: int | None = Field(default=None, primary_key=True)
    member_id: int = Field(foreign_key="members.id")
    channel: str = Field(max_length=10)
    purpose: str = Field(max_length=10)
    source: str = Field(max_length=140)
    """Who asked: ``journey:welcome``, ``campaign:12``, ``api:<key name>`` …"""
    idempotency_key: str = Field(max_length=120)
    template: str = Field(max_length=64)
    variables: dict[str, Any] = Field(default_factory=dict, sa_column=sa.Column(JSONB, nullable=False))
    decision: str = Field(max_length=10)
    """The gate's first answer: approved, deferred or rejected."""
    reasons: list[str] = Field(default_factory=list, sa_column=sa.Column(ARRAY(sa.String(40)), nullable=False))
    status: TouchStatus = Field(sa_type=sa.String(10))  # type: ignore[call-overload]
    send_at: datetime | None = utc_column(nullable=True)
    """When it may leave (counted against caps from then)."""
    next_allowed_at: datetime | None = utc_column(nullable=True)
    requested_at: datetime = utc_column()
    attempts: int = 0
    next_attempt_at: datetime | None = utc_column(nullable=True)
    claimed_until: datetime | None = utc_column(nullable=True)
    provider_ref: str | None = Field(default=None, max_length=128)
    delivery_status: str | None = Field(default=None, max_length=64)
    """A provider's asynchronous report (e.g. WeChat's TEMPLATESENDJOBFINISH ``success``)."""
    last_error: str | None = Field(default=None, max_length=300)
    sent_at: datetime | None = utc_column(nullable=True)


class DeliveryAttempt(SQLModel, table=True):
    __tablename__ = "delivery_attempts"

    id: int | None = Field(default=None, primary_key=True)
    touch_id: int = Field(foreign_key="touches.id", index=True)
    attempt: int
    outcome: str = Field(max_length=10)
    provider_ref: str | None = Field(default=None, max_length=128)
    reason: str | None = Field(default=None, max_length=300)
    at: datetime = utc_column()


class CallTask(SQLModel, table=True):
    """A phone touch becomes a task for an agent: the call center is the phone channel's adapter."""

    __tablename__ = "call_tasks"

    id: int | None = Field(default=None, primary_key=True)
    touch_id: int = Field(foreign_key="touches.id", unique=True)
    member_id: int = Field(foreign_key="members.id", index=True)
    purpose: str = Field(max_length=10)
    template: str = Field(max_length=64)
    due_at: datetime = utc_column()
    status: str = Field(default="open", max_length=10)
    created_at: datetime = utc_column()
