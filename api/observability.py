"""The request's edge for operators: a request id and the latency metric.

A pure ASGI middleware (no ``BaseHTTPMiddleware``: it would buffer streaming bodies and run the app in
another task). The access log stays uvicorn's, with query values masked by ``api.edge``; uvicorn writes it
from inside the request's task, so its line carries the ``request_id`` bound here.
"""

from __future__ import annotations

import os
import re
import time
from contextvars import ContextVar

import structlog
from prometheus_client import Histogram
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from domain.telemetry import HTTP_REQUEST_SECONDS

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
"""The current request's id, for error bodies (set by the middleware, read by ``api.errors``)."""

_ACCEPTABLE_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


def accepted_request_id(presented: str | None) -> str:
    """The caller's ``X-Request-ID`` when it is a plain token (so it is safe in a log line), else a new one."""
    if presented and _ACCEPTABLE_ID.fullmatch(presented):
        return presented
    # 128 random bits as 32 hex digits, the shape uuid4().hex had, without building a UUID object (which was
    # most of the 2 µs a request spent here); uuid4's version bits carried nothing a log reader uses.
    return os.urandom(16).hex()


def route_template(scope: Scope) -> str:
    """The matched route's path template (``/v1/members/{member_id}``), never the raw path: a label per
    member id would be a metric family per member."""
    route = scope.get("route")
    return getattr(route, "path", None) or "unmatched"


_REQUEST_SECONDS_CHILDREN: dict[tuple[str, str, int], Histogram] = {}
_MAX_CACHED_CHILDREN = 1024


def request_seconds(method: str, route: str, status: int) -> Histogram:
    """The latency histogram's child for these labels. ``labels()`` validates and joins its arguments on every
    call (over a microsecond a request); the child it returns is the same object each time, so it is kept. The
    cache is bounded because a client picks the method: past the bound, labels are looked up as before."""
    key = (method, route, status)
    child = _REQUEST_SECONDS_CHILDREN.get(key)
    if child is None:
        child = HTTP_REQUEST_SECONDS.labels(method, route, str(status))
        if len(_REQUEST_SECONDS_CHILDREN) < _MAX_CACHED_CHILDREN:
            _REQUEST_SECONDS_CHILDREN[key] = child
    return child


class RequestEdgeMiddleware:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        presented = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), None)
        request_id = accepted_request_id(presented)
        # Not reset on the way out: an unexpected error's 500 is answered by Starlette's outermost middleware,
        # after this one returned, and its body must still carry the id. Each request runs in its own task.
        REQUEST_ID.set(request_id)
        structlog.contextvars.bind_contextvars(request_id=request_id)
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                if "x-request-id" not in headers:
                    headers.append("X-Request-ID", request_id)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = route_template(scope)
            request_seconds(scope["method"], route, status).observe(elapsed)
