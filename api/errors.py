"""Domain error → HTTP status, in one JSON shape: ``{"error": {"code", "message", "details"}}``.

Nothing here ever answers a stack trace: an unexpected error is logged with its trace and answered as a
plain 500 with an opaque code; a database that is away answers 503 so callers retry.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from api.observability import REQUEST_ID
from domain.db import LOCK_BUSY_SQLSTATE, locked_relation
from domain.errors import (
    Conflict,
    DomainError,
    Forbidden,
    InvalidInput,
    NotFound,
    PolicyRefused,
    TooSoon,
    Unauthorized,
)

log = logging.getLogger("api")

STATUS_BY_ERROR: list[tuple[type[DomainError], int]] = [
    (Unauthorized, 401),
    (Forbidden, 403),
    (NotFound, 404),
    (Conflict, 409),
    (PolicyRefused, 422),
    (InvalidInput, 422),
    (TooSoon, 429),
]

HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
              405: "method_not_allowed", 406: "not_acceptable", 408: "request_timeout", 409: "conflict",
              413: "payload_too_large", 415: "unsupported_media_type", 422: "validation_error",
              429: "too_many_requests", 503: "busy"}


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """The one error shape; ``request_id`` is the id in the response's ``X-Request-ID`` and in the log lines
    of the request, so a caller reporting an error hands the operator the key to its logs."""
    return {"error": {"code": code, "message": message, "details": jsonable_encoder(details or {}),
                      "request_id": REQUEST_ID.get()}}


def error_response(status: int, code: str, message: str, details: Any = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    request_id = REQUEST_ID.get()
    if request_id:  # a 500 is sent by Starlette's outermost layer, past the middleware that adds it to others
        headers = {**(headers or {}), "X-Request-ID": request_id}
    return JSONResponse(error_body(code, message, details), status_code=status, headers=headers)


def status_for(exc: DomainError) -> int:
    for cls, status in STATUS_BY_ERROR:
        if isinstance(exc, cls):
            return status
    return 400


def domain_error_response(exc: DomainError) -> JSONResponse:
    """A business refusal as an HTTP answer. Routes return it themselves when the refusal's own writes must
    commit (a login's count of wrong passwords); otherwise they raise and the handler below calls this."""
    status = status_for(exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if status == 429 and "retry_after_seconds" in exc.details:
        headers = {"Retry-After": str(exc.details["retry_after_seconds"])}
    return error_response(status, exc.code, exc.message, exc.details, headers)


HTTP_METHODS = ("GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE")


def documented_methods(app: FastAPI, path: str) -> tuple[bool, list[str]] | None:
    """The methods the OpenAPI document lists for the path a request named, and whether that path is a literal
    one. A literal path (``/v1/organisations/allocate``) wins over a templated sibling that would also match it
    (``/v1/organisations/{organisation_id}``), as the document reads. Starlette's own 405 names only the first
    route that matched the path, which misses a method served by another router or a literal sibling."""
    table = getattr(app.state, "documented_paths", None)
    if table is None:
        table = []
        for template, operations in app.openapi().get("paths", {}).items():
            pattern = re.sub(r"\\\{[^}]*\\\}", "[^/]+", re.escape(template))
            methods = sorted(m.upper() for m in operations if m.upper() in HTTP_METHODS)
            table.append((re.compile(f"^{pattern}$"), "{" in template, methods))
        table.sort(key=lambda entry: entry[1])  # literal paths first
        app.state.documented_paths = table
    for regex, templated, methods in table:
        if regex.match(path):
            return not templated, methods
    return None


def method_not_allowed(methods: list[str]) -> JSONResponse:
    return error_response(405, "method_not_allowed", "Method Not Allowed", None, {"Allow": ", ".join(methods)})


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def domain_error(_: Request, exc: DomainError) -> JSONResponse:
        return domain_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        if any(tuple(e.get("loc", ()))[:1] == ("path",) for e in exc.errors()):
            # PATCH /v1/members/lookup reaches PATCH /v1/members/{member_id} and fails on the id; the document
            # says the literal path has no PATCH, so that is what the caller hears.
            documented = documented_methods(request.app, request.url.path)
            if documented and documented[0] and request.method not in documented[1]:
                return method_not_allowed(documented[1])
        problems = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
                    for e in exc.errors()]
        return error_response(422, "validation_error", "the request is not valid", {"errors": problems})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 405 and (documented := documented_methods(request.app, request.url.path)):
            return method_not_allowed(documented[1])
        code = HTTP_CODES.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail), None, getattr(exc, "headers", None))

    @app.exception_handler(sa.exc.IntegrityError)
    async def integrity_error(_: Request, exc: sa.exc.IntegrityError) -> JSONResponse:
        constraint = getattr(getattr(exc.orig, "diag", None), "constraint_name", None)
        return error_response(409, "conflict", "the change conflicts with stored data", {"constraint": constraint})

    @app.exception_handler(sa.exc.DataError)
    async def data_error(_: Request, exc: sa.exc.DataError) -> JSONResponse:
        # A value PostgreSQL cannot hold (an id beyond int4, a string too long) is the caller's mistake.
        return error_response(422, "invalid_value", "a value is out of range for its field")

    @app.exception_handler(OverflowError)
    async def out_of_range(_: Request, exc: OverflowError) -> JSONResponse:
        # Dates near the calendar's end (an order on 9999-12-31 plus the return window) overflow Python's
        # datetime: the value the caller sent is out of range, as with the DataError above.
        return error_response(422, "invalid_value", "a date or number is out of range")

    @app.exception_handler(sa.exc.OperationalError)
    async def database_away(_: Request, exc: sa.exc.OperationalError) -> JSONResponse:
        if getattr(exc.orig, "sqlstate", None) == LOCK_BUSY_SQLSTATE:
            # A lock wait passed the request's lock_timeout (domain.db.limit_lock_waits): another request holds
            # this member (or row) right now. Retryable at once, unlike a conflict with stored data.
            relation = locked_relation(exc)
            code = "member_busy" if relation in (None, "members") else "busy"
            return error_response(429, code, "another request is changing the same record; retry shortly",
                                  {"relation": relation}, headers={"Retry-After": "1"})
        log.warning("database unavailable: %s", exc.__class__.__name__)
        return error_response(503, "database_unavailable", "the database is not reachable; retry shortly",
                              headers={"Retry-After": "2"})

    @app.exception_handler(sa.exc.TimeoutError)
    async def pool_exhausted(_: Request, exc: sa.exc.TimeoutError) -> JSONResponse:
        return error_response(503, "busy", "no database connection available; retry shortly",
                              headers={"Retry-After": "1"})

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", "an unexpected error occurred")
