"""Privacy: the tombstone an erasure leaves."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from domain.db import utc_column


class Erasure(SQLModel, table=True):
    """A member whose personal data was erased: the tombstone the ledger's rows still point to.

    One row per member (its key is the member): erasing again finds it and changes nothing."""

    __tablename__ = "privacy_erasures"

    member_id: int = Field(foreign_key="members.id", primary_key=True)
    erased_at: datetime = utc_column()
    actor: str = Field(max_length=100)
    """Who asked: an API key's name, ``staff:<username>``, ``cli`` or ``retention``."""
    reason: str = Field(max_length=200)
