"""What agents learn and record: notes, and members' interest in products (warm-lead clues)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from domain.db import utc_column


class AgentNote(SQLModel, table=True):
    """Structured fields plus free text, so the company, not the agent's memory, owns the knowledge."""

    __tablename__ = "agent_notes"
    __table_args__ = (sa.Index("ix_agent_notes_member_id_id", "member_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    member_id: int = Field(foreign_key="members.id")
    agent_id: str = Field(max_length=64)
    fields: dict[str, Any] = Field(default_factory=dict, sa_column=sa.Column(JSONB, nullable=False))
    text: str = Field(default="", max_length=4000)
    created_at: datetime = utc_column()


class InterestEvent(SQLModel, table=True):
    """A member asked about a product (IVR node, web click, call-center enquiry): dialled first."""

    __tablename__ = "interest_events"
    __table_args__ = (sa.Index("ix_interest_events_product_at", "product", "at"),
                      sa.Index("ix_interest_events_member_id_at", "member_id", "at"))

    id: int | None = Field(default=None, primary_key=True)
    member_id: int = Field(foreign_key="members.id")
    product: str = Field(max_length=64)
    source: str = Field(max_length=20)
    at: datetime = utc_column()


class CallListStrategy(StrEnum):
    """How a call list ranks its leads (members who asked about the product always come first)."""

    WEIGHTED = "weighted"
    """A weighted sum of percent ranks: value, churn risk, loyalty (tenure), lookalike."""
    CHURN = "churn"
    """Rescue the at-risk: only members on the churn warning's at-risk list, highest risk first."""


class CallList(SQLModel, table=True):
    """An outbound call campaign: a product, an audience and how leads are prioritised and recalled."""

    __tablename__ = "call_lists"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100)
    product: str = Field(max_length=64)
    purpose: str = Field(default="marketing", max_length=10)
    audience: dict[str, Any] = Field(default_factory=dict, sa_column=sa.Column(JSONB, nullable=False))
    """Filters (``domain.crm.rules.CallListAudience``)."""
    strategy: str = Field(default="weighted", max_length=10,
                          sa_column_kwargs={"server_default": "weighted"})
    """``CallListStrategy``: how leads are ranked after those who asked about the product."""
    weights: dict[str, float] = Field(default_factory=dict, sa_column=sa.Column(JSONB, nullable=False))
    """Weights of the weighted strategy: ``value``, ``churn`` (the churn warning's risk), ``loyalty``,
    ``lookalike`` (interest always ranks first)."""
    interest_days: int = 30
    recall_hours: int = 48
    agent_capacity: int = 20
    exclusions: dict[str, int] = Field(default_factory=dict, sa_column=sa.Column(JSONB, nullable=False))
    extracted_at: datetime | None = utc_column(nullable=True)
    created_at: datetime = utc_column()


class Lead(SQLModel, table=True):
    __tablename__ = "leads"
    __table_args__ = (sa.UniqueConstraint("call_list_id", "member_id"),
                      sa.Index("ix_leads_pool", "call_list_id", "state", "priority"))

    id: int | None = Field(default=None, primary_key=True)
    call_list_id: int = Field(foreign_key="call_lists.id")
    member_id: int = Field(foreign_key="members.id")
    priority: float
    band: int
    """1 = service-demand clue (asked about the product), 2 = high score, 3 = the rest."""
    reason: str = Field(max_length=200)
    state: str = Field(default="pooled", max_length=10)
    """pooled → assigned → worked; an assigned lead not worked in time returns to pooled (recalled)."""
    agent_id: str | None = Field(default=None, max_length=64)
    assigned_at: datetime | None = utc_column(nullable=True)
    recalls: int = 0
    outcome: str | None = Field(default=None, max_length=20)
    worked_at: datetime | None = utc_column(nullable=True)


class CallOutcome(SQLModel, table=True):
    """What happened on a call, recorded by the agent who made it."""

    __tablename__ = "call_outcomes"

    id: int | None = Field(default=None, primary_key=True)
    member_id: int = Field(foreign_key="members.id", index=True)
    lead_id: int | None = Field(default=None, foreign_key="leads.id")
    agent_id: str = Field(max_length=64)
    outcome: str = Field(max_length=20)
    callback_at: datetime | None = utc_column(nullable=True)
    note: str = Field(default="", max_length=2000)
    at: datetime = utc_column()
