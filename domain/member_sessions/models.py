"""One member login and its refresh token."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from domain.db import utc_column


class MemberSession(SQLModel, table=True):
    """A member's login. Its id is in every access token, so revoking the row ends them all at once. The
    refresh token is stored as a hash and rotates on every use; the previous hash is kept so that a stolen,
    already-used refresh token is recognised when it comes back — and then the whole login ends."""

    __tablename__ = "member_sessions"

    id: str = Field(primary_key=True, max_length=32)
    member_id: int = Field(index=True)
    proof: str = Field(max_length=20)
    """How the member proved who they are: ``wechat``, ``sms``, or ``exchange`` (an app server vouched)."""
    client: str | None = Field(default=None, max_length=64)
    """For ``exchange``: the API key that vouched."""
    refresh_hash: str = Field(max_length=64)
    previous_refresh_hash: str | None = Field(default=None, max_length=64)
    created_at: datetime = utc_column()
    refreshed_at: datetime | None = utc_column(nullable=True)
    expires_at: datetime = utc_column()
    """The login's end: no refresh after it."""
    revoked_at: datetime | None = utc_column(nullable=True)
    revoked_reason: str | None = Field(default=None, max_length=40)


class SignInCode(SQLModel, table=True):
    """One SMS code sent for phone sign-in. Only its digest is kept; wrong answers are counted on the row, and
    every limit (sends per phone, per client, wrong codes per phone) counts these rows over the last hour, so
    a resend never resets a count. Pruned by the ``prune-wechat`` job with the WeChat binding attempts."""

    __tablename__ = "member_sign_in_codes"
    __table_args__ = (sa.Index("ix_member_sign_in_codes_phone_sent_at", "phone", "sent_at"),
                      sa.Index("ix_member_sign_in_codes_client_sent_at", "client", "sent_at"))

    id: int | None = Field(default=None, primary_key=True)
    phone: str = Field(max_length=20)
    """E.164, as the code was sent."""
    client: str = Field(max_length=64)
    """Who asked: the requesting address (per-client send limit)."""
    salt: str = Field(max_length=32)
    code_hash: str = Field(max_length=64)
    """SHA-256 of the salt, the phone and the code; the code itself is never stored."""
    attempts: int = 0
    """Wrong codes typed against this code."""
    sent_at: datetime = utc_column()
    expires_at: datetime = utc_column()
    used_at: datetime | None = utc_column(nullable=True)
