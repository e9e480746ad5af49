"""Orders, refunds, points, redemptions, tiers and coupons."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, Field

from api.schemas.common import MAX_ID, Instant, Integer, StrictModel

ExternalKey = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:\-]+$")
Fen = Field(gt=0, le=10**12, description="Integer fen (1 yuan = 100 fen)")


class OrderIn(StrictModel):
    order_id: str = ExternalKey
    member_id: Integer = Field(ge=1, le=MAX_ID)
    amount_fen: Integer = Fen
    channel: str = Field(min_length=1, max_length=32, examples=["store"])
    occurred_at: Instant
    items: list[dict[str, Any]] = Field(default_factory=list, max_length=200)


class OrderOut(BaseModel):
    """An order as recorded: the answer to recording one and the items of a member's order list (one model)."""

    order_id: str
    member_id: int
    amount_fen: int
    refunded_fen: int
    channel: str
    occurred_at: datetime
    tier_at_order: str
    points_earned: int
    points_reversed: int
    replayed: bool = False
    """Recording's answer: true when this order_id had already been recorded (nothing changed); false in lists."""


class RefundIn(StrictModel):
    refund_id: str = ExternalKey
    amount_fen: Integer = Fen
    occurred_at: Instant | None = None


class RefundOut(BaseModel):
    refund_id: str
    order_id: str
    amount_fen: int
    points_reversed: int
    replayed: bool = False


class BalanceOut(BaseModel):
    member_id: int
    available: int
    pending: int
    expiring_soon: int
    expiring_soon_date: date | None


class LedgerEntryOut(BaseModel):
    id: int
    kind: str
    pending_delta: int
    available_delta: int
    source: str
    source_ref: str
    reason: str | None
    actor: str | None
    created_at: datetime


class LedgerPage(BaseModel):
    entries: list[LedgerEntryOut]
    next_before_id: int | None


class RedemptionIn(StrictModel):
    redemption_id: str = ExternalKey
    points: Integer = Field(gt=0, le=10**9)
    reason: str = Field(min_length=1, max_length=200)


class RedemptionOut(BaseModel):
    redemption_id: str
    member_id: int
    points: int
    reason: str
    allocations: list[dict[str, int]]
    created_at: datetime
    replayed: bool = False


class AdjustmentIn(StrictModel):
    adjustment_id: str = ExternalKey
    points: Integer = Field(ge=-(10**9), le=10**9)
    reason: str = Field(min_length=3, max_length=200)


class CouponOut(BaseModel):
    code: str
    value_fen: int
    source: str
    issued_at: datetime
    expires_at: datetime
    redeemed_at: datetime | None
    voided_at: datetime | None = None
    state: str = Field(description="available, redeemed, voided or expired")


class CouponRedemptionIn(StrictModel):
    redemption_id: str = ExternalKey
    """The redeeming system's own key (its till transaction): sending it again answers the first redemption."""


class CouponVoidIn(StrictModel):
    void_id: str = ExternalKey
    reason: str = Field(min_length=3, max_length=200)


class CouponActionOut(CouponOut):
    replayed: bool = False


class TierOut(BaseModel):
    tier: str
    spend_fen: int
    next_tier: str | None
    missing_fen: int | None
    safe_until: datetime | None
    in_grace_since: datetime | None
    history: list[dict[str, Any]]
    treatment: dict[str, Any] = Field(default_factory=dict, description=(
        "The tier the member is served at: the best of their own and one shared through an organisation or "
        "family link, with its source (own, organisation, family) and an explanation"))
