"""How uvicorn is run: the connection-level half of the edge (the request-level half is ``api/edge.py``).

uvicorn bounds a header's size (h11: 16 KB; httptools: its parser's limit) and idle keep-alive connections,
but it has no deadline for a request's headers to arrive: a client that connects and sends one byte a
minute holds its connection for ever (slowloris). ``HeaderDeadlineProtocol`` adds that deadline; the body's
deadline is ``BoundedBody``'s in ``api/edge.py``. ``limit_concurrency`` caps open connections plus tasks per
worker; above it uvicorn answers 503 at once instead of queueing. The per-request access line is off unless
``LOYALTY_ACCESS_LOG`` (about 50 µs of CPU a line: docs/hot-paths.md).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from domain.settings import Settings, get_settings


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing a connection whose request headers are not complete within
    ``LOYALTY_HEADER_TIMEOUT_SECONDS`` of its opening, or of the first byte of a later request on it."""

    _header_deadline: asyncio.TimerHandle | None = None

    def _arm(self) -> None:
        if self._header_deadline is None:
            seconds = get_settings().header_timeout_seconds
            self._header_deadline = self.loop.call_later(seconds, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.run``/``uvicorn.Config`` that bound slow and idle connections."""
    return {"http": HeaderDeadlineProtocol, "timeout_keep_alive": settings.keep_alive_seconds,
            "limit_concurrency": settings.limit_concurrency or None, "access_log": settings.access_log,
            # Only named proxies may say who the client is (uvicorn's ProxyHeadersMiddleware; settings.trusted_proxies).
            "proxy_headers": bool(settings.trusted_proxies.strip()),
            "forwarded_allow_ips": settings.trusted_proxies.strip() or None}
