"""One-off campaigns: an audience by filter, previewed, approved, sent through the gate, measured."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlmodel import Field, SQLModel

from domain.db import utc_column


class Campaign(SQLModel, table=True):
    __tablename__ = "campaigns"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100)
    channel: str = Field(max_length=10)
    """A channel, or ``preferred`` for each member's preferred channel."""
    purpose: str = Field(default="marketing", max_length=10)
    template: str = Field(max_length=64)
    body: str = Field(max_length=1000)
    audience: dict[str, Any] = Field(default_factory=dict, sa_column=sa.Column(JSONB, nullable=False))
    control_share: float = 0.1
    status: str = Field(default="draft", max_length=10)
    """draft → approved → launched."""
    created_by: str = Field(max_length=130)
    approved_by: str | None = Field(default=None, max_length=130)
    created_at: datetime = utc_column()
    approved_at: datetime | None = utc_column(nullable=True)
    launched_at: datetime | None = utc_column(nullable=True)


class CampaignMember(SQLModel, table=True):
    __tablename__ = "campaign_members"
    __table_args__ = (sa.UniqueConstraint("campaign_id", "member_id"),
                      sa.Index("ix_campaign_members_unsent", "campaign_id",
                               postgresql_where=sa.text("decision IS NULL AND NOT control")))

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: int = Field(foreign_key="campaigns.id")
    member_id: int = Field(foreign_key="members.id")
    control: bool = False
    decision: str | None = Field(default=None, max_length=10)
    reasons: list[str] = Field(default_factory=list, sa_column=sa.Column(ARRAY(sa.String(40)), nullable=False,
                                                                         server_default="{}"))
    touch_id: int | None = None
