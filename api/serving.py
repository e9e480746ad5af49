"""How uvicorn is run: the connection-level half of the edge (the request-level half is ``api/edge.py``).

uvicorn bounds a header's size (h11: 16 KB; httptools: its parser's limit) and idle keep-alive connections,
but it has no deadline for a request's headers to arrive: a client that connects and sends one byte a
minute holds its connection for ever (slowloris). ``HeaderDeadlineProtocol`` adds that deadline; the body's
deadline is ``BoundedBody``'s in ``api/edge.py``. ``limit_concurrency`` caps open connections plus tasks per
worker; above it uvicorn answers 503 at once instead of queueing. The per-request access line is off unless
``LOYALTY_ACCESS_LOG`` (about 50 µs of CPU a line: docs/hot-paths.md).

Several workers each listen on their own ``SO_REUSEPORT`` socket (``serve_workers``) instead of sharing the
one uvicorn binds: on a shared socket the first worker to wake drains the whole accept queue, so a burst of
new keep-alive connections (a till's pool, the benchmark's 16 clients) often landed on one worker, whose
single event loop and pool then served all of them while the other idled (docs/hot-paths.md).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.supervisors import multiprocess

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


def reuse_port_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` with ``SO_REUSEPORT``: each worker's own, so the kernel spreads new
    connections over the workers' sockets (by a hash of the connection's addresses) instead of handing a burst
    to whichever worker wakes first."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


class OwnSocketProcess(multiprocess.Process):
    """A uvicorn worker that listens on its own ``reuse_port_socket`` rather than the parent's shared one."""

    def target(self, sockets: list[socket.socket] | None = None) -> None:  # pragma: no cover (in the child)
        super().target([reuse_port_socket(self.config.host, self.config.port)])


def serve_workers(app: str, *, host: str, port: int, workers: int, **options: Any) -> None:
    """``uvicorn.run(app, workers=workers, …)`` with each worker on its own ``SO_REUSEPORT`` socket; uvicorn's
    own supervisor (health checks, restarts, signals) is kept. Where the platform has no ``SO_REUSEPORT``, or
    the port is chosen by the system (0), the workers share uvicorn's socket as before."""
    if workers < 2 or port == 0 or not hasattr(socket, "SO_REUSEPORT"):
        uvicorn.run(app, host=host, port=port, workers=workers, **options)
        return
    config = uvicorn.Config(app, host=host, port=port, workers=workers, **options)
    # The parent holds no listening socket (one it held would receive connections nobody accepts); binding one
    # here and closing it fails at once, as uvicorn does, when another program has the port.
    reuse_port_socket(host, port).close()
    logging.getLogger("uvicorn.error").info("Uvicorn running on http://%s:%d with %d workers, one socket each",
                                            host, port, workers)
    # uvicorn's supervisor makes its workers (at start, on restart, on reload) from this module-level name.
    multiprocess.Process = OwnSocketProcess  # type: ignore[misc]
    multiprocess.Multiprocess(config, sockets=[]).run()
