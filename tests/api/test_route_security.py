"""Every /v1 route refuses a missing key and a key of the wrong scope.

The routes are enumerated from the app, so a new route cannot forget its scope.
"""

import re

import pytest
from fastapi.routing import APIRoute

from api.main import ROUTERS
from domain.access.models import Scope
from tests.factories import make_api_key


def _required_scopes(route: APIRoute) -> frozenset[Scope] | None:
    found = [getattr(dep.call, "required_scopes", None) for dep in route.dependant.dependencies
             for dep in [dep, *dep.dependencies]]
    scopes = [s for s in found if s is not None]
    return scopes[0] if scopes else None


# Every router the app serves (api.main.ROUTERS), flattened to (method, route).
V1_ROUTES = [(method, route) for router in ROUTERS for route in router.routes
             if isinstance(route, APIRoute) and route.path.startswith("/v1") for method in sorted(route.methods)]


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


def test_there_are_v1_routes_to_check():
    assert len(V1_ROUTES) >= 5


@pytest.mark.parametrize(("method", "route"), V1_ROUTES, ids=[f"{m} {r.path}" for m, r in V1_ROUTES])
def test_every_v1_route_declares_a_scope(method, route):
    assert _required_scopes(route) is not None, f"{method} {route.path} has no scope dependency"


@pytest.mark.parametrize(("method", "route"), V1_ROUTES, ids=[f"{m} {r.path}" for m, r in V1_ROUTES])
def test_every_v1_route_refuses_a_missing_key(app_client, method, route):
    response = app_client.request(method, _concrete(route.path), json={})
    assert response.status_code == 401, (method, route.path, response.text)
    assert response.json()["error"]["code"] == "missing_api_key"


WRONG_SCOPE_CASES = [(method, route, scope) for method, route in V1_ROUTES for scope in (Scope.APP, Scope.CRM)
                     if scope not in (_required_scopes(route) or frozenset())]


def test_admin_only_routes_exist_to_refuse_other_scopes():
    assert any(scope == Scope.CRM for _, _, scope in WRONG_SCOPE_CASES)


@pytest.mark.parametrize(("method", "route", "scope"), WRONG_SCOPE_CASES,
                         ids=[f"{m} {r.path} as {s}" for m, r, s in WRONG_SCOPE_CASES])
def test_every_v1_route_refuses_a_key_of_the_wrong_scope(app_client, session, method, route, scope):
    _, key = make_api_key(session, scope=scope.value)
    response = app_client.request(method, _concrete(route.path), json={}, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 403, (scope, method, route.path, response.text)
    assert response.json()["error"]["code"] == "scope_forbidden"
