"""What agents learn and record: notes, and members' interest in products (warm-lead clues)."""

from __future__ import annotations

from datetime import datetime
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
