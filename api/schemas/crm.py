"""The CRM lookup's answer (``domain.crm.service.compose_picture``), as a schema for the OpenAPI document.

The hot route (api/hot.py) answers the picture as it is composed, without validating it against this model
on every call (a lookup is on the hot path); tests/api/test_hot_paths.py validates real answers against it, so
the two cannot drift apart unnoticed."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a key the picture gains must be added here (the test says so)


class PictureMember(_Closed):
    id: int
    member_code: str
    name: str | None
    phone: str | None = Field(description="Masked (e.g. 138****8000) unless the caller holds the PII right")
    phone_masked: bool
    email: str | None
    wechat_linked: bool
    birthday: date | None
    gender: str | None
    city: str | None
    timezone: str
    status: str
    tags: list[str]
    source_channel: str
    source_campaign: str | None
    joined_at: datetime
    last_purchase_at: datetime | None
    assigned_rep: str | None
    dormant_from: datetime | None = Field(description="For an active member: when they turn dormant if they buy "
                                                      "nothing more")
    preferred_channel: str | None
    message_channel: str | None = Field(description="The channel a message would go out on (the one channel rule)")
    top_channel: str | None
    lifecycle_stage: str | None
    churn_warning: Any


class PictureTier(_Closed):
    tier: str
    spend_fen: int
    next_tier: str | None
    missing_fen: int | None
    safe_until: datetime | None


class PicturePoints(_Closed):
    available: int
    pending: int
    expiring_soon: int
    expiring_soon_date: date | None


class PicturePitch(_Closed):
    verdict: str
    reasons: list[str]
    next_allowed_at: datetime | None


class CrmPicture(_Closed):
    """Everything an agent needs while the phone rings, read in one statement with the access-log entry."""

    member: PictureMember
    tier: PictureTier
    treatment: dict[str, Any] = Field(description="The tier the member is served at and its source (own, "
                                                  "organisation, family), with an explanation")
    organisations: list[dict[str, Any]]
    family: list[dict[str, Any]]
    points: PicturePoints
    coupons: list[dict[str, Any]]
    recent_orders: list[dict[str, Any]]
    recent_contacts: list[dict[str, Any]]
    open_complaints: list[dict[str, Any]]
    consents: dict[str, str] = Field(description="Channel → consent status")
    unreachable_channels: dict[str, str] = Field(description="Channel → why it does not reach the member")
    notes: list[dict[str, Any]]
    active_journeys: list[dict[str, Any]]
    may_pitch_by_phone: PicturePitch = Field(description="The contact gate's verdict on a marketing call now")
