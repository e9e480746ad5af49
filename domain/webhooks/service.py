"""Webhooks: subscriptions managed by admins, and the outbox of deliveries fed from domain events.

Events are written in the same transaction as the change they describe (``domain.events``); a job copies the
recent ones of each subscribed kind into ``webhook_deliveries`` (idempotent: one row per subscription and
event), and dispatchers deliver them outside any transaction. At-least-once: a dispatcher that dies between
sending and recording leaves its claim to expire and another sends the same event id again. Ordered per
member: only the oldest undelivered event of a member (per subscription) is ever claimable.
"""

from __future__ import annotations

import secrets as token_source
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from domain.errors import Conflict, InvalidInput, NotFound
from domain.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookSubscription
from domain.webhooks.rules import PUBLIC_EVENTS, live_secrets, retry_delay, unknown_events


def _new_secret() -> str:
    return "whsec_" + token_source.token_urlsafe(32)


def create_subscription(session: Session, *, name: str, url: str, events: list[str], actor: str, now: datetime
                        ) -> WebhookSubscription:
    """Subscribe a system's URL to public events; the secret is in the returned row (shown once)."""
    if unknown := unknown_events(events):
        raise InvalidInput(f"unknown events: {', '.join(unknown)}", code="unknown_event",
                           details={"unknown": unknown, "known": sorted(PUBLIC_EVENTS)})
    if not events:
        raise InvalidInput("subscribe to at least one event", code="no_events")
    if session.exec(select(WebhookSubscription).where(WebhookSubscription.name == name)).first() is not None:
        raise Conflict(f"a webhook subscription named {name!r} exists", code="subscription_exists",
                       details={"name": name})
    subscription = WebhookSubscription(name=name, url=url, kinds=sorted({PUBLIC_EVENTS[e] for e in events}),
                                       secret=_new_secret(), created_by=actor, created_at=now)
    session.add(subscription)
    session.flush()
    return subscription


def get_subscription(session: Session, *, subscription_id: int) -> WebhookSubscription:
    subscription = session.get(WebhookSubscription, subscription_id)
    if subscription is None:
        raise NotFound(f"webhook subscription {subscription_id} not found", code="subscription_not_found")
    return subscription


def list_subscriptions(session: Session) -> list[WebhookSubscription]:
    return list(session.exec(select(WebhookSubscription).order_by(col(WebhookSubscription.id))))


def rotate_secret(session: Session, *, subscription_id: int, overlap: timedelta, now: datetime
                  ) -> WebhookSubscription:
    """A new secret; the old one still signs deliveries (as a second signature) for ``overlap``, so the
    receiver can switch without losing an event."""
    subscription = get_subscription(session, subscription_id=subscription_id)
    subscription.previous_secret, subscription.previous_secret_until = subscription.secret, now + overlap
    subscription.secret = _new_secret()
    session.add(subscription)
    return subscription


def set_active(session: Session, *, subscription_id: int, active: bool) -> WebhookSubscription:
    """Pause or resume a subscription; a paused one gets no new deliveries (replay catches it up)."""
    subscription = get_subscription(session, subscription_id=subscription_id)
    subscription.active = active
    session.add(subscription)
    return subscription


ENQUEUE_SQL = """
INSERT INTO webhook_deliveries (subscription_id, event_id, member_id, status, attempts, next_attempt_at, created_at)
SELECT s.id, e.id, e.member_id, 'pending', 0, :now, :now
FROM webhook_subscriptions s
JOIN domain_events e ON e.kind = ANY(s.kinds) AND e.occurred_at >= :since AND e.occurred_at < :until
     AND e.occurred_at >= s.created_at - interval '5 minutes'
WHERE s.active AND (CAST(:subscription_id AS bigint) IS NULL OR s.id = :subscription_id)
ORDER BY e.id
ON CONFLICT (subscription_id, event_id) DO NOTHING
"""


def enqueue_deliveries(session: Session, *, since: datetime, now: datetime) -> int:
    """Copy recent events of subscribed kinds into the outbox (each once per subscription). Read by time window,
    not by a cursor: event ids are handed out before commit, so a cursor would skip a late committer."""
    result = session.execute(sa.text(ENQUEUE_SQL), {"since": since, "until": now + timedelta(days=1), "now": now,
                                                    "subscription_id": None})
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def replay(session: Session, *, subscription_id: int, start: datetime, end: datetime, now: datetime) -> int:
    """Deliver again every subscribed event that occurred in [start, end): delivered ones are sent once more
    (same event ids), missing ones are added. Returns how many deliveries are due."""
    if end <= start:
        raise InvalidInput("the range's end must be after its start", code="invalid_range")
    subscription = get_subscription(session, subscription_id=subscription_id)
    session.execute(sa.text(ENQUEUE_SQL.replace("AND e.occurred_at >= s.created_at - interval '5 minutes'", "")),
                    {"since": start, "until": end, "now": now, "subscription_id": subscription.id})
    result = session.execute(sa.text(
        "UPDATE webhook_deliveries d SET status = 'pending', attempts = 0, next_attempt_at = :now, "
        "claimed_until = NULL, last_error = NULL FROM domain_events e "
        "WHERE d.event_id = e.id AND d.subscription_id = :s AND e.occurred_at >= :start AND e.occurred_at < :end "
        "AND d.status <> 'sending'"), {"now": now, "s": subscription.id, "start": start, "end": end})
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Outgoing:
    delivery_id: int
    event_id: int
    url: str
    secrets: list[str]
    kind: str
    member_id: int | None
    occurred_at: datetime
    payload: dict[str, Any]


CLAIM_SQL = """
WITH due AS (
    SELECT d.id FROM webhook_deliveries d JOIN webhook_subscriptions s ON s.id = d.subscription_id AND s.active
    WHERE ((d.status = 'pending' AND d.next_attempt_at <= :now) OR (d.status = 'sending' AND d.claimed_until < :now))
      AND NOT EXISTS (  -- ordered per member: an earlier event of the member is still undelivered
          SELECT 1 FROM webhook_deliveries p
          WHERE p.subscription_id = d.subscription_id AND p.member_id = d.member_id AND p.event_id < d.event_id
            AND p.status IN ('pending', 'sending'))
    ORDER BY d.event_id
    LIMIT :limit
    FOR UPDATE OF d SKIP LOCKED
)
UPDATE webhook_deliveries d SET status = 'sending', claimed_until = :lease_end, attempts = d.attempts + 1
FROM due WHERE d.id = due.id
RETURNING d.id, d.event_id, d.subscription_id
"""


def claim_deliveries(session: Session, *, now: datetime, limit: int, lease: timedelta) -> list[Outgoing]:
    """Claim due deliveries (SKIP LOCKED: two dispatchers never claim the same one); the caller commits at
    once and sends outside the transaction."""
    claimed = session.execute(sa.text(CLAIM_SQL), {"now": now, "limit": limit, "lease_end": now + lease}).all()
    if not claimed:
        return []
    rows = session.execute(sa.text(
        "SELECT d.id, e.id, s.url, s.secret, s.previous_secret, s.previous_secret_until, e.kind, e.member_id, "
        "e.occurred_at, e.payload FROM webhook_deliveries d JOIN domain_events e ON e.id = d.event_id "
        "JOIN webhook_subscriptions s ON s.id = d.subscription_id WHERE d.id = ANY(:ids) ORDER BY e.id"),
        {"ids": [r[0] for r in claimed]}).all()
    return [Outgoing(delivery_id=r[0], event_id=r[1], url=r[2], secrets=live_secrets(r[3], r[4], r[5], now),
                     kind=r[6], member_id=r[7], occurred_at=r[8], payload=r[9]) for r in rows]


def record_attempt(session: Session, *, delivery_id: int, delivered: bool, error: str | None, now: datetime,
                   max_attempts: int, backoff_seconds: int, backoff_cap_seconds: int) -> WebhookDelivery:
    """Record what the receiver answered: delivered, or retried with backoff until the attempts are used up."""
    delivery = session.exec(select(WebhookDelivery).where(WebhookDelivery.id == delivery_id).with_for_update()).one()
    delivery.claimed_until = None
    if delivered:
        delivery.status, delivery.delivered_at, delivery.last_error = DeliveryStatus.DELIVERED, now, None
    else:
        delivery.last_error = (error or "")[:300]
        if delivery.attempts >= max_attempts:
            delivery.status = DeliveryStatus.FAILED
        else:
            delivery.status = DeliveryStatus.PENDING
            delivery.next_attempt_at = now + retry_delay(delivery.attempts, base_seconds=backoff_seconds,
                                                         cap_seconds=backoff_cap_seconds)
    session.add(delivery)
    return delivery


def deliveries_of(session: Session, *, subscription_id: int, limit: int = 100) -> list[WebhookDelivery]:
    """A subscription's latest deliveries, newest first."""
    return list(session.exec(select(WebhookDelivery).where(WebhookDelivery.subscription_id == subscription_id)
                             .order_by(col(WebhookDelivery.id).desc()).limit(limit)))
