"""POSTs a signed domain event to a subscriber's URL (``domain/webhooks``): 2xx is delivered, anything else
(another status, a timeout, a refused connection) is retried later with backoff."""

from __future__ import annotations

import httpx

from domain.webhooks.rules import EVENT_ID_HEADER, SIGNATURE_HEADER, signature_header


class EventWebhookSender:
    def __init__(self, *, timeout: float = 5.0, client: httpx.Client | None = None):
        self._client = client or httpx.Client(timeout=timeout, follow_redirects=False)

    def post(self, *, url: str, event_id: int, body: bytes, secrets: list[str], timestamp: int) -> str | None:
        """Send; None when the receiver took it, else why not."""
        headers = {"Content-Type": "application/json", EVENT_ID_HEADER: f"evt_{event_id}",
                   SIGNATURE_HEADER: signature_header(secrets, body, timestamp)}
        try:
            response = self._client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"[:300]
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}: {response.text[:200]}"

    def close(self) -> None:
        self._client.close()
