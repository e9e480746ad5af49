"""The points ledger, the lots it is held in, and the per-member account that caches the balance."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from domain.db import utc_column


class EntryKind(StrEnum):
    EARN = "earn"
    """An order credited points; they are pending until the return window closes."""
    RELEASE = "release"
    """Pending points of a lot became available."""
    REDEEM = "redeem"
    """The member spent available points."""
    EXPIRE = "expire"
    """What was left of a lot at its expiry date lapsed."""
    REVERSE = "reverse"
    """A refund took back what its order earned (from pending, available, or into debt)."""
    ADJUST = "adjust"
    """An administrator corrected the balance, with a reason."""
    POOL_OUT = "pool_out"
    """Available points left the member for the points pool they belong to (the pool owner's account)."""
    POOL_IN = "pool_in"
    """A pool member's points arrived in the pool owner's account, keeping their expiry dates."""


class LotState(StrEnum):
    PENDING = "pending"
    AVAILABLE = "available"
    EXPIRED = "expired"


class PointsAccount(SQLModel, table=True):
    """The member's balance, kept equal to the sum of the ledger in the same transaction as each entry.

    ``available`` = sum of available lots' ``remaining`` − ``debt``; ``debt`` is what a refund took back
    after the points were spent: later points pay it first.
    """

    __tablename__ = "points_accounts"

    member_id: int = Field(foreign_key="members.id", primary_key=True)
    available: int = 0
    pending: int = 0
    debt: int = 0
    updated_at: datetime = utc_column()


class PointsLot(SQLModel, table=True):
    __tablename__ = "points_lots"
    __table_args__ = (
        sa.CheckConstraint("remaining >= 0 AND remaining <= amount", name="remaining_within_amount"),
        sa.Index("ix_points_lots_member_id_state_expires_at", "member_id", "state", "expires_at"),
        sa.Index("ix_points_lots_pending_available_at", "available_at", postgresql_where=sa.text("state = 'pending'")),
        sa.Index("ix_points_lots_available_expires_at", "expires_at",
                 postgresql_where=sa.text("state = 'available' AND remaining > 0")),
    )

    id: int | None = Field(default=None, primary_key=True)
    member_id: int = Field(foreign_key="members.id")
    amount: int
    remaining: int
    state: LotState = Field(sa_type=sa.String(10))  # type: ignore[call-overload]
    source: str = Field(max_length=16)
    source_ref: str = Field(max_length=64)
    available_at: datetime = utc_column()
    expires_at: datetime = utc_column()
    created_at: datetime = utc_column()


class LedgerEntry(SQLModel, table=True):
    """Append-only. A correction is a new entry, never an update."""

    __tablename__ = "points_ledger"
    __table_args__ = (
        sa.UniqueConstraint("source", "source_ref", "kind"),
        sa.Index("ix_points_ledger_member_id_id", "member_id", "id"),
    )

    id: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, primary_key=True, autoincrement=True))
    member_id: int = Field(foreign_key="members.id")
    kind: EntryKind = Field(sa_type=sa.String(10))  # type: ignore[call-overload]
    pending_delta: int = 0
    available_delta: int = 0
    lot_id: int | None = None
    source: str = Field(max_length=16)
    """What caused it: ``order``, ``refund``, ``lot``, ``redemption``, ``adjustment``."""
    source_ref: str = Field(max_length=64)
    """Which one: for ``order``, ``refund``, ``redemption`` and ``lot`` the row's own id (callers' ids are unique
    only per caller; ``details`` keeps the caller's id), for ``adjustment`` and ``pool`` the request's id."""
    reason: str | None = Field(default=None, max_length=200)
    actor: str | None = Field(default=None, max_length=130)
    details: dict[str, Any] = Field(default_factory=dict, sa_column=sa.Column(JSONB, nullable=False,
                                                                           server_default="{}"))
    created_at: datetime = utc_column()


class Redemption(SQLModel, table=True):
    __tablename__ = "points_redemptions"
    __table_args__ = (sa.UniqueConstraint("sent_by", "redemption_id"),)

    id: int | None = Field(default=None, primary_key=True)
    redemption_id: str = Field(max_length=64)
    sent_by: str = Field(default="", max_length=80, sa_column_kwargs={"server_default": ""})
    """Who sent it (``api:<key name>``, ``staff:<username>``, ``member:<id>``): the caller's own namespace of
    idempotency keys, so one caller can neither replay nor pre-empt another's (migration 1503)."""
    member_id: int = Field(foreign_key="members.id", index=True)
    points: int
    reason: str = Field(max_length=200)
    payload_hash: str = Field(max_length=64)
    allocations: list[dict[str, int]] = Field(default_factory=list, sa_column=sa.Column(JSONB, nullable=False))
    """Which lots paid for it, oldest first: ``[{"lot_id", "points"}]``."""
    created_at: datetime = utc_column()
