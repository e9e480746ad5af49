"""Deliver domain events to webhook subscribers: fill the outbox from recent events, then send what is due."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from domain import telemetry
from domain.clock import utcnow
from domain.settings import get_settings
from domain.webhooks import service as webhooks
from domain.webhooks.rules import event_body
from integrations.event_webhooks import EventWebhookSender
from jobs.context import JobContext
from jobs.registry import JobSpec, register


def deliver_webhooks(ctx: JobContext) -> dict[str, Any]:
    """Queue recent events for each subscription, then deliver due ones, signed, oldest first per member."""
    settings = get_settings()
    sender: EventWebhookSender = ctx.options.get("sender") or EventWebhookSender(
        timeout=settings.webhook_event_timeout_seconds)
    counts = {"queued": 0, "delivered": 0, "retry": 0, "failed": 0}
    with ctx.unit_of_work() as session:
        counts["queued"] = webhooks.enqueue_deliveries(
            session, since=ctx.as_of - timedelta(hours=settings.webhook_event_window_hours), now=ctx.as_of)
        session.commit()
    lease = timedelta(seconds=settings.webhook_event_lease_seconds)
    for _ in range(settings.webhook_event_max_batches):
        with ctx.unit_of_work() as session:
            outgoing = webhooks.claim_deliveries(session, now=ctx.as_of, limit=100, lease=lease)
            session.commit()
        if not outgoing:
            break
        for item in outgoing:  # outside any transaction: a slow receiver holds no lock
            body = event_body(event_id=item.event_id, kind=item.kind, member_id=item.member_id,
                              occurred_at=item.occurred_at, payload=item.payload)
            error = sender.post(url=item.url, event_id=item.event_id, body=body, secrets=item.secrets,
                                timestamp=int(utcnow().timestamp()))
            with ctx.unit_of_work() as session:
                delivery = webhooks.record_attempt(
                    session, delivery_id=item.delivery_id, delivered=error is None, error=error, now=ctx.as_of,
                    max_attempts=settings.webhook_event_max_attempts,
                    backoff_seconds=settings.webhook_event_backoff_seconds,
                    backoff_cap_seconds=settings.webhook_event_backoff_cap_seconds)
                session.commit()
            outcome = "delivered" if error is None else str(delivery.status).replace("pending", "retry")
            counts[outcome] += 1
            telemetry.CHANNEL_DELIVERIES.labels("webhook", outcome).inc()
        ctx.progress.advance(len(outgoing))
    return counts


# Not exclusive: several dispatchers share the outbox (SKIP LOCKED), like dispatch-outbox.
register(JobSpec(name="deliver-webhooks", func=deliver_webhooks, description=deliver_webhooks.__doc__ or "",
                 schedule={"interval_seconds": 30}, exclusive=False))
