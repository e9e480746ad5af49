"""Webhook rules: which events are public and under what name, how a delivery is signed, when it is retried."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

PUBLIC_EVENTS: dict[str, str] = {
    "tier.changed": "tier.changed",
    "treatment.changed": "treatment.changed",
    "points.earned": "points.earned",
    "complaint.opened": "complaint.recorded",
    "coupon.issued": "coupon.issued",
    "coupon.redeemed": "coupon.redeemed",
    "points.expiring_soon": "points.expiring_soon",
    "journey.converted": "journey.converted",
    "member.erased": "member.erased",
}
"""Public event name → the domain event kind behind it. Other systems subscribe to the public names, so a
domain event can be renamed without breaking them."""
PUBLIC_NAME = {kind: name for name, kind in PUBLIC_EVENTS.items()}

SIGNATURE_HEADER = "Loyalty-Signature"
EVENT_ID_HEADER = "Loyalty-Event-Id"


def unknown_events(names: Iterable[str]) -> list[str]:
    return sorted(set(names) - set(PUBLIC_EVENTS))


def event_body(*, event_id: int, kind: str, member_id: int | None, occurred_at: datetime,
               payload: dict[str, Any]) -> bytes:
    """What the receiver gets: the event id (its idempotency key), public type, member and data."""
    return json.dumps({"id": f"evt_{event_id}", "type": PUBLIC_NAME.get(kind, kind), "member_id": member_id,
                       "occurred_at": occurred_at.isoformat(), "data": payload},
                      separators=(",", ":"), sort_keys=True, default=str).encode()


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """HMAC-SHA256 over ``<timestamp>.<body>``: the timestamp is signed, so an old delivery cannot be replayed
    by a third party as new."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def signature_header(secrets: Sequence[str], body: bytes, timestamp: int) -> str:
    """``t=<unix time>,v1=<hex>[,v1=<hex>]``: one signature per live secret (two during a rotation)."""
    return ",".join([f"t={timestamp}", *(f"v1={sign(s, body, timestamp)}" for s in secrets)])


def verify_signature(header: str, body: bytes, secret: str, *, now: datetime, tolerance_seconds: int = 300) -> bool:
    """What a receiver does: some v1 signature matches under its secret and the timestamp is recent."""
    parts = [p.split("=", 1) for p in header.split(",") if "=" in p]
    stamps = [v for k, v in parts if k == "t"]
    if len(stamps) != 1 or not stamps[0].isdigit():
        return False
    timestamp = int(stamps[0])
    if abs(now.timestamp() - timestamp) > tolerance_seconds:
        return False
    expected = sign(secret, body, timestamp)
    return any(k == "v1" and hmac.compare_digest(v, expected) for k, v in parts)


def live_secrets(secret: str, previous: str | None, previous_until: datetime | None, now: datetime) -> list[str]:
    return [secret, previous] if previous and previous_until and now < previous_until else [secret]


def retry_delay(attempt: int, *, base_seconds: int, cap_seconds: int) -> timedelta:
    """Exponential backoff: base, 2×base, 4×base … capped."""
    return timedelta(seconds=min(cap_seconds, base_seconds * 2 ** max(0, attempt - 1)))
