"""The request's edge for operators: a request id and the latency metric.

A pure ASGI middleware (no ``BaseHTTPMiddleware``: it would buffer streaming bodies and run the app in
another task). The access log stays uvicorn's, with query values masked by ``api.edge``; uvicorn writes it
from inside the request's task, so its line carries the ``request_id`` bound here.
"""

from __future__ import annotations

import re
import time
import uuid
from contextvars import ContextVar

import structlog
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
    return uuid.uuid4().hex


def route_template(scope: Scope) -> str:
    """The matched route's path template (``/v1/members/{member_id}``), never the raw path: a label per
    member id would be a metric family per member."""
    route = scope.get("route")
    return getattr(route, "path", None) or "unmatched"


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
            HTTP_REQUEST_SECONDS.labels(scope["method"], route, str(status)).observe(elapsed)
