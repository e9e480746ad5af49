"""Tier history and the downgrade grace clock."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from domain.db import utc_column


class TierEvent(SQLModel, table=True):
    """Every tier change, with why: ``order:<id>`` (upgrade at once), ``evaluation`` (scheduled), ``ladder``."""

    __tablename__ = "tier_events"
    __table_args__ = (sa.Index("ix_tier_events_member_id_at", "member_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    member_id: int = Field(foreign_key="members.id")
    from_tier: str = Field(max_length=1)
    to_tier: str = Field(max_length=1)
    cause: str = Field(max_length=80)
    spend_fen: int = Field(sa_type=sa.BigInteger)  # type: ignore[call-overload]
    at: datetime = utc_column()


class TierStatus(SQLModel, table=True):
    """When the member fell below their tier's threshold (the grace clock), null while they qualify."""

    __tablename__ = "member_tier_status"

    member_id: int = Field(foreign_key="members.id", primary_key=True)
    below_since: datetime | None = utc_column(nullable=True)
    evaluated_at: datetime | None = utc_column(nullable=True)
