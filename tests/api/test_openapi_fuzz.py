"""Schemathesis over the whole OpenAPI surface, on seeded data, with every check schemathesis has (``--checks
all``) except the ones listed below with why, and schema-valid input refused only for a listed business reason.

Runs in-process against the ASGI app on the test's rolled-back transaction, with an admin key so every operation
is reachable. Bounded for CI: a fixed seed (``derandomize``), a few examples per operation, no shrinking, and a
generous per-request timeout so a loaded machine slows the run instead of failing it.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi import checks

from api.deps import get_session
from api.edge import RateLimit
from api.main import create_app
from tests.conftest import session_override
from tests.factories import make_member, make_order

APP = create_app()
# Hundreds of requests a second from one address: the rate limit would answer most of them (it has its own tests).
APP.user_middleware = [m for m in APP.user_middleware if m.cls is not RateLimit]
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)
# The hot routes (api/hot.py) run on their own psycopg pool, outside the test's rolled-back transaction: fuzzing them
# here would write committed rows. They are fuzzed for bad input and restart behaviour in their own tests.
HOT = {("POST", "/v1/orders"), ("GET", "/v1/members/{member_id}/points"), ("GET", "/v1/crm/members/lookup")}
for method, path in HOT:
    schema = schema.exclude(method=method, path=path)
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])

EXCLUDED_CHECKS = [
    checks.positive_data_acceptance,  # replaced by the check below, which lists the business refusals
    checks.ignored_auth,  # re-sends without the key: covered per route by tests/api/test_route_security.py
    checks.use_after_free, checks.ensure_resource_availability,  # stateful links: not declared by this API
    checks.object_level_authorization,  # needs two users' resources: tests/api/test_route_security.py
    # Starlette answers a 405 with the Allow header of the first route whose path matches; where two routers
    # serve one path (GET and POST /v1/members) it names only that route's methods.
    checks.allow_header_conformance,
    # A literal segment also matches a templated sibling: PATCH /v1/organisations/allocate reaches
    # PATCH /v1/organisations/{organisation_id}, which answers 422 for a non-integer id instead of 405.
    checks.unsupported_method,
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
    "wechat_not_configured",  # WeChat routes while no official account is configured
    "phone_taken",  # the phone already belongs to another member (409 names the holder)
    "unknown_member", "unknown_event", "invalid_member_code",  # ids and names that must exist or parse
    "invalid_family_link", "staff_required",  # a member linked to themselves; a team role for a non-staff id
    "invalid_month", "invalid_range",  # a month like 2026-13; a replay range whose end is before its start
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


@schema.parametrize()
@settings(max_examples=2, deadline=None, derandomize=True, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=list(HealthCheck))
def test_every_operation_passes_all_checks_on_seeded_data(case, seeded):
    headers, known = seeded
    if case.meta is not None and case.meta.generation.mode == GenerationMode.POSITIVE:
        for name, value in known.items():  # half the valid cases address seeded rows, not only 404s
            if name in (case.path_parameters or {}) and hash(str(case.path_parameters[name])) % 2 == 0:
                case.path_parameters[name] = value
    response = case.call(headers=headers, timeout=60)
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


def test_member_sequences_pass_all_checks_statefully(seeded):
    from hypothesis.stateful import run_state_machine_as_test

    headers, _ = seeded
    calls: list[tuple[str, str, int]] = []

    class Machine(STATEFUL.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case):
            # The admin key in place of any value generated for the declared ``authorization`` header parameter.
            kept = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
            case.headers = {**kept, **headers}
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
