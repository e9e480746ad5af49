"""Orders and refunds: the purchases that earn points and count as qualifying spend."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from domain.db import utc_column


class Order(SQLModel, table=True):
    __tablename__ = "orders"
    __table_args__ = (
        sa.CheckConstraint("amount_fen > 0", name="amount_positive"),
        sa.CheckConstraint("refunded_fen >= 0 AND refunded_fen <= amount_fen", name="refund_within_amount"),
        sa.Index("ix_orders_member_id_occurred_at", "member_id", "occurred_at"),
        sa.UniqueConstraint("sent_by", "order_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    order_id: str = Field(max_length=64)
    """The caller's id: the idempotency key of the purchase, within ``sent_by``."""
    sent_by: str = Field(default="", max_length=80, sa_column_kwargs={"server_default": ""})
    """Who sent it (``api:<key name>``, ``staff:<username>``, ``member:<id>``): the caller's own namespace of
    idempotency keys, so one caller can neither replay nor pre-empt another's (migration 1503)."""
    member_id: int = Field(foreign_key="members.id")
    amount_fen: int = Field(sa_type=sa.BigInteger)  # type: ignore[call-overload]
    refunded_fen: int = Field(default=0, sa_type=sa.BigInteger)  # type: ignore[call-overload]
    channel: str = Field(max_length=32)
    occurred_at: datetime = utc_column()
    items: list[dict[str, Any]] = Field(default_factory=list, sa_column=sa.Column(JSONB, nullable=False))
    payload_hash: str = Field(max_length=64)
    """SHA-256 of the canonical request: a replay with another payload is a conflict, not a silent no-op."""
    tier_at_order: str = Field(max_length=1)
    points_earned: int = 0
    points_reversed: int = 0
    recorded_at: datetime = utc_column()


class Refund(SQLModel, table=True):
    __tablename__ = "order_refunds"
    __table_args__ = (sa.CheckConstraint("amount_fen > 0", name="amount_positive"),
                      sa.UniqueConstraint("sent_by", "refund_id"))

    id: int | None = Field(default=None, primary_key=True)
    refund_id: str = Field(max_length=64)
    sent_by: str = Field(default="", max_length=80, sa_column_kwargs={"server_default": ""})
    """Who sent it (``api:<key name>``, ``staff:<username>``, ``member:<id>``): the caller's own namespace of
    idempotency keys, so one caller can neither replay nor pre-empt another's (migration 1503)."""
    order_pk: int = Field(foreign_key="orders.id", index=True)
    amount_fen: int = Field(sa_type=sa.BigInteger)  # type: ignore[call-overload]
    points_reversed: int
    payload_hash: str = Field(max_length=64)
    occurred_at: datetime = utc_column()
    recorded_at: datetime = utc_column()
