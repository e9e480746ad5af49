"""Protocols for the outside world. Implementations live at the edges (or are fakes in tests) and are
injected; the domain never imports a network client directly."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol


class DeliveryOutcome(StrEnum):
    SENT = "sent"
    """The provider accepted the message."""
    RETRY = "retry"
    """A transient failure (timeout, rate limit, 5xx): try again later."""
    FAILED = "failed"
    """A permanent failure (invalid address, unsubscribed): do not try again."""


@dataclass(frozen=True)
class OutboundMessage:
    """One touch ready to leave: everything an adapter needs, nothing it must look up."""

    touch_id: int
    member_id: int
    channel: str
    purpose: str
    template: str
    """Name of the message (``welcome``, ``points_expiring`` …)."""
    body: str
    variables: dict[str, Any] = field(default_factory=dict)
    address: dict[str, str] = field(default_factory=dict)
    """Where to send: ``phone``, ``email``, ``openid`` — only what the channel needs."""
    idempotency_key: str = ""


@dataclass(frozen=True)
class DeliveryResult:
    outcome: DeliveryOutcome
    provider_ref: str | None = None
    reason: str | None = None
    retry_after_seconds: int | None = None
    channel_unreachable: bool = False
    """The provider says this channel cannot reach the member any more (e.g. WeChat 43004: unfollowed)."""


class ChannelAdapter(Protocol):
    """Sends one message on one channel. Must not touch the database: it runs outside any transaction."""

    channel: str

    def send(self, message: OutboundMessage) -> DeliveryResult: ...
