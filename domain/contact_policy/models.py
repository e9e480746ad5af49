"""Complaints: the strongest brake on marketing."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from domain.db import utc_column


class Complaint(SQLModel, table=True):
    __tablename__ = "complaints"
    __table_args__ = (sa.Index("ix_complaints_member_id_opened_at", "member_id", "opened_at"),)

    id: int | None = Field(default=None, primary_key=True)
    member_id: int = Field(foreign_key="members.id")
    category: str = Field(max_length=40)
    note: str = Field(default="", max_length=2000)
    actor: str = Field(max_length=130)
    opened_at: datetime = utc_column()
    resolved_at: datetime | None = utc_column(nullable=True)
    resolution: str | None = Field(default=None, max_length=2000)
