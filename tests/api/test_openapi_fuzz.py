"""Schemathesis over the whole OpenAPI surface, on seeded data, with every check schemathesis has (``--checks
all``) except the ones listed below with why, and schema-valid input refused only for a listed business reason.

Runs in-process against the ASGI app on the test's rolled-back transaction, with an admin key so every operation
is reachable. Bounded for CI: a fixed seed (``derandomize``), a few examples per operation, no shrinking, and a
generous per-request timeout so a loaded machine slows the run instead of failing it.
"""

from __future__ import annotations

import re
import types
import typing
import zlib
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

import pytest
import schemathesis
from fastapi.routing import APIRoute
from hypothesis import HealthCheck, Phase, settings
from pydantic import AwareDatetime, BaseModel, TypeAdapter, ValidationError
from schemathesis import GenerationMode
from schemathesis.specs.openapi import checks

from api import hot
from api.deps import get_session
from api.edge import RateLimit
from api.main import ROUTERS, create_app
from api.openapi import declared_access
from api.schemas.common import StrictModel
from domain.access.rules import RouteAccess
from domain.members.models import Member
from domain.staff.models import StaffRole
from tests.conftest import session_override
from tests.factories import make_member, make_order, make_staff, member_auth, staff_auth

APP = create_app()
# Hundreds of requests a second from one address: the rate limit would answer most of them (it has its own tests).
APP.user_middleware = [m for m in APP.user_middleware if m.cls is not RateLimit]
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)
# The hot routes (api/hot.py) run on their own psycopg pool, outside the test's rolled-back transaction: fuzzing them
# here would write committed rows. They are fuzzed for bad input and restart behaviour in their own tests.
HOT = {(method, route.path) for route in hot.router.routes if isinstance(route, APIRoute) for method in route.methods}
for method, path in HOT:
    schema = schema.exclude(method=method, path=path)
# The credential is the security scheme (api/openapi.py drops the ``authorization`` header the auth dependency
# reads from the parameters) and the test sends the admin key; no extra parameters either, which schemathesis
# would otherwise add beside declared ones (an extra ``Authorization`` among them replaced the key).
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                                allow_extra_parameters=False, with_security_parameters=False)

EXCLUDED_CHECKS = [
    checks.positive_data_acceptance,  # replaced by the check below, which lists the business refusals
    checks.ignored_auth,  # re-sends without the key: covered per route by tests/api/test_route_security.py
    checks.use_after_free, checks.ensure_resource_availability,  # stateful links: not declared by this API
    checks.object_level_authorization,  # needs two users' resources: tests/api/test_route_security.py
]
BUSINESS_REFUSALS = {
    "invalid_phone",  # a string the schema allows that is not a phone number of the configured region
    "invalid_cursor",  # cursors are opaque: only the API's own next_cursor is one
    "lookup_key_required",  # exactly one of several optional identity keys
    "invalid_timezone", "invalid_tier",  # names checked against the tz database and the configured ladder
    "timestamp_in_future",  # an order or refund dated ahead of the server's clock (or beyond back-dating)
    "timestamp_too_old",  # an order or refund older than the back-dating window (operators import those)
    "order_conflict",  # an order id reused with another payload (the operators' import of a seeded order id)
    "coupon_redeemed", "coupon_voided", "coupon_expired",  # a coupon is used once, and not after it ends
    "insufficient_points",  # a redemption larger than the balance
    "adjustment_conflict", "organisation_exists",  # an idempotency key or name reused with another payload
    "unknown_weights", "invalid_step", "unknown_template", "invalid_template",  # configuration the catalogue checks
    "template_purpose_fixed",  # a new version of a template key with another purpose (a key keeps its purpose)
    "wechat_not_configured",  # WeChat routes while no official account is configured
    "phone_taken",  # the phone already belongs to another member (409 names the holder)
    "duplicate_key",  # another member already holds this WeChat openid or unionid (409 names the constraint)
    "unknown_member", "unknown_event", "invalid_member_code",  # ids and names that must exist or parse
    "invalid_family_link", "staff_required",  # a member linked to themselves; a team role for a non-staff id
    "invalid_month", "invalid_range",  # a month like 2026-13; a replay range whose end is before its start
    "invalid_contract_term",  # a contract that ends before it starts
    "callback_time_required",  # a call outcome "callback" without the time to call back
    "unknown_filters", "invalid_audience",  # an audience filter is an open object; its vocabulary is the domain's
    "external_id_taken", "subscription_exists", "duplicate_fact",  # unique keys already held
    "refund_exceeds_order",  # more refunded than is left of the order
    "invalid_value",  # a string PostgreSQL cannot hold (a NUL character) or longer than its column
    "code_recently_sent", "too_many_codes_for_phone", "too_many_codes_for_client",  # SMS codes: sends limited
    "too_many_attempts",  # wrong SMS codes for one phone, counted across resends
}
"""Error codes with which the API may refuse schema-valid input (docs/operations.md lists them with why)."""
STRIPPED = {("POST", "/wechat/oauth/bind")}
"""Bodies whose strings are stripped of surrounding spaces before their length is checked (422 validation_error)."""


def positive_data_is_accepted_or_refused_for_a_listed_reason(ctx, response, case):
    if case.meta is None or case.meta.generation.mode != GenerationMode.POSITIVE or response.status_code < 400:
        return None
    if response.status_code in (401, 403, 404):  # a key's reach, a missing resource
        return None
    code = (response.json() or {}).get("error", {}).get("code") if "json" in response.headers.get(
        "content-type", [""])[0] else None
    if code == "validation_error" and (case.method, case.path) in STRIPPED:
        return None
    assert code in BUSINESS_REFUSALS, f"schema-valid input refused: {response.status_code} {code}"
    return True


@pytest.fixture
def seeded(session, admin_headers):
    member = make_member(session, name="Fuzz Member")
    make_order(session, member_id=member.id, amount_fen=250_000, order_id="FUZZ-ORDER-1")
    APP.dependency_overrides[get_session] = session_override(session)
    try:
        yield admin_headers, {"member_id": member.id, "order_id": "FUZZ-ORDER-1"}
    finally:
        APP.dependency_overrides.clear()


ACCESS = {(method, route.path_format): declared_access(route) for router in ROUTERS for route in router.routes
          if isinstance(route, APIRoute) for method in route.methods or ()}
"""Who may call each operation (api.deps.allow), to send a credential it admits."""


def credential_for(session, method: str, path: str, admin_headers: dict[str, str], member_id: int) -> dict[str, str]:
    """The admin key where keys are admitted; otherwise a fresh session (an operation may end the one it is
    called with) of a staff role the route admits, with the PII right, or of the seeded member."""
    access = ACCESS.get((method, path))
    if not isinstance(access, RouteAccess) or access.keys:
        return admin_headers
    if access.roles:
        role = StaffRole.SUPERVISOR if StaffRole.SUPERVISOR in access.roles else min(access.roles)
        return staff_auth(session, make_staff(session, role=role.value, pii_access=True))
    return member_auth(session, session.get(Member, member_id))


def _guarded(method: str, path: str) -> bool:
    return isinstance(ACCESS.get((method, path)), RouteAccess)


@pytest.fixture(scope="module")
def reached():
    """Every (method, path, status) the run got. A fuzz stopped at the door proves nothing about the routes:
    once the run is over, the guarded operations must have answered nearly every case from past the credential
    check (a 401 or 403 there is a credential the test failed to send, or a route refusing the one it admits)."""
    calls: list[tuple[str, str, int]] = []
    yield calls
    guarded = [c for c in calls if _guarded(c[0], c[1])]
    if len({(m, p) for m, p, _ in guarded}) >= 10:  # a selection of a few operations (``-k``) is too few to judge
        refused = [c for c in guarded if c[2] in (401, 403)]
        assert len(refused) <= len(guarded) // 50, refused


@schema.parametrize()
@settings(max_examples=2, deadline=None, derandomize=True, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=list(HealthCheck))
def test_every_operation_passes_all_checks_on_seeded_data(case, seeded, reached, session):
    admin, known = seeded
    if case.meta is not None and case.meta.generation.mode == GenerationMode.POSITIVE:
        for name, value in known.items():  # half the valid cases address seeded rows, not only 404s
            if name in (case.path_parameters or {}) and zlib.crc32(str(case.path_parameters[name]).encode()) % 2:
                case.path_parameters[name] = value
    # The credential over any generated header of that name (the schema's security scheme is not a parameter).
    case.headers = {**(case.headers or {}),
                    **credential_for(session, case.method, case.path, admin, known["member_id"])}
    response = case.call(timeout=60)
    reached.append((case.method, case.path, response.status_code))
    case.validate_response(response, excluded_checks=EXCLUDED_CHECKS,
                           additional_checks=[positive_data_is_accepted_or_refused_for_a_listed_reason])


# Stateful: sequences of calls where one answer feeds the next (a member created, then read, changed, credited,
# complained about …), along the links schemathesis infers from the schema. Positive data, the member-centred
# operations and a few short sequences, to stay within the CI budget.
STATEFUL = schemathesis.openapi.from_asgi("/openapi.json", APP).include(path_regex=r"^/v1/members(/\{member_id\})?"
                                                                         r"(/(complaints|consents|redemptions|points"
                                                                         r"/adjustments|interests))?")
for method, path in HOT:
    STATEFUL = STATEFUL.exclude(method=method, path=path)
STATEFUL.config.generation.update(modes=[GenerationMode.POSITIVE], allow_extra_parameters=False,
                                  with_security_parameters=False)


def test_member_sequences_pass_all_checks_statefully(seeded):
    from hypothesis.stateful import run_state_machine_as_test

    headers, _ = seeded
    calls: list[tuple[str, str, int]] = []

    class Machine(STATEFUL.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case):
            case.headers = {**(case.headers or {}), **headers}
            return {"timeout": 60}

        def validate_response(self, response, case, **kwargs):
            calls.append((case.method, case.path, response.status_code))
            case.validate_response(response, excluded_checks=EXCLUDED_CHECKS,
                                   additional_checks=[positive_data_is_accepted_or_refused_for_a_listed_reason])

    run_state_machine_as_test(Machine, settings=settings(max_examples=1, stateful_step_count=6, deadline=None,
                                                         derandomize=True, phases=[Phase.generate],
                                                         suppress_health_check=list(HealthCheck)))
    chained = [c for c in calls if "{member_id}" in c[1] and c[2] < 300]
    assert chained, calls  # some calls reached a member an earlier call created


def _leaves(annotation: Any, metadata: tuple[Any, ...] = ()) -> Iterator[tuple[Any, tuple[Any, ...]]]:
    """The scalar types in a field's annotation with the metadata that applies to them, through models,
    containers, unions and ``Annotated``."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        inner, *extra = typing.get_args(annotation)
        yield from _leaves(inner, (*metadata, *extra))
    elif origin in (typing.Union, types.UnionType):
        for arm in typing.get_args(annotation):
            yield from _leaves(arm, metadata)
    elif origin is typing.Literal:
        return
    elif origin is not None:
        for arg in typing.get_args(annotation):
            yield from _leaves(arg)
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        for field in annotation.model_fields.values():
            yield from _leaves(field.annotation, tuple(field.metadata))
    else:
        yield annotation, metadata


# JSON values of another type that lax validation would convert into each scalar type.
NOT_OF_TYPE: dict[Any, list[Any]] = {
    int: [True, "1"], bool: [0, 1, "true", "yes"], float: [True, "1.5"], str: [0, True],
    date: [0, 1_700_000_000, True], datetime: [0, 1_700_000_000.5, True], AwareDatetime: [0, 1_700_000_000.5, True],
}


def test_request_bodies_take_only_the_json_type_their_schema_states():
    """Every scalar in every request body (api/schemas/common.py: Integer, StrictBool, StrictFloat, Day, Instant)
    refuses a JSON value of another type instead of converting it: ``true`` is not 1, ``0`` is not false or
    1970-01-01. The fuzz finds these one at a time and by chance; this walks them all."""
    checked, lax = 0, []
    for route in (r for router in ROUTERS for r in router.routes):
        if not isinstance(route, APIRoute) or route.body_field is None:
            continue
        info = route.body_field.field_info
        for leaf, metadata in _leaves(info.annotation, tuple(info.metadata)):
            adapter = TypeAdapter(typing.Annotated[leaf, *metadata]) if metadata else TypeAdapter(leaf)
            for value in NOT_OF_TYPE.get(leaf, []):
                checked += 1
                try:
                    adapter.validate_python(value)
                except ValidationError:
                    continue
                lax.append((route.path, leaf.__name__, value))
    assert not lax, lax
    assert checked > 150  # the walk reached the bodies' fields (dozens of integers, booleans, dates …)


def test_bounds_in_the_document_are_json_schema_keywords():
    """A bound declared after a validator (an ``Integer`` with ``ge=1``) is written as ``minimum``, which clients
    and schemathesis read, not as pydantic's ``ge`` (api/openapi.py)."""
    document = APP.openapi()
    found: list[dict[str, Any]] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") in ("integer", "number"):
                found.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)
    assert not [n for n in found if {"ge", "le", "gt", "lt"} & n.keys()]
    staff_id = document["components"]["schemas"]["ManagerIn"]["properties"]["staff_id"]
    assert (staff_id["minimum"], staff_id["maximum"]) == (1, 2**31 - 1)


def test_a_stripped_strings_schema_and_the_server_agree_on_its_minimum():
    """Request strings are stripped before their ``minLength`` is checked; the pattern ``StrictModel`` adds to
    their schema must accept exactly what the server accepts, for spaces of every kind around and inside."""
    models: set[type[BaseModel]] = set()

    def collect(annotation: Any) -> None:
        origin = typing.get_origin(annotation)
        if origin is not None:
            for arg in typing.get_args(annotation):
                collect(arg)
        elif isinstance(annotation, type) and issubclass(annotation, StrictModel) and annotation not in models:
            models.add(annotation)
            for field in annotation.model_fields.values():
                collect(field.annotation)

    for route in (r for router in ROUTERS for r in router.routes):
        if isinstance(route, APIRoute) and route.body_field is not None:
            collect(route.body_field.field_info.annotation)
    compared, disagreements = 0, []
    for model in models:
        for name, prop in model.model_json_schema()["properties"].items():
            for alt in [prop, *prop.get("anyOf", [])]:
                least = alt.get("minLength", 0)
                if alt.get("type") != "string" or not least or not alt.get("pattern", "").startswith("[^\\t-\\r"):
                    continue
                for value in ["\u00a0" * least, " " + "a" * (least - 1) + "\u3000", "a" * least,
                              "\u2028" + "a" * least + " ", "a" + "\u0085" * least, "a" + " " * (least - 2) + "b"]:
                    schema_valid = len(value) >= least and re.search(alt["pattern"], value) is not None
                    try:
                        model.model_validate({name: value})
                        server_valid = True
                    except ValidationError as exc:
                        server_valid = not [e for e in exc.errors() if tuple(e["loc"]) == (name,)]
                    compared += 1
                    if schema_valid != server_valid:
                        disagreements.append((model.__name__, name, value, schema_valid, server_valid))
    assert not disagreements, disagreements
    assert compared > 100  # the request bodies' names, reasons, notes … were reached
