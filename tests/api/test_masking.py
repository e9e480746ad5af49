"""A caller without the PII right never receives a member's full phone or email, from any route.

GET routes are enumerated from the app; write routes that answer with a member are listed, and a guard
checks that every route whose response schema has a phone or email is among them."""

import json
import re

import pytest
from fastapi.routing import APIRoute

from api.main import ROUTERS
from tests.factories import make_api_key

PHONE_DIGITS = "13800138077"
EMAIL = "wang.fang@example.com"

ROUTES = [(m, r) for router in ROUTERS for r in router.routes if isinstance(r, APIRoute) and r.path.startswith("/v1")
          for m in sorted(r.methods)]
GETS = [(m, r.path) for m, r in ROUTES if m == "GET"]
WRITES = {  # write routes that answer with the member, and a body that succeeds
    ("POST", "/v1/members"): {"source_channel": "store", "phone": "13800138078", "email": "new.one@example.com"},
    ("PATCH", "/v1/members/{member_id}"): {"city": "Hangzhou"},
    ("POST", "/v1/members/{member_id}/close"): {"reason": "asked"},
}


def _schema_mentions_contact(route: APIRoute) -> bool:
    if route.response_model is None or not hasattr(route.response_model, "model_json_schema"):
        return False
    return bool(re.search(r'"(phone|email)"', json.dumps(route.response_model.model_json_schema())))


def test_every_route_answering_with_a_phone_or_email_is_checked_here():
    # /v1/me routes admit only the member themselves (tests/api/test_me_api.py), who sees their own data.
    unchecked = [(m, r.path) for m, r in ROUTES if m != "GET" and _schema_mentions_contact(r)
                 and (m, r.path) not in WRITES and not (r.path == "/v1/me" or r.path.startswith("/v1/me/"))]
    assert unchecked == []


@pytest.fixture
def member(app_client, app_headers):
    created = app_client.post("/v1/members", headers=app_headers, json={
        "source_channel": "store", "phone": PHONE_DIGITS, "email": EMAIL, "name": "Wang Fang",
        "consents": {"phone": True, "sms": True}})
    assert created.status_code == 201
    return created.json()


@pytest.fixture(params=["agent", "crm_key"])
def no_pii(request, session, crm_headers):
    if request.param == "agent":
        return crm_headers
    return {"Authorization": f"Bearer {make_api_key(session, scope='crm')[1]}"}


def _fill(path: str, member_id: int) -> str:
    return re.sub(r"\{[^}]+\}", "1", path.replace("{member_id}", str(member_id)))


def _assert_masked(response, where):
    assert PHONE_DIGITS not in response.text and EMAIL not in response.text, (where, response.text)
    assert "new.one@example.com" not in response.text and "13800138078" not in response.text, (where, response.text)


@pytest.mark.parametrize(("method", "path"), GETS, ids=[f"{m} {p}" for m, p in GETS])
def test_no_get_route_shows_a_full_phone_or_email_without_the_pii_right(app_client, member, no_pii, method, path):
    response = app_client.get(_fill(path, member["id"]), headers=no_pii,
                              params={"phone": PHONE_DIGITS, "channel": "sms", "purpose": "marketing"})
    _assert_masked(response, path)


@pytest.mark.parametrize(("method", "path"), list(WRITES), ids=[f"{m} {p}" for m, p in WRITES])
def test_no_write_route_shows_a_full_phone_or_email_without_the_pii_right(app_client, member, no_pii, method, path):
    response = app_client.request(method, _fill(path, member["id"]), headers=no_pii, json=WRITES[(method, path)])
    assert response.status_code in (200, 201), response.text
    _assert_masked(response, path)


def test_the_lookups_mask_for_agents_and_show_for_the_pii_right(app_client, member, crm_headers, staff_headers):
    masked = app_client.get("/v1/members/lookup", params={"phone": PHONE_DIGITS}, headers=crm_headers).json()
    assert (masked["phone"], masked["email"]) == ("+86138****8077", "w***@example.com")
    picture = app_client.get("/v1/crm/members/lookup", params={"phone": PHONE_DIGITS}, headers=crm_headers).json()
    assert (picture["member"]["phone"], picture["member"]["email"]) == ("+86138****8077", "w***@example.com")
    pii = staff_headers("supervisor", pii_access=True)
    shown = app_client.get(f"/v1/members/{member['id']}", headers=pii).json()
    assert (shown["phone"], shown["email"]) == ("+86" + PHONE_DIGITS, EMAIL)
