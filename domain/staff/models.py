"""Staff accounts and their login sessions."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from domain.db import utc_column


class StaffRole(StrEnum):
    AGENT = "agent"
    """Call-center agent: looks members up, records notes and call outcomes, works their own leads."""
    SUPERVISOR = "supervisor"
    """Leads agents: everything an agent does on any lead, call lists, campaigns and journeys, approvals."""
    MARKETER = "marketer"
    """Plans and approves campaigns and journeys (never their own), reads reports."""
    OPERATOR = "operator"
    """Operator-admin: jobs, keys, configuration, points corrections."""


class StaffAccount(SQLModel, table=True):
    """A named person. The username is the identity in every record the person leaves (four-eyes approval,
    notes, call outcomes, the access log); it is never renamed or reused, so an account is disabled, not
    deleted."""

    __tablename__ = "staff_accounts"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64, unique=True)
    display_name: str = Field(max_length=100)
    role: StaffRole = Field(sa_type=sa.String(20))  # type: ignore[call-overload]
    pii_access: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    """May see members' full phone numbers and emails; without it every route shows them masked."""
    password_hash: str = Field(max_length=255)
    """An argon2id hash (argon2-cffi); the password itself is never stored."""
    failed_logins: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    """Wrong passwords since the last successful login: enough of them throttle further attempts."""
    last_failed_login_at: datetime | None = utc_column(nullable=True)
    created_at: datetime = utc_column()
    disabled_at: datetime | None = utc_column(nullable=True)


class StaffSession(SQLModel, table=True):
    """One login. Its id is in the signed access token, so a logout or a disabled account ends it at once
    although the token itself would still verify."""

    __tablename__ = "staff_sessions"

    id: str = Field(primary_key=True, max_length=32)
    staff_id: int = Field(foreign_key="staff_accounts.id", index=True)
    created_at: datetime = utc_column()
    expires_at: datetime = utc_column()
    revoked_at: datetime | None = utc_column(nullable=True)
