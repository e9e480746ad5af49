"""Member request and response bodies."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field, StrictBool

from api.schemas.common import Day, Email, Instant, StrictModel
from api.schemas.organisations import TreatmentOut
from domain.members.models import ConsentStatus, ContactChannel, Gender, MemberStatus, SourceChannel

Text64 = Field(default=None, max_length=64)


class MemberCreate(StrictModel):
    phone: str | None = Field(default=None, max_length=32, examples=["+86 138-0013-8000"])
    source_channel: SourceChannel
    source_campaign: str | None = Field(default=None, max_length=64, examples=["SPRING26"])
    joined_at: Instant | None = None
    wechat_openid: str | None = Field(default=None, min_length=1, max_length=64)
    wechat_unionid: str | None = Field(default=None, min_length=1, max_length=64)
    email: Email | None = None
    name: str | None = Field(default=None, max_length=100)
    birthday: Day | None = None
    gender: Gender = Gender.UNKNOWN
    city: str | None = Text64
    timezone: str | None = Field(default=None, max_length=64, examples=["Asia/Shanghai"])
    preferred_channel: ContactChannel | None = None
    assigned_rep: str | None = Text64
    tags: list[str] = Field(default_factory=list, max_length=50)
    consents: dict[ContactChannel, StrictBool] = Field(default_factory=dict)
    external_ids: dict[str, str] = Field(default_factory=dict, max_length=20,
                                         description="system name → this member's id in that system")


class MemberUpdate(StrictModel):
    phone: str | None = Field(default=None, max_length=32)
    email: Email | None = None
    name: str | None = Field(default=None, max_length=100)
    birthday: Day | None = None
    gender: Gender | None = None
    city: str | None = Text64
    timezone: str | None = Field(default=None, max_length=64)
    preferred_channel: ContactChannel | None = None
    assigned_rep: str | None = Text64
    tags: list[str] | None = Field(default=None, max_length=50)


class MemberClose(StrictModel):
    reason: str = Field(min_length=1, max_length=200)


class MemberOut(BaseModel):
    id: int
    member_code: str
    phone: str | None
    wechat_openid: str | None
    wechat_unionid: str | None
    email: str | None
    name: str | None
    birthday: date | None
    gender: Gender
    city: str | None
    timezone: str
    preferred_channel: ContactChannel | None
    assigned_rep: str | None
    tags: list[str]
    tier: str
    status: MemberStatus
    source_channel: SourceChannel
    source_campaign: str | None
    joined_at: datetime
    last_purchase_at: datetime | None
    closed_at: datetime | None
    consents: dict[ContactChannel, ConsentStatus]
    external_ids: dict[str, str]
    treatment: TreatmentOut | None = Field(default=None, description=(
        "The tier the member is served at: the best of their own (`tier`) and one shared through an organisation "
        "or family link, with its source"))


class MemberSummary(BaseModel):
    """One row of a member list: enough to pick the right person, personal data masked by the caller's right."""

    id: int
    member_code: str
    name: str | None
    phone: str | None
    phone_masked: bool
    tier: str
    """The member's own tier (their spend)."""
    served_tier: str
    """The tier they are served at: their own, or a better one through an organisation or family link
    (``GET /v1/members/{id}/treatment`` says where it comes from)."""
    status: MemberStatus
    city: str | None
    tags: list[str]
    joined_at: datetime
    last_purchase_at: datetime | None
