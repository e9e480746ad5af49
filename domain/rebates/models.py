"""Rebate programs, their per-period settlements, and the coupons they issue."""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from domain.db import utc_column


class RebateProgram(SQLModel, table=True):
    __tablename__ = "rebate_programs"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=32, unique=True)
    name: str = Field(max_length=100)
    period: str = Field(default="quarter", max_length=10)
    brackets: list[list[int]] = Field(sa_column=sa.Column(JSONB, nullable=False))
    """``[[min_spend_fen, rate_basis_points], …]``: the highest bracket reached applies."""
    coupon_valid_days: int = 90
    active: bool = True


class RebateSettlement(SQLModel, table=True):
    """One member's rebate for one period of one program: settled once, whoever runs the job how often."""

    __tablename__ = "rebate_settlements"
    __table_args__ = (sa.UniqueConstraint("program_id", "member_id", "period_start"),)

    id: int | None = Field(default=None, primary_key=True)
    program_id: int = Field(foreign_key="rebate_programs.id")
    member_id: int = Field(foreign_key="members.id", index=True)
    period_start: date
    period_end: date
    spend_fen: int = Field(sa_type=sa.BigInteger)  # type: ignore[call-overload]
    rate_bp: int
    rebate_fen: int = Field(sa_type=sa.BigInteger)  # type: ignore[call-overload]
    settled_at: datetime = utc_column()


class Coupon(SQLModel, table=True):
    __tablename__ = "coupons"
    __table_args__ = (sa.UniqueConstraint("source", "source_ref"),)

    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(max_length=32, unique=True)
    member_id: int = Field(foreign_key="members.id", index=True)
    value_fen: int = Field(sa_type=sa.BigInteger)  # type: ignore[call-overload]
    source: str = Field(max_length=16)
    source_ref: str = Field(max_length=64)
    issued_at: datetime = utc_column()
    expires_at: datetime = utc_column()
    redeemed_at: datetime | None = utc_column(nullable=True)
    redemption_ref: str | None = Field(default=None, max_length=64)
    """The redeeming system's key (its till transaction): the same key again is a replay, another one a 409."""
    voided_at: datetime | None = utc_column(nullable=True)
    void_ref: str | None = Field(default=None, max_length=64)
    void_reason: str | None = Field(default=None, max_length=200)
    voided_by: str | None = Field(default=None, max_length=130)
