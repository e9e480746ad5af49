"""Time helpers. Only the edges read the clock (``utcnow``); rules and services take ``now``."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from domain.errors import InvalidInput


def utcnow() -> datetime:
    return datetime.now(UTC)


def ensure_aware(value: datetime) -> datetime:
    """Treat a naive datetime as UTC: the API documents instants as UTC unless they carry an offset."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def zone(name: str) -> ZoneInfo:
    """An IANA timezone by name, or a clear error."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInput(f"unknown timezone {name!r}", code="invalid_timezone", details={"timezone": name}) from exc
