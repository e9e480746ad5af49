"""The message template catalogue: what a touch may say, on which channel, for which purpose."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Field, SQLModel

from domain.db import utc_column


class MessageTemplate(SQLModel, table=True):
    """One version of a template. Publishing again adds a version; the highest is current. A touch names the
    template by key; its purpose is the template's, so a caller cannot send marketing labelled as service."""

    __tablename__ = "message_templates"
    __table_args__ = (sa.UniqueConstraint("key", "channel", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=64, index=True)
    channel: str = Field(max_length=10)
    """A contact channel, or ``any`` for a text every channel may carry (a channel's own version wins)."""
    version: int
    purpose: str = Field(max_length=10)
    body: str = Field(max_length=1000)
    variables: list[str] = Field(default_factory=list, sa_column=sa.Column(ARRAY(sa.String(40)), nullable=False))
    """The variables the body may use; a request must give exactly these."""
    created_by: str = Field(max_length=130)
    created_at: datetime = utc_column()
