"""Domain events: facts other concepts react to (a member joined, a tier changed).

Written in the same transaction as the change they describe, so a reader never sees one without the
other. Consumers are idempotent by their own unique keys (an enrollment per trigger occurrence, a notice
per event id) and read a recent window set-based; they keep no cursor, because ids are handed out
before commit and a cursor would skip an event whose transaction committed late.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from domain.db import utc_column


class DomainEvent(SQLModel, table=True):
    __tablename__ = "domain_events"
    __table_args__ = (
        sa.Index("ix_domain_events_kind_occurred_at", "kind", "occurred_at"),
        # Partial (migration 1707): most events have no key, and a full unique index took an entry for each.
        sa.Index("ix_domain_events_dedupe_key", "dedupe_key", unique=True,
                 postgresql_where=sa.text("dedupe_key IS NOT NULL")),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=64)
    """Dotted name, e.g. ``member.joined``, ``tier.changed``."""
    member_id: int | None = Field(default=None, index=True)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=sa.Column(JSONB, nullable=False))
    occurred_at: datetime = utc_column()
    dedupe_key: str | None = Field(default=None, max_length=120)
    """For events a job derives from state (points expiring soon, a journey converted): the key that makes a
    re-run record nothing new (``INSERT … ON CONFLICT (dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING``:
    the unique index is partial, so the conflict target names its predicate). None for the others."""
