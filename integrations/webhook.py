"""The generic HTTP webhook adapter: the integration point for an SMS, email or push gateway.

It POSTs the message as JSON with an ``Idempotency-Key`` header (the same on every retry of one touch, so
a gateway can drop a duplicate after a dispatcher crash) and maps the answer: 2xx sent; 408, 429, 5xx,
timeouts and connection errors are transient; any other 4xx is permanent.
"""

from __future__ import annotations

from dataclasses import asdict

import httpx

from domain.ports import DeliveryOutcome, DeliveryResult, OutboundMessage

TRANSIENT = {408, 425, 429}


class WebhookAdapter:
    def __init__(self, channel: str, url: str, *, timeout: float = 5.0, client: httpx.Client | None = None):
        self.channel = channel
        self.url = url
        self._client = client or httpx.Client(timeout=timeout)

    def send(self, message: OutboundMessage) -> DeliveryResult:
        try:
            response = self._client.post(self.url, json=asdict(message),
                                         headers={"Idempotency-Key": message.idempotency_key})
        except httpx.HTTPError as exc:
            return DeliveryResult(DeliveryOutcome.RETRY, reason=f"{type(exc).__name__}: {exc}"[:300])
        if 200 <= response.status_code < 300:
            ref = None
            try:
                ref = str(response.json().get("id")) if response.content else None
            except (ValueError, AttributeError):
                ref = None
            return DeliveryResult(DeliveryOutcome.SENT, provider_ref=ref or f"http:{message.touch_id}")
        reason = f"HTTP {response.status_code}: {response.text[:200]}"
        if response.status_code >= 500 or response.status_code in TRANSIENT:
            retry_after = response.headers.get("Retry-After")
            wait = int(retry_after) if retry_after and retry_after.isdigit() else None
            return DeliveryResult(DeliveryOutcome.RETRY, reason=reason, retry_after_seconds=wait)
        return DeliveryResult(DeliveryOutcome.FAILED, reason=reason)

    def close(self) -> None:
        self._client.close()
