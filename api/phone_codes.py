"""Sending a verification code by SMS: one helper for every flow that proves a phone (WeChat phone binding,
member sign-in), through the project's one SMS adapter (``integrations.channels.message_adapter("sms")``)."""

from __future__ import annotations

from domain.ports import DeliveryOutcome, OutboundMessage
from domain.settings import get_settings
from integrations.channels import message_adapter


def send_phone_code(*, phone: str, code: str, minutes: int, idempotency_key: str) -> str | None:
    """Send ``code`` to ``phone``; None when the gateway took it, else the gateway's reason. The person asked for
    the code themselves, so the contact gate (consents, caps, quiet hours) does not apply."""
    sms = message_adapter("sms", get_settings())
    try:
        result = sms.send(OutboundMessage(
            touch_id=0, member_id=0, channel="sms", purpose="verification", template="phone_code",
            body=f"Your verification code is {code}. It is valid for {minutes} minutes.",
            variables={"code": code}, address={"phone": phone}, idempotency_key=idempotency_key))
    finally:
        getattr(sms, "close", lambda: None)()
    return None if result.outcome == DeliveryOutcome.SENT else (result.reason or "not sent")
