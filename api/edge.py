"""The request edge: what every request meets before routing, authentication or the database.

Pure ASGI middlewares (no ``BaseHTTPMiddleware``: it would buffer and add a task per request):

- ``RateLimit``: per-client-address and per-credential token buckets; a refusal is 429 with ``Retry-After``.
- ``BoundedBody``: a body over ``max_body_bytes`` is 413 before anything parses it — at once when
  ``Content-Length`` says so, else as soon as the streamed (chunked) bytes pass the limit — and a body that
  does not finish arriving within ``body_timeout_seconds`` is 408.
- CORS (Starlette's) only for the configured origins; none by default, so browsers on other sites get no
  ``Access-Control-Allow-Origin`` at all.

Every refusal here uses the API's one error shape. Why the buckets live in each process rather than in
PostgreSQL is written in ``docs/edge.md``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import time
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from domain.db import POOL_TIMEOUT_SECONDS
from domain.settings import Settings, get_settings

EXEMPT_PATHS = ("/healthz", "/readyz", "/metrics")
"""Probes from a load balancer or scraper come from one address many times a second; they are cheap and
touch no member data, so they are never rate limited."""


def _error_bytes(code: str, message: str, details: dict[str, Any] | None = None) -> bytes:
    # The same shape as api/errors.error_body, built without FastAPI's encoder: these answers are sent
    # from outside the application, before any route or handler exists for the request.
    return json.dumps({"error": {"code": code, "message": message, "details": details or {}}}).encode()


async def send_error(send: Send, status: int, code: str, message: str, details: dict[str, Any] | None = None,
                     headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = _error_bytes(code, message, details)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


# --- body size and body time ---------------------------------------------------------------------------

class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when the streamed body passes the limit. An ``HTTPException`` so that FastAPI's
    body reader lets it through (it turns other errors into 400) and the error handler answers 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes", headers={"Connection": "close"})


class BodyTimeout(HTTPException):
    def __init__(self, seconds: float) -> None:
        super().__init__(408, f"the request body did not arrive within {seconds:g} seconds",
                         headers={"Connection": "close"})


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class BoundedBody:
    """Refuse bodies over ``limit`` bytes (413) and bodies slower than ``timeout`` seconds in total (408)."""

    def __init__(self, app: ASGIApp, *, limit: int, timeout: float) -> None:
        self.app, self.limit, self.timeout = app, limit, timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _declared_length(scope)
        if declared is not None and declared > self.limit:
            # Refused before the application runs: nothing is read, parsed, authenticated or queried. The
            # connection is closed so the client stops sending the rest.
            await send_error(send, 413, "payload_too_large", f"the request body is larger than {self.limit} bytes",
                             {"max_body_bytes": self.limit}, headers=[(b"connection", b"close")])
            return
        received = 0
        # Without Content-Length or Transfer-Encoding an HTTP/1.1 request has no body at all.
        finished = declared == 0 or (declared is None
                                     and not any(name == b"transfer-encoding" for name, _ in scope["headers"]))
        deadline = time.monotonic() + self.timeout
        started = False

        async def bounded_receive() -> Message:
            nonlocal received, finished
            if finished:  # after the body, receive() only waits for a disconnect: no deadline applies
                return await receive()
            remaining = deadline - time.monotonic()
            try:
                message = await asyncio.wait_for(receive(), timeout=max(remaining, 0.001))
            except TimeoutError:
                raise BodyTimeout(self.timeout) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(self.limit)
                finished = not message.get("more_body", False)
            return message

        async def send_closing_if_unread(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = message.get("headers", [])
                if not finished and not any(name.lower() == b"connection" for name, _ in headers):
                    # Answered without reading the body (a 401, a 404): close the connection rather than keep
                    # reading, or waiting for, a body nobody wants.
                    message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        try:
            await self.app(scope, bounded_receive, send_closing_if_unread)
        except (BodyTooLarge, BodyTimeout) as exc:
            # Raised outside the application's own error handling (e.g. by a middleware reading the body).
            if started:
                raise
            code = "payload_too_large" if isinstance(exc, BodyTooLarge) else "request_timeout"
            await send_error(send, exc.status_code, code, str(exc.detail), headers=[(b"connection", b"close")])


# --- rate limits --------------------------------------------------------------------------------------

@dataclass
class Bucket:
    tokens: float
    at: float


def take_token(bucket: Bucket, *, now: float, rate: float, burst: float) -> float:
    """Take one token from ``bucket`` (refilled at ``rate`` per second up to ``burst``). Returns 0 when the
    request may pass, else the seconds until a token will be there (the bucket is left unchanged)."""
    tokens = min(burst, bucket.tokens + (now - bucket.at) * rate)
    bucket.at = now
    if tokens >= 1:
        bucket.tokens = tokens - 1
        return 0.0
    bucket.tokens = tokens
    return (1 - tokens) / rate


class Buckets:
    """Token buckets by key, at most ``capacity`` of them: the least recently used is forgotten first (a
    forgotten bucket is a full one, which is what an idle client would have anyway)."""

    def __init__(self, *, rate: float, burst: float, capacity: int = 10_000) -> None:
        self.rate, self.burst, self.capacity = rate, burst, capacity
        self._buckets: OrderedDict[str, Bucket] = OrderedDict()

    def take(self, key: str, now: float) -> float:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = Bucket(tokens=self.burst, at=now)
            if len(self._buckets) > self.capacity:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return take_token(bucket, now=now, rate=self.rate, burst=self.burst)


def _bearer(scope: Scope) -> bytes | None:
    for name, value in scope["headers"]:
        if name == b"authorization" and value[:7].lower() == b"bearer ":
            return value[7:].strip()
    return None


class RateLimit:
    """Per-address and per-credential token buckets, in this process (see docs/edge.md).

    The credential's bucket is keyed by a hash of the presented bearer token, so it applies before the
    database has looked the key up — a flood of requests with one stolen or made-up key costs no query."""

    def __init__(self, app: ASGIApp, *, per_ip: Buckets | None, per_key: Buckets | None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.app, self.per_ip, self.per_key, self.clock = app, per_ip, per_key, clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(EXEMPT_PATHS):
            await self.app(scope, receive, send)
            return
        now = self.clock()
        wait, limit = 0.0, ""
        if self.per_ip is not None:
            client = scope.get("client")
            wait, limit = self.per_ip.take(client[0] if client else "-", now), "address"
        if not wait and self.per_key is not None and (token := _bearer(scope)):
            wait, limit = self.per_key.take(hashlib.sha256(token).hexdigest(), now), "credential"
        if wait:
            retry_after = max(1, math.ceil(wait))
            await send_error(send, 429, "rate_limited", f"too many requests from this {limit}; retry later",
                             {"limit": limit, "retry_after_seconds": retry_after},
                             headers=[(b"retry-after", str(retry_after).encode())])
            return
        await self.app(scope, receive, send)


# --- database permits ---------------------------------------------------------------------------------

_permits: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()


async def database_permit() -> AsyncIterator[None]:
    """Wait (without a thread) until a pooled connection is free, and hold that right for the request.

    Sync routes run their dependencies and body in separate threadpool hops, and a request holds its
    connection between hops. Without this gate a burst (60 orders of one member, each waiting on its lock)
    takes every connection, then every thread blocks in the pool's checkout while the requests holding
    connections wait for a thread: nothing moves until the 5-second pool timeout answers 503 to everyone.
    With at most as many requests in a transaction as the pool has connections, a checkout never blocks a
    thread, and a request over the pool waits here, in the event loop, for up to the pool timeout."""
    settings = get_settings()
    loop = asyncio.get_running_loop()
    permits = _permits.get(loop)
    if permits is None:
        permits = _permits[loop] = asyncio.Semaphore(settings.db_pool_size + settings.db_max_overflow)
    try:
        await asyncio.wait_for(permits.acquire(), timeout=POOL_TIMEOUT_SECONDS)
    except TimeoutError:
        raise DatabaseBusy from None
    try:
        yield
    finally:
        permits.release()


class DatabaseBusy(HTTPException):
    def __init__(self) -> None:
        super().__init__(503, "no database connection available; retry shortly", headers={"Retry-After": "1"})


# --- the access log -----------------------------------------------------------------------------------

def mask_query(path_with_query: str) -> str:
    """``/v1/members/lookup?phone=13800138000`` → ``/v1/members/lookup?phone=***``: the access log keeps which
    parameters a request used, never their values (phones, openids, codes, states)."""
    path, sep, query = path_with_query.partition("?")
    if not sep:
        return path
    names = [name for name, _ in parse_qsl(query, keep_blank_values=True)]
    return f"{path}?{urlencode([(name, '***') for name in names], safe='*')}" if names else path


class MaskedQueryFilter(logging.Filter):
    """Rewrites uvicorn's access-log record (``client, method, path?query, http_version, status``) so that
    query values never reach a log handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], mask_query(args[2]), *args[3:])
        return True


def install_access_log_masking() -> None:
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, MaskedQueryFilter) for f in access.filters):
        access.addFilter(MaskedQueryFilter())


# --- assembly -----------------------------------------------------------------------------------------

def install_edge(app: FastAPI, settings: Settings) -> None:
    """Wrap ``app`` in the edge. Starlette runs the last added middleware first, so the order below is
    inside-out: a request meets CORS, then the rate limits, then the body bounds."""
    app.add_middleware(BoundedBody, limit=settings.max_body_bytes, timeout=settings.body_timeout_seconds)
    # Each worker holds its own buckets and the kernel spreads connections about evenly over the workers,
    # so each worker enforces its share of the configured rate.
    workers = max(1, settings.workers)

    def buckets(rate: float, burst: int) -> Buckets | None:
        return Buckets(rate=rate / workers, burst=max(1.0, burst / workers)) if rate > 0 else None

    app.add_middleware(RateLimit, per_ip=buckets(settings.rate_limit_per_ip, settings.rate_limit_per_ip_burst),
                       per_key=buckets(settings.rate_limit_per_key, settings.rate_limit_per_key_burst))
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_credentials=False,
                           allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                           allow_headers=["Authorization", "Content-Type", "Idempotency-Key"], max_age=600)
    install_access_log_masking()
