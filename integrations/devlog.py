"""The development adapter: records what would be sent instead of sending it."""

from __future__ import annotations

import logging
import threading

from domain.ports import DeliveryOutcome, DeliveryResult, OutboundMessage

log = logging.getLogger("delivery.dev")


class DevLogAdapter:
    """Logs each message and keeps it in memory (``sent``), so a developer sees what would go out."""

    def __init__(self, channel: str):
        self.channel = channel
        self.sent: list[OutboundMessage] = []
        self._lock = threading.Lock()

    def send(self, message: OutboundMessage) -> DeliveryResult:
        with self._lock:
            self.sent.append(message)
        log.info("would send %s/%s to member %s (%s): %s", message.channel, message.template, message.member_id,
                 message.address, message.body)
        return DeliveryResult(DeliveryOutcome.SENT, provider_ref=f"dev:{message.touch_id}")
