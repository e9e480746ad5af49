"""Who may call the API, and the record of who read whose personal data."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from domain.db import utc_column


class Scope(StrEnum):
    APP = "app"
    """The app's or e-commerce server: enrols members, records its orders, requests touches, and acts for one
    member only through a member session (token exchange) -- never reads or changes a member by id."""
    POS = "pos"
    """A till: records orders and refunds, and reads nothing personal (no profile, no lookup)."""
    CRM = "crm"
    """Call-center agents: lookups and actions on members, every read logged."""
    ADMIN = "admin"
    """Operators and marketing: everything."""


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_keys"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64, unique=True)
    scope: Scope = Field(sa_type=sa.String(10))  # type: ignore[call-overload]
    prefix: str = Field(max_length=16, unique=True)
    """The public part of the key, shown in logs and listings to tell keys apart."""
    pii_access: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    """A CRM key that may see members' full phone numbers and emails (supervisors, fraud desk)."""
    key_hash: str = Field(max_length=64)
    """SHA-256 of the whole key: keys are long and random, so a fast hash is enough and only it is stored."""
    created_at: datetime = utc_column()
    revoked_at: datetime | None = utc_column(nullable=True)
    last_used_at: datetime | None = utc_column(nullable=True)


class AccessLogEntry(SQLModel, table=True):
    """One read of a member's personal data: who, whom, when, why (privacy law)."""

    __tablename__ = "access_log"
    __table_args__ = (sa.Index("ix_access_log_member_id_at", "member_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    api_key_name: str | None = Field(default=None, max_length=64)
    """The key, when a system read it."""
    agent_id: str | None = Field(default=None, max_length=64)
    """The staff member's username, when a person read it."""
    staff_id: int | None = Field(default=None)
    member_id: int = Field()
    action: str = Field(max_length=64)
    """What was read: ``member.read``, ``crm.lookup`` …"""
    reason: str = Field(max_length=200)
    at: datetime = utc_column()
