"""Contact gate request and response bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, StrictBool

from api.schemas.common import Instant, StrictModel
from domain.contact_policy.rules import Purpose
from domain.members.models import ContactChannel


class DecisionOut(BaseModel):
    verdict: str
    reasons: list[str]
    send_at: datetime | None
    next_allowed_at: datetime | None


class TouchIn(StrictModel):
    channel: ContactChannel
    purpose: Purpose | None = Field(default=None, description="Optional: the touch carries its template's purpose; "
                                                            "a different one is a 422 (purpose_mismatch)")
    idempotency_key: str = Field(min_length=1, max_length=120)
    template: str = Field(min_length=1, max_length=64, description="A key of the template catalogue")
    variables: dict[str, Any] = Field(default_factory=dict,
                                      description="Exactly the template's declared variables")
    source: str | None = Field(default=None, max_length=60,
                               description="Narrows the caller's namespace (stored as api:<key name>/<source>); "
                                           "the idempotency key is unique per stored source")
    not_before: Instant | None = None


class TouchOut(BaseModel):
    id: int
    member_id: int
    channel: str
    purpose: str
    source: str
    template: str
    decision: str
    reasons: list[str]
    status: str
    send_at: datetime | None
    next_allowed_at: datetime | None
    requested_at: datetime
    attempts: int
    sent_at: datetime | None
    delivery_status: str | None
    last_error: str | None
    replayed: bool = False


class ConsentIn(StrictModel):
    granted: StrictBool


class ComplaintIn(StrictModel):
    category: str = Field(min_length=1, max_length=40, examples=["billing", "rude_call", "too_many_messages"])
    note: str = Field(default="", max_length=2000)


class ComplaintResolve(StrictModel):
    resolution: str = Field(min_length=1, max_length=2000)


class ComplaintOut(BaseModel):
    id: int
    member_id: int
    category: str
    note: str
    actor: str
    opened_at: datetime
    resolved_at: datetime | None
    resolution: str | None
