"""The OpenAPI document is complete enough to generate a client: every operation enumerated from the app is
checked for its security, the statuses the edges answer, replays, typed answers, tags and examples."""

from __future__ import annotations

import pytest
from fastapi.routing import APIRoute
from pydantic import TypeAdapter

from api.main import ROUTERS, create_app
from api.openapi import BEARER, EXAMPLES, REPLAYS, declared_access
from domain.access.rules import RouteAccess

SPEC = create_app().openapi()
ROUTES = {(method.lower(), route.path_format): route for router in ROUTERS for route in router.routes
          if isinstance(route, APIRoute) and route.include_in_schema for method in route.methods}
OPERATIONS = [(method, path, op) for path, ops in SPEC["paths"].items() for method, op in ops.items()]
IDS = [f"{m.upper()} {p}" for m, p, _ in OPERATIONS]

UNTYPED: set[tuple[str, str]] = set()
"""Operations answering a bare ``dict``: none. A route added without a response model fails below; should one
ever have to stay untyped, it is named here, and taken off again once typed."""


def _schema(ref_or_schema: dict) -> dict:
    ref = ref_or_schema.get("$ref", "")
    return SPEC["components"]["schemas"][ref.rsplit("/", 1)[1]] if ref else ref_or_schema


def _typed(schema: dict) -> bool:
    """A named model, a typed list or map of them, or a scalar — not an object that may hold anything."""
    if "$ref" in schema or "properties" in schema:
        return True
    if schema.get("type") == "array":
        return _typed(schema.get("items", {}))
    if schema.get("type") == "object":
        extra = schema.get("additionalProperties")
        return isinstance(extra, dict) and bool(extra) and _typed(extra)
    if "anyOf" in schema:
        return all(_typed(s) for s in schema["anyOf"])
    return schema.get("type") in ("string", "integer", "number", "boolean", "null")


def test_every_operation_is_enumerated_from_the_app():
    assert len(OPERATIONS) >= 100 and {(m, p) for m, p, _ in OPERATIONS} == set(ROUTES)


def test_a_bearer_scheme_lets_swagger_authorize_and_every_tag_is_described():
    assert SPEC["components"]["securitySchemes"][BEARER] == {**SPEC["components"]["securitySchemes"][BEARER],
                                                             "type": "http", "scheme": "bearer"}
    described = {t["name"]: t["description"] for t in SPEC["tags"]}
    used = {tag for _, _, op in OPERATIONS for tag in op.get("tags", [])}
    assert used <= set(described) and all(len(described[t]) > 20 for t in used)
    assert all(op.get("tags") for _, _, op in OPERATIONS)


@pytest.mark.parametrize(("method", "path", "op"), OPERATIONS, ids=IDS)
def test_every_operation_states_its_credential_and_every_status_it_can_answer(method, path, op):
    access = declared_access(ROUTES[(method, path)])
    responses = op["responses"]
    if isinstance(access, RouteAccess):
        assert op["security"] == [{BEARER: []}] and {"401", "403"} <= set(responses)
        assert "Who may call" in op["description"]
    else:
        assert op.get("security", []) == []
    page = "text/html" in responses.get("200", {}).get("content", {})  # a page tells its reader in HTML
    for status in ("429", "503"):
        assert "Retry-After" in responses[status]["headers"], status
        if page:
            assert "text/html" in responses[status]["content"], status
        elif (path, status) != ("/readyz", "503"):  # readiness answers its own shape, for orchestrators
            assert responses[status]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/ErrorResponse"}
    if "{" in path:
        assert "404" in responses
    if "requestBody" in op:
        assert {"413", "422"} <= set(responses)
    if method in ("post", "put", "patch", "delete"):
        assert "409" in responses
    assert all("X-Request-ID" in r.get("headers", {}) for r in responses.values())
    created = responses.get("201", {}).get("content", {}).get("application/json", {}).get("schema")
    if created and ("replayed" in _schema(created).get("properties", {}) or (method, path) in REPLAYS):
        assert responses["200"]["content"]["application/json"]["schema"] == created  # the replay's 200


@pytest.mark.parametrize(("method", "path", "op"), OPERATIONS, ids=IDS)
def test_every_json_answer_is_a_typed_model(method, path, op):
    untyped = [status for status, r in op["responses"].items() if status.startswith("2")
               and "application/json" in r.get("content", {})
               and not _typed(r["content"]["application/json"].get("schema", {}))]
    if (method, path) in UNTYPED:
        assert untyped, f"{method.upper()} {path} is typed now: take it off UNTYPED"
    else:
        assert not untyped, f"{method.upper()} {path} answers an untyped object ({untyped})"


def test_the_main_requests_carry_examples_that_their_models_accept():
    for (method, path), example in EXAMPLES.items():
        body = SPEC["paths"][path][method]["requestBody"]["content"]["application/json"]
        assert body["example"] == example
        model = ROUTES[(method, path)].dependant.body_params[0].field_info.annotation
        TypeAdapter(model).validate_python(example)


def test_idempotent_creates_document_their_replay():
    replayed = sorted(p for m, p, op in OPERATIONS if "200" in op["responses"] and "201" in op["responses"])
    assert {"/v1/orders", "/v1/orders/{order_id}/refunds", "/v1/members/{member_id}/redemptions",
            "/v1/admin/members/{member_id}/erasure"} <= set(replayed)
