"""The OpenAPI document, completed in one place so a generated client knows every answer it can get.

Route files declare what is particular to them (their models, their own statuses); this module adds what
follows from how the API is built, for every operation at once:

- the bearer security scheme (Swagger's Authorize button), required exactly by the routes that declare a
  ``RouteAccess`` (``api.deps.allow``), with who may call written into the operation;
- the statuses the edges answer: 401/403 where a credential is checked, 404 on paths with ids, 409 on writes,
  413 and 422 where a body or parameters are read, 429 (rate limit, member busy) and 503 (database away)
  everywhere with ``Retry-After``; every answer carries ``X-Request-ID``;
- the 200 of an idempotent replay next to the 201 of a create whose answer says ``replayed``;
- tag descriptions and examples on the main request bodies.

``tests/api/test_openapi_contract.py`` enumerates the operations and checks all of it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute

from domain.access.rules import RouteAccess

BEARER = "bearer"

TAGS: dict[str, str] = {
    "members": "Enrol members, read and change their profile, find them by one identity key, search.",
    "points": "Orders and refunds (idempotent by their ids), balances, the ledger, redemptions, corrections.",
    "contacts": "The contact gate: request a touch, dry-run eligibility, consents per channel, history.",
    "crm": "The call center: the member in one look, notes, interests, call lists and outcomes, complaints.",
    "journeys": "Automated journeys (welcome, reactivation, care): define, version, pause, report with uplift.",
    "campaigns": "One-off campaigns: audience, preview, four-eyes approval, launch with a control group, report.",
    "templates": "The message template catalogue: versioned per key and channel, with declared variables.",
    "admin": "Operators: job runs, the personal-data access log, API keys and configuration.",
    "exports": "CSV exports streamed from PostgreSQL (masked and access-logged like the lists they export).",
    "staff": "Staff sessions: log in, refresh, log out, who am I.",
    "me": "A member's own session (/v1/me): their profile, points, coupons, consents.",
    "wechat": "The WeChat official account: the signed callback and the OAuth binding pages.",
    "organisations": "Group customers: accounts, contracts, key contacts, families, visits, points pools.",
    "webhooks": "Other systems subscribe to domain events: signed, retried, ordered per member, replayable.",
    "scores": "Channel-preference scores and the usage facts they are computed from.",
    "privacy": "A member's data as JSON and erasure on request (operators; access-logged).",
    "health": "Liveness and readiness (no credential).",
}

EXAMPLES: dict[tuple[str, str], dict[str, Any]] = {
    ("post", "/v1/members"): {"source_channel": "store", "source_campaign": "SPRING26", "phone": "13800138000",
                              "name": "Li Lei", "city": "Hangzhou", "consents": {"sms": True},
                              "external_ids": {"pos": "P-100234"}},
    ("patch", "/v1/members/{member_id}"): {"city": "Shanghai", "preferred_channel": "wechat"},
    ("post", "/v1/orders"): {"order_id": "POS-20261202-0001", "member_id": 42, "amount_fen": 128_800,
                             "channel": "store", "occurred_at": "2026-12-02T10:15:00+08:00",
                             "items": [{"sku": "TEA-01", "qty": 2, "price_fen": 64_400}]},
    ("post", "/v1/orders/{order_id}/refunds"): {"refund_id": "RF-0001", "amount_fen": 64_400,
                                                "occurred_at": "2026-12-03T09:00:00+08:00"},
    ("post", "/v1/members/{member_id}/redemptions"): {"redemption_id": "RD-0001", "points": 500,
                                                      "reason": "gift: tea set"},
    ("post", "/v1/members/{member_id}/points/adjustments"): {"adjustment_id": "ADJ-0001", "points": 200,
                                                             "reason": "goodwill after complaint #77"},
    ("post", "/v1/members/{member_id}/contacts"): {"channel": "sms", "idempotency_key": "statement-2026-12",
                                                   "template": "points_statement",
                                                   "variables": {"points": "1200"}},
    ("put", "/v1/members/{member_id}/consents/{channel}"): {"granted": False},
    ("post", "/v1/members/{member_id}/complaints"): {"category": "service", "note": "waited 20 minutes"},
    ("post", "/v1/admin/members/{member_id}/erasure"): {"reason": "privacy request #4711"},
}

REPLAYS = {("post", "/v1/members/{member_id}/points/adjustments")}
"""Creates that answer a replay with 200 although their answer has no ``replayed`` field."""

_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer"}}}
_REQUEST_ID = {"X-Request-ID": {"description": "The request's id (the caller's if it sent a plain token): in "
                                               "every log line of the request and in error bodies",
                                "schema": {"type": "string"}}}
_COMMON_ERRORS: dict[str, str] = {
    "401": "Missing, invalid or revoked credential",
    "403": "The credential may not do this (`scope_forbidden`), or not for this member",
    "404": "Not found",
    "409": "Conflict with stored data (a duplicate key; a replay with another payload)",
    "413": "Request body over the limit (1 MB by default)",
    "422": "Invalid input: the field errors, or a business rule refusing well-formed values",
    "429": "Rate limit, or the member is busy with another request: retry after `Retry-After`",
    "503": "Database unavailable (or the server at capacity): retry after `Retry-After`",
}
_WRITES = {"post", "put", "patch", "delete"}


def declared_access(route: APIRoute) -> RouteAccess | str | None:
    """The route's ``RouteAccess``, or the reason it is public, found among its dependencies at any depth."""
    stack = list(route.dependant.dependencies)
    while stack:
        dep = stack.pop()
        if hasattr(dep.call, "access"):
            return dep.call.access  # type: ignore[union-attr, no-any-return]
        if hasattr(dep.call, "public_because"):
            return dep.call.public_because  # type: ignore[union-attr, no-any-return]
        stack.extend(dep.dependencies)
    return None


def _resolve(schema: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref", "")
    if ref.startswith("#/components/schemas/"):
        return document["components"]["schemas"].get(ref.rsplit("/", 1)[1], {})  # type: ignore[no-any-return]
    return schema


def _error(description: str, *, retry: bool = False) -> dict[str, Any]:
    return {"description": description, "headers": {**(_RETRY_AFTER if retry else {}), **_REQUEST_ID},
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}}


def _who(access: RouteAccess) -> str:
    row = access.describe()
    parts = []
    if row["api_key_scopes"]:
        parts.append("API keys with scope " + ", ".join(f"`{s}`" for s in row["api_key_scopes"]))  # type: ignore[union-attr]
    if row["staff_roles"]:
        parts.append("staff with role " + ", ".join(f"`{r}`" for r in row["staff_roles"]))  # type: ignore[union-attr]
    if row["member"]:
        parts.append("the member's own session")
    return "**Who may call:** " + ("; ".join(parts) or "nobody") + "."


# Pydantic 2.14 writes a bound that follows a validator (``Integer = Field(ge=1)``: api/schemas/common.py refuses
# ``true`` before the integer is read) under its Python name, ``"ge": 1``, which JSON Schema ignores; the bound is
# still enforced. pydantic/pydantic#11576; its fixes are not released.
_NUMERIC_KEYWORDS = {"gt": "exclusiveMinimum", "ge": "minimum", "lt": "exclusiveMaximum", "le": "maximum",
                     "multiple_of": "multipleOf"}


def _json_schema_bounds(node: Any) -> None:
    if isinstance(node, dict):
        if node.get("type") in ("integer", "number"):
            for python, keyword in _NUMERIC_KEYWORDS.items():
                if python in node:
                    node[keyword] = node.pop(python)
        for value in node.values():
            _json_schema_bounds(value)
    elif isinstance(node, list):
        for value in node:
            _json_schema_bounds(value)


def complete(document: dict[str, Any], routes: list[Any]) -> dict[str, Any]:
    """Add the security scheme, common statuses, replays, tag descriptions and examples to ``document``."""
    _json_schema_bounds(document.get("components", {}).get("schemas", {}))
    components = document.setdefault("components", {})
    components.setdefault("securitySchemes", {})[BEARER] = {
        "type": "http", "scheme": "bearer",
        "description": "An API key (`lk_…`, from `loyalty apikey create`), a staff session's access token "
                       "(`POST /v1/staff/sessions`) or a member session's (`/v1/me`). Which kinds each operation "
                       "takes is in its description; the others get 403."}
    schemas = components.setdefault("schemas", {})
    schemas.setdefault("ErrorResponse", {
        "title": "ErrorResponse", "type": "object", "required": ["error"], "description": "The one error shape.",
        "properties": {"error": {"type": "object", "required": ["code", "message", "details"], "properties": {
            "code": {"type": "string"}, "message": {"type": "string"}, "details": {"type": "object"},
            "request_id": {"anyOf": [{"type": "string"}, {"type": "null"}]}}}}})
    used_tags: set[str] = set()
    for route in routes:
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        access = declared_access(route)
        for method in sorted(m.lower() for m in route.methods or ()):
            operation = document.get("paths", {}).get(route.path_format, {}).get(method)
            if operation is None:
                continue
            used_tags.update(operation.get("tags", []))
            _complete_operation(document, operation, method=method, path=route.path_format, access=access)
    known = {tag["name"] for tag in document.get("tags", [])}
    document.setdefault("tags", []).extend({"name": name, "description": TAGS.get(name, name)}
                                           for name in sorted(used_tags - known))
    return document


def _complete_operation(document: dict[str, Any], operation: dict[str, Any], *, method: str, path: str,
                        access: RouteAccess | str | None) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    # The credential is the bearer security scheme, not a parameter of each operation: FastAPI lists the
    # ``authorization`` header the auth dependency reads as one, and a client generated from it (or a fuzzer)
    # would send it as data, in place of the key.
    parameters = [p for p in operation.get("parameters", [])
                  if not (p.get("in") == "header" and p.get("name", "").lower() == "authorization")]
    if parameters:
        operation["parameters"] = parameters
    else:
        operation.pop("parameters", None)
    wanted = ["429", "503"]
    if isinstance(access, RouteAccess):
        operation["security"] = [{BEARER: []}]
        wanted += ["401", "403"]
        who = _who(access)
        if who not in operation.get("description", ""):
            operation["description"] = (operation.get("description", "") + "\n\n" + who).strip()
    elif access is not None:
        operation["security"] = []  # public on purpose (a login, a refresh): no credential
        wanted += ["401"]  # a wrong password or a dead refresh token
    if "{" in path:
        wanted.append("404")
    if method in _WRITES:
        wanted.append("409")
    if "requestBody" in operation:
        wanted.append("413")
    if "requestBody" in operation or operation.get("parameters"):
        wanted.append("422")
    for status in wanted:
        responses.setdefault(status, _error(_COMMON_ERRORS[status], retry=status in ("429", "503")))
    for status in ("429", "503"):  # also where a route file declared them without the header
        responses[status].setdefault("headers", {}).update(_RETRY_AFTER)
    for status, response in responses.items():  # a route's own error status answers the one error shape too
        if status[0] in "45":
            response.setdefault("content", _error("")["content"])
    for status, response in responses.items():
        if status != "default":
            response.setdefault("headers", {}).update(_REQUEST_ID)
    created = responses.get("201", {}).get("content", {}).get("application/json")
    if created and ((method, path) in REPLAYS
                    or "replayed" in _resolve(created.get("schema", {}), document).get("properties", {})):
        responses.setdefault("200", {
            "description": "Replay: the same request again (same idempotency key and payload); nothing new was "
                           "stored and the answer says `replayed: true`",
            "headers": dict(_REQUEST_ID), "content": {"application/json": copy.deepcopy(created)}})
    example = EXAMPLES.get((method, path))
    body = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if example is not None and body is not None:
        body.setdefault("example", example)


def install_openapi(app: FastAPI, routers: Sequence[APIRouter]) -> None:
    """Serve the completed document at /openapi.json (built once, on first request). ``routers`` are the
    app's (their routes carry the full path; the app's own list holds included-router wrappers)."""
    build: Callable[[], dict[str, Any]] = app.openapi
    routes = [route for router in routers for route in router.routes]

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete(build(), routes)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
