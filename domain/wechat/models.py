"""The official account's followers and the bookkeeping of its callbacks."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from domain.db import utc_column


class Follower(SQLModel, table=True):
    """A WeChat user who follows (or followed) the official account, and the member they are."""

    __tablename__ = "wechat_followers"

    openid: str = Field(primary_key=True, max_length=64)
    member_id: int = Field(foreign_key="members.id", index=True)
    subscribed: bool = True
    qr_scene: str | None = Field(default=None, max_length=64)
    """The parametric QR code that brought them: a store, campaign or rep."""
    subscribed_at: datetime | None = utc_column(nullable=True)
    unsubscribed_at: datetime | None = utc_column(nullable=True)
    last_interaction_at: datetime | None = utc_column(nullable=True)
    """Opens WeChat's customer-service window (48 h after a message)."""
    last_interaction_kind: str | None = Field(default=None, max_length=16)
    unionid_checked_at: datetime | None = utc_column(nullable=True)
    """When WeChat's user API was last asked for this follower's unionid (the linking job)."""


class AccessToken(SQLModel, table=True):
    """The official account's access token, shared by every process; refreshed by one at a time."""

    __tablename__ = "wechat_access_tokens"

    appid: str = Field(primary_key=True, max_length=64)
    token: str = Field(max_length=600)
    expires_at: datetime = utc_column()
    refreshed_at: datetime = utc_column()


class OAuthState(SQLModel, table=True):
    """One phone-binding attempt: the ``state`` WeChat echoes back, then the openid it proved, then the bind."""

    __tablename__ = "wechat_oauth_states"

    state: str = Field(primary_key=True, max_length=64)
    created_at: datetime = utc_column()
    openid: str | None = Field(default=None, max_length=64)
    unionid: str | None = Field(default=None, max_length=64)
    verified_at: datetime | None = utc_column(nullable=True)
    phone: str | None = Field(default=None, max_length=20)
    """The phone a code was sent to: only this phone can be bound with this state."""
    code_hash: str | None = Field(default=None, max_length=64)
    """SHA-256 of the state and the SMS code; the code itself is never stored."""
    code_sent_at: datetime | None = utc_column(nullable=True)
    codes_sent: int = 0
    code_attempts: int = 0
    bound_at: datetime | None = utc_column(nullable=True)


class ProcessedCallback(SQLModel, table=True):
    """WeChat retries a callback up to three times: each message or event is handled once."""

    __tablename__ = "wechat_processed_callbacks"

    key: str = Field(primary_key=True, max_length=120)
    """``msg:<MsgId>``, or ``evt:<FromUserName>:<CreateTime>:<Event>`` for events (their MsgId is 0)."""
    received_at: datetime = utc_column()


class SubscriptionGrant(SQLModel, table=True):
    """A follower's one-time grant for one subscription-message template: it allows exactly one send.

    Recorded from WeChat's ``subscribe_msg_popup_event`` (accept); a later reject revokes what is unused.
    A send reserves the oldest unused grant under the touch's key, so a retried touch reuses its grant."""

    __tablename__ = "wechat_subscription_grants"
    __table_args__ = (sa.Index("ix_wechat_subscription_grants_open", "openid", "template_id", "granted_at",
                               postgresql_where=sa.text("used_at IS NULL AND revoked_at IS NULL")),)

    id: int | None = Field(default=None, primary_key=True)
    openid: str = Field(max_length=64)
    template_id: str = Field(max_length=128)
    granted_at: datetime = utc_column()
    grant_key: str = Field(max_length=160, unique=True)
    """The callback that granted it (``<openid>:<CreateTime>:<template>``): a replayed event grants nothing more."""
    used_at: datetime | None = utc_column(nullable=True)
    used_by: str | None = Field(default=None, max_length=64, unique=True)
    """The touch key that spent it."""
    revoked_at: datetime | None = utc_column(nullable=True)
