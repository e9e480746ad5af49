"""Members: who they are, how to reach them, where they came from."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Field, SQLModel

from domain.db import utc_column


class MemberStatus(StrEnum):
    PROSPECT = "prospect"
    """Known (e.g. from a WeChat follow) but not yet bound to a phone."""
    ACTIVE = "active"
    DORMANT = "dormant"
    """No purchase for the dormancy period; a reactivation journey is working on them."""
    LAPSED = "lapsed"
    """Reactivation ran out without a purchase."""
    CLOSED = "closed"
    """Soft-closed: kept for history and the ledger, never contacted."""


class Gender(StrEnum):
    FEMALE = "female"
    MALE = "male"
    OTHER = "other"
    UNKNOWN = "unknown"


class SourceChannel(StrEnum):
    """Where a member was collected; the first segment of the member code."""

    CAMPAIGN_FORM = "campaign_form"
    PURCHASE = "purchase"
    WECHAT = "wechat"
    APP = "app"
    WEB = "web"
    CALL_CENTER = "call_center"
    STORE = "store"
    REFERRAL = "referral"
    IMPORT = "import"


class ContactChannel(StrEnum):
    """Channels a touch can go out on; consents and the contact gate are per channel."""

    PHONE = "phone"
    SMS = "sms"
    WECHAT = "wechat"
    EMAIL = "email"
    APP = "app"


class ConsentStatus(StrEnum):
    GRANTED = "granted"
    """The member agreed to be contacted on this channel (marketing included)."""
    OPTED_OUT = "opted_out"
    """A hard no: nothing but what the law requires goes out on this channel."""


class Member(SQLModel, table=True):
    __tablename__ = "members"

    id: int | None = Field(default=None, primary_key=True)
    member_code: str = Field(max_length=40, unique=True)
    phone: str | None = Field(default=None, max_length=20, unique=True)
    """E.164, e.g. +8613800138000."""
    wechat_openid: str | None = Field(default=None, max_length=64, unique=True)
    wechat_unionid: str | None = Field(default=None, max_length=64, unique=True)
    email: str | None = Field(default=None, max_length=254)

    name: str | None = Field(default=None, max_length=100)
    birthday: date | None = None
    gender: Gender = Field(default=Gender.UNKNOWN, sa_type=sa.String(10))  # type: ignore[call-overload]
    city: str | None = Field(default=None, max_length=64)
    timezone: str = Field(default="Asia/Shanghai", max_length=64)
    preferred_channel: ContactChannel | None = Field(default=None, sa_type=sa.String(10))  # type: ignore[call-overload]
    assigned_rep: str | None = Field(default=None, max_length=64)
    tags: list[str] = Field(default_factory=list, sa_column=sa.Column(ARRAY(sa.String(64)), nullable=False,
                                                                     server_default="{}"))

    tier: str = Field(default="D", max_length=1)
    status: MemberStatus = Field(default=MemberStatus.ACTIVE, sa_type=sa.String(10), index=True)  # type: ignore[call-overload]

    source_channel: SourceChannel = Field(sa_type=sa.String(20))  # type: ignore[call-overload]
    source_campaign: str | None = Field(default=None, max_length=64)
    joined_at: datetime = utc_column(index=True)
    last_purchase_at: datetime | None = utc_column(nullable=True)
    closed_at: datetime | None = utc_column(nullable=True)
    created_at: datetime = utc_column()
    updated_at: datetime = utc_column()


class MemberConsent(SQLModel, table=True):
    """The latest consent answer per member and channel; absence means never asked."""

    __tablename__ = "member_consents"

    member_id: int = Field(foreign_key="members.id", primary_key=True)
    channel: ContactChannel = Field(sa_type=sa.String(10), primary_key=True)  # type: ignore[call-overload]
    status: ConsentStatus = Field(sa_type=sa.String(10))  # type: ignore[call-overload]
    source: str = Field(max_length=64)
    """Who recorded it: an API key's name, an agent, a WeChat event."""
    changed_at: datetime = utc_column()


class MemberConsentEvent(SQLModel, table=True):
    """Append-only history of consent changes (privacy law asks when and by whom)."""

    __tablename__ = "member_consent_events"

    id: int | None = Field(default=None, primary_key=True)
    member_id: int = Field(foreign_key="members.id", index=True)
    channel: ContactChannel = Field(sa_type=sa.String(10))  # type: ignore[call-overload]
    status: ConsentStatus = Field(sa_type=sa.String(10))  # type: ignore[call-overload]
    source: str = Field(max_length=64)
    changed_at: datetime = utc_column()


class MemberExternalId(SQLModel, table=True):
    """An id the member has in another system (POS, e-commerce shop, old CRM)."""

    __tablename__ = "member_external_ids"
    __table_args__ = (sa.UniqueConstraint("system", "external_id"),)

    id: int | None = Field(default=None, primary_key=True)
    member_id: int = Field(foreign_key="members.id", index=True)
    system: str = Field(max_length=32)
    external_id: str = Field(max_length=128)


class MemberChannelReachability(SQLModel, table=True):
    """A channel that cannot reach the member right now (WeChat unfollowed, number dead, email bouncing).

    Not a consent question: nothing at all can go out on it until it becomes reachable again.
    """

    __tablename__ = "member_channel_reachability"

    member_id: int = Field(foreign_key="members.id", primary_key=True)
    channel: ContactChannel = Field(sa_type=sa.String(10), primary_key=True)  # type: ignore[call-overload]
    reachable: bool
    reason: str = Field(max_length=100)
    changed_at: datetime = utc_column()
