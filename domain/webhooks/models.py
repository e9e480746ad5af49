"""Webhook subscriptions of other systems, and the outbox of event deliveries to them."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Field, SQLModel

from domain.db import utc_column


class WebhookSubscription(SQLModel, table=True):
    __tablename__ = "webhook_subscriptions"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=80, unique=True)
    url: str = Field(max_length=500)
    kinds: list[str] = Field(default_factory=list, sa_column=sa.Column(ARRAY(sa.String(40)), nullable=False))
    """Domain event kinds delivered (``complaint.recorded``), translated from the public names at creation."""
    secret: str = Field(max_length=100)
    """Signs every delivery (HMAC-SHA256); shown once, at creation or rotation."""
    previous_secret: str | None = Field(default=None, max_length=100)
    previous_secret_until: datetime | None = utc_column(nullable=True)
    """After a rotation, deliveries carry a second signature with the old secret until then."""
    active: bool = True
    created_by: str = Field(max_length=120)
    created_at: datetime = utc_column()


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    """Waiting for ``next_attempt_at`` (or behind an earlier event of the same member)."""
    SENDING = "sending"
    """Claimed by a dispatcher until ``claimed_until``; after that another dispatcher sends it again."""
    DELIVERED = "delivered"
    FAILED = "failed"
    """Retries used up; a replay puts it back to pending."""


class WebhookDelivery(SQLModel, table=True):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        sa.UniqueConstraint("subscription_id", "event_id"),
        sa.Index("ix_webhook_deliveries_due", "next_attempt_at",
                 postgresql_where=sa.text("status IN ('pending', 'sending')")),
        sa.Index("ix_webhook_deliveries_member_order", "subscription_id", "member_id", "event_id",
                 postgresql_where=sa.text("status IN ('pending', 'sending')")),
    )

    id: int | None = Field(default=None, primary_key=True)
    subscription_id: int = Field(foreign_key="webhook_subscriptions.id")
    event_id: int = Field(foreign_key="domain_events.id")
    """The event's id is the delivery's id for the receiver (``evt_<id>``): the same on every retry."""
    member_id: int | None = None
    status: DeliveryStatus = Field(sa_type=sa.String(10))  # type: ignore[call-overload]
    attempts: int = 0
    next_attempt_at: datetime = utc_column()
    claimed_until: datetime | None = utc_column(nullable=True)
    last_error: str | None = Field(default=None, max_length=300)
    delivered_at: datetime | None = utc_column(nullable=True)
    created_at: datetime = utc_column()
