"""Operations: the record of every job run, so an operator can see what ran, when and with what result."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from domain.db import utc_column


class JobRunStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    """Another process held the job's lock: this run did nothing."""
    ABANDONED = "abandoned"
    """Stopped before the end: its process was told to stop (SIGTERM) or died. Chunks it committed stay
    committed (every job is idempotent), the chunk in flight was rolled back; the next run picks up."""


class JobRun(SQLModel, table=True):
    __tablename__ = "job_runs"
    __table_args__ = (sa.Index("ix_job_runs_job_started_at", "job", "started_at"),)

    id: int | None = Field(default=None, primary_key=True)
    job: str = Field(max_length=64)
    as_of: datetime = utc_column()
    trigger: str = Field(max_length=16)
    """``schedule`` or ``manual``."""
    status: JobRunStatus = Field(sa_type=sa.String(10))  # type: ignore[call-overload]
    host: str = Field(max_length=128)
    pid: int
    started_at: datetime = utc_column()
    finished_at: datetime | None = utc_column(nullable=True)
    counts: dict[str, Any] = Field(default_factory=dict, sa_column=sa.Column(JSONB, nullable=False))
    error: str | None = Field(default=None, sa_type=sa.Text)  # type: ignore[call-overload]
