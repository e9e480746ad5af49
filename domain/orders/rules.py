"""Time at the edges: when an event (an order, a refund, a usage fact) may say it happened.

One rule for every path that records something that happened outside: a time must carry its offset
(``InvalidInput`` otherwise — the API refuses it before it gets here), may be at most a few minutes ahead
of the server (clocks drift; an order "40 minutes from now" would be counted before it exists), and may be
at most the back-dating window old unless it comes through an operator's import, where an old order earns
and expires by its own date like any other. Pure: the caller passes ``now`` and the limits."""

from __future__ import annotations

from datetime import datetime, timedelta

from domain.errors import InvalidInput


def check_event_time(at: datetime, *, now: datetime, what: str, future_minutes: int, backdating_days: int | None,
                     field: str = "occurred_at") -> datetime:
    """``at`` if it may be recorded at ``now``; else ``InvalidInput`` naming the limit.
    ``backdating_days=None`` is the import path: any past time is accepted."""
    if at.tzinfo is None:
        raise InvalidInput(f"{field} has no offset: send an instant with its offset (Z or +08:00)",
                           code="timestamp_without_offset", details={"field": field})
    latest = now + timedelta(minutes=future_minutes)
    if at > latest:
        raise InvalidInput(f"{what} {field} {at.isoformat()} is in the future (more than {future_minutes} "
                           f"minutes after the server's time)", code="timestamp_in_future",
                           details={"field": field, "value": at.isoformat(), "latest": latest.isoformat(),
                                    "future_minutes": future_minutes})
    if backdating_days is not None:
        earliest = now - timedelta(days=backdating_days)
        if at < earliest:
            raise InvalidInput(f"{what} {field} {at.isoformat()} is older than the {backdating_days}-day back-dating "
                               f"window; older {what}s go through the operators' import", code="timestamp_too_old",
                               details={"field": field, "value": at.isoformat(), "earliest": earliest.isoformat(),
                                        "backdating_days": backdating_days})
    return at
