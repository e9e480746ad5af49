"""Every /v1 route declares which credentials may call it, and answers each kind of credential as declared.

The routes are enumerated from the app, so a new route cannot forget: it must name a ``RouteAccess``
(``api.deps.allow``) or say why it is public (``api.deps.public``).
"""

import re

import pytest
from fastapi.routing import APIRoute

from api.main import ROUTERS
from domain.access.models import Scope
from domain.access.rules import CredentialKind, RouteAccess
from domain.clock import utcnow
from domain.staff.models import StaffRole
from tests.factories import make_api_key, make_member, make_staff, member_auth, staff_auth


def _declared(route: APIRoute) -> RouteAccess | str | None:
    """The route's RouteAccess, or the reason it is public, found among its dependencies (at any depth)."""
    stack = list(route.dependant.dependencies)
    while stack:
        dep = stack.pop()
        if hasattr(dep.call, "access"):
            return dep.call.access  # type: ignore[union-attr]
        if hasattr(dep.call, "public_because"):
            return dep.call.public_because  # type: ignore[union-attr]
        stack.extend(dep.dependencies)
    return None


# Every router the app serves (api.main.ROUTERS), flattened to (method, route).
V1_ROUTES = [(method, route) for router in ROUTERS for route in router.routes
             if isinstance(route, APIRoute) and route.path.startswith("/v1") for method in sorted(route.methods)]
GUARDED = [(m, r) for m, r in V1_ROUTES if isinstance(_declared(r), RouteAccess)]
IDS = [f"{m} {r.path}" for m, r in V1_ROUTES]

# Each kind of credential the API knows, as (kind, scope or role).
CREDENTIALS: list[tuple[CredentialKind, Scope | StaffRole | None]] = [
    *[(CredentialKind.API_KEY, scope) for scope in Scope],
    *[(CredentialKind.STAFF, role) for role in StaffRole],
    (CredentialKind.MEMBER, None),
]


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


def _headers(session, kind: CredentialKind, what: Scope | StaffRole | None) -> dict[str, str]:
    if kind == CredentialKind.API_KEY:
        assert what is not None
        return {"Authorization": f"Bearer {make_api_key(session, scope=what.value)[1]}"}
    if kind == CredentialKind.MEMBER:
        return member_auth(session, make_member(session))
    assert what is not None
    return staff_auth(session, make_staff(session, role=what.value))


def test_there_are_v1_routes_to_check():
    assert len(GUARDED) >= 30


@pytest.mark.parametrize(("method", "route"), V1_ROUTES, ids=IDS)
def test_every_v1_route_declares_who_may_call_it(method, route):
    assert _declared(route) is not None, f"{method} {route.path} declares neither allow(...) nor public(...)"


@pytest.mark.parametrize(("method", "route"), GUARDED, ids=[f"{m} {r.path}" for m, r in GUARDED])
def test_every_guarded_v1_route_refuses_a_missing_or_forged_credential(app_client, method, route):
    response = app_client.request(method, _concrete(route.path), json={})
    assert response.status_code == 401, (method, route.path, response.text)
    assert response.json()["error"]["code"] == "missing_api_key"
    forged = app_client.request(method, _concrete(route.path), json={},
                                headers={"Authorization": "Bearer eyJhbGciOiJub25lIn0.eyJhdWQiOiJzdGFmZiJ9."})
    assert forged.status_code == 401, (method, route.path, forged.text)


@pytest.mark.parametrize(("method", "route"), GUARDED, ids=[f"{m} {r.path}" for m, r in GUARDED])
def test_every_guarded_v1_route_answers_each_credential_as_declared(app_client, session, method, route):
    access = _declared(route)
    assert isinstance(access, RouteAccess)
    for kind, what in CREDENTIALS:
        admitted = access.admits(kind, scope=what if kind == CredentialKind.API_KEY else None,  # type: ignore[arg-type]
                                 role=what if kind == CredentialKind.STAFF else None)  # type: ignore[arg-type]
        response = app_client.request(method, _concrete(route.path), json={}, headers=_headers(session, kind, what))
        body = response.json() if response.headers.get("content-type", "").startswith("application/json") else None
        code = body.get("error", {}).get("code") if isinstance(body, dict) else None
        if admitted:
            assert response.status_code not in (401, 403) or code not in ("scope_forbidden", "missing_api_key"), (
                kind, what, method, route.path, response.text)
        else:
            assert (response.status_code, code) == (403, "scope_forbidden"), (kind, what, method, route.path,
                                                                              response.text)


def test_routes_where_a_person_must_act_refuse_even_an_admin_key():
    person_only = {f"{m} {r.path}" for m, r in GUARDED if not _declared(r).keys}  # type: ignore[union-attr]
    assert {"POST /v1/campaigns/{campaign_id}/approve", "POST /v1/crm/members/{member_id}/notes",
            "POST /v1/crm/members/{member_id}/call-outcomes",
            "POST /v1/crm/call-lists/{call_list_id}/next-lead"} <= person_only


def _admitted(kind: CredentialKind, scope: Scope) -> set[str]:
    return {f"{m} {r.path}" for m, r in GUARDED if _declared(r).admits(kind, scope=scope)}  # type: ignore[union-attr]


def test_a_pos_key_may_record_orders_and_refunds_and_nothing_else():
    # Redeeming a coupon at the till is part of the sale; its answer is the coupon, nothing personal.
    assert _admitted(CredentialKind.API_KEY, Scope.POS) == {"POST /v1/orders", "POST /v1/orders/{order_id}/refunds",
                                                            "POST /v1/members/{member_id}/coupons/{code}/redemption"}


def test_an_app_key_neither_reads_nor_changes_a_member_by_id():
    """An app acts for one member only through that member's session (``/v1/me``, token exchange); by id it may
    only enrol, record its sales and ask for touches or report interest clues (nothing personal answered)."""
    by_id = {route for route in _admitted(CredentialKind.API_KEY, Scope.APP) if "{member_id}" in route}
    assert by_id == {"GET /v1/members/{member_id}/contact-eligibility", "POST /v1/members/{member_id}/contacts",
                     "POST /v1/members/{member_id}/interests", "POST /v1/members/{member_id}/coupons/{code}/redemption"}
    assert "GET /v1/members/lookup" not in _admitted(CredentialKind.API_KEY, Scope.APP)


def test_a_pos_key_is_refused_a_member_read_over_http(app_client, session):
    member = make_member(session)
    pos = {"Authorization": f"Bearer {make_api_key(session, scope='pos')[1]}"}
    for path in (f"/v1/members/{member.id}", f"/v1/members/lookup?phone={member.phone}",
                 f"/v1/members/{member.id}/points", f"/v1/crm/members/lookup?phone={member.phone}"):
        response = app_client.get(path, headers=pos)
        assert (response.status_code, response.json()["error"]["code"]) == (403, "scope_forbidden"), path
    order = app_client.post("/v1/orders", headers=pos, json={
        "order_id": "TILL-1", "member_id": member.id, "amount_fen": 1_000, "channel": "store",
        "occurred_at": utcnow().isoformat()})
    assert order.status_code == 201, order.text


def test_the_only_public_v1_routes_are_logins_and_refresh():
    assert sorted(f"{m} {r.path}" for m, r in V1_ROUTES if isinstance(_declared(r), str)) == [
        "POST /v1/me/sessions/refresh", "POST /v1/me/sessions/sms", "POST /v1/me/sessions/sms-code",
        "POST /v1/staff/sessions"]


# Routes outside /v1 and the credential kind each takes. A new one must be added here, on purpose.
OTHER_ROUTE_CREDENTIALS = {
    "/healthz": "none",  # liveness: says nothing but "ok"
    "/readyz": "none",  # readiness: database reachable and at head, nothing more
    "/metrics": "metrics_token",  # LOYALTY_METRICS_TOKEN, never an API key (docs/operations.md)
    "/wechat/callback": "wechat_signature",
    "/wechat/oauth/start": "wechat_oauth_state",
    "/wechat/oauth/callback": "wechat_oauth_state",
    "/wechat/oauth/code": "wechat_oauth_state",
    "/wechat/oauth/bind": "wechat_oauth_state",
    "/wechat/oauth/page": "wechat_oauth_state",  # the binding page and its forms: the state in its cookie
}
OTHER_ROUTES = [route for router in ROUTERS for route in router.routes
                if isinstance(route, APIRoute) and not route.path.startswith("/v1")]


def test_every_route_outside_v1_declares_its_credential_kind():
    assert {route.path for route in OTHER_ROUTES} == set(OTHER_ROUTE_CREDENTIALS)
    for route in OTHER_ROUTES:
        kinds = {getattr(dep.call, "credential_kind", None) for dep in route.dependant.dependencies} - {None}
        expected = OTHER_ROUTE_CREDENTIALS[route.path]
        if expected == "metrics_token":
            assert kinds == {"metrics_token"}, route.path
