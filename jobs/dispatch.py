"""The outbox dispatcher: claim due touches, send them outside any transaction, record the result.

Delivery is at-least-once: a touch is claimed (status ``sending`` with a lease) and committed before it is
sent; if the process dies after sending and before recording, the lease runs out and another dispatcher
sends it again with the same idempotency key, which providers use to drop the duplicate.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from domain import telemetry
from domain.contact_policy.service import address_of, recheck_before_send
from domain.db import unit_of_work
from domain.journeys.rules import render_template
from domain.ports import ChannelAdapter, DeliveryOutcome, DeliveryResult, OutboundMessage
from domain.settings import get_settings
from domain.touchpoints import service as touchpoints
from domain.touchpoints.models import Touch
from domain.wechat.service import reserve_subscription_grant
from integrations.channels import message_adapter
from integrations.wechat.adapter import WeChatAdapter
from jobs.context import JobContext
from jobs.registry import JobSpec, register

MESSAGE_CHANNELS = ("sms", "wechat", "email", "app")


def build_adapters(engine: Engine) -> dict[str, ChannelAdapter]:
    """One adapter per message channel from configuration: WeChat's (local mode without credentials), a
    webhook where a URL is set, else the recorder."""
    settings = get_settings()
    adapters: dict[str, ChannelAdapter] = {"wechat": WeChatAdapter(settings, engine)}
    for channel in MESSAGE_CHANNELS:
        if channel == "wechat":
            continue
        adapters[channel] = message_adapter(channel, settings)
    return adapters


def _address(session: Session, touch: Touch, now: datetime) -> dict[str, str]:
    """Where the touch goes; for a WeChat service notice, also the subscription template whose grant it
    spends (reserved in the claim's transaction, so a retry of the touch reuses the same grant)."""
    address = address_of(session, member_id=touch.member_id, channel=touch.channel)
    template_id = get_settings().wechat_subscription_templates.get(touch.template)
    if touch.channel == "wechat" and touch.purpose == "service" and template_id and address.get("openid") \
            and reserve_subscription_grant(session, openid=address["openid"], template_id=template_id,
                                           key=f"touch-{touch.id}", now=now):
        return {**address, "subscription_template_id": template_id}
    return address


def dispatch_due(engine: Engine, *, adapters: Mapping[str, ChannelAdapter], now: datetime, batch: int = 100,
                 max_batches: int = 100) -> dict[str, int]:
    """Send every due touch (in batches); returns counts by outcome."""
    settings = get_settings()
    lease = timedelta(seconds=settings.delivery_lease_seconds)
    backoff = timedelta(seconds=settings.delivery_backoff_seconds)
    counts = {"sent": 0, "retry": 0, "failed": 0, "suppressed": 0, "call_tasks": 0}
    for _ in range(max_batches):
        outgoing: list[OutboundMessage] = []
        with unit_of_work(engine) as session:
            claimed = touchpoints.claim_due(session, now=now, limit=batch, lease=lease)
            for touch in claimed:
                assert touch.id is not None
                stop = recheck_before_send(session, touch=touch, now=now)
                if stop:
                    touchpoints.suppress(session, touch_id=touch.id, reasons=stop, now=now)
                    counts["suppressed"] += 1
                elif touch.channel == "phone":
                    touchpoints.create_call_task(session, touch=touch, now=now)
                    touchpoints.record_delivery(session, touch_id=touch.id, now=now,
                                                result=DeliveryResult(DeliveryOutcome.SENT, f"call-task:{touch.id}"),
                                                max_attempts=settings.delivery_max_attempts, backoff=backoff)
                    counts["call_tasks"] += 1
                else:
                    outgoing.append(OutboundMessage(
                        touch_id=touch.id, member_id=touch.member_id, channel=touch.channel, purpose=touch.purpose,
                        template=touch.template, body=render_template(str(touch.variables.get("body", touch.template)),
                                                                      touch.variables),
                        variables=touch.variables,
                        address=_address(session, touch, now),
                        idempotency_key=f"touch-{touch.id}"))
            session.commit()
        if not claimed:
            break
        for message in outgoing:  # outside any transaction: a slow provider holds no lock
            adapter = adapters.get(message.channel)
            result = adapter.send(message) if adapter else DeliveryResult(
                DeliveryOutcome.FAILED, reason=f"no adapter for channel {message.channel}")
            with unit_of_work(engine) as session:
                touchpoints.record_delivery(session, touch_id=message.touch_id, result=result, now=now,
                                            max_attempts=settings.delivery_max_attempts, backoff=backoff)
                session.commit()
            key = {DeliveryOutcome.SENT: "sent", DeliveryOutcome.RETRY: "retry"}.get(result.outcome, "failed")
            telemetry.CHANNEL_DELIVERIES.labels(message.channel, key).inc()
            counts[key] += 1
    return counts


_adapters: dict[str, ChannelAdapter] | None = None


def dispatch_outbox(ctx: JobContext) -> dict[str, Any]:
    """Send due touches from the outbox through their channel adapters (phone: create call tasks)."""
    global _adapters
    if _adapters is None:
        _adapters = build_adapters(ctx.engine)
    adapters = ctx.options.get("adapters") or _adapters
    counts = dispatch_due(ctx.engine, adapters=adapters, now=ctx.as_of)
    if any(counts.values()):
        ctx.log.info("dispatched: %s", counts)
    return counts


# Not exclusive: several dispatchers may run at once (SKIP LOCKED shares the work).
register(JobSpec(name="dispatch-outbox", func=dispatch_outbox, description=dispatch_outbox.__doc__ or "",
                 schedule={"interval_seconds": 30}, exclusive=False))
