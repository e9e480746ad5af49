"""Record domain events and read them back."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlmodel import Session, select

from domain.events.models import DomainEvent


def record_event(session: Session, *, kind: str, member_id: int | None, payload: dict[str, Any],
                 now: datetime) -> DomainEvent:
    """Record that something happened, in the caller's transaction."""
    event = DomainEvent(kind=kind, member_id=member_id, payload=payload, occurred_at=now)
    session.add(event)
    return event


def events_for_member(session: Session, *, member_id: int, kinds: Sequence[str] | None = None,
                      limit: int = 100) -> list[DomainEvent]:
    """A member's recent events, newest first."""
    query = select(DomainEvent).where(DomainEvent.member_id == member_id)
    if kinds:
        query = query.where(DomainEvent.kind.in_(list(kinds)))  # type: ignore[attr-defined]
    return list(session.exec(query.order_by(DomainEvent.id.desc()).limit(limit)))  # type: ignore[union-attr]
