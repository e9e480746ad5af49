"""One member login and its refresh token."""

from __future__ import annotations

from datetime import datetime

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
