"""Member sessions and /v1/me: a member reads and changes only their own record; every /v1/me route refuses
a missing, an expired, a revoked and a non-member credential, and another member's token reaches only that
other member."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.routing import APIRoute

from api.deps import get_now
from api.main import ROUTERS
from domain.points import service as points
from domain.settings import get_settings
from tests.factories import make_member, make_order, make_staff, staff_auth

NOW = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)
ME_ROUTES = [(m, r.path) for router in ROUTERS for r in router.routes if isinstance(r, APIRoute)
             and (r.path == "/v1/me" or r.path.startswith("/v1/me/")) and "/sessions/" not in r.path
             for m in sorted(r.methods)]
BODIES = {("PATCH", "/v1/me"): {"city": "Suzhou"},
          ("PUT", "/v1/me/contact-preferences"): {"preferred_channel": "wechat", "consents": {"sms": False}},
          ("PUT", "/v1/me/consents/{channel}"): {"granted": False},
          ("POST", "/v1/me/redemptions"): {"redemption_id": "r-1", "points": 10, "reason": "coffee"}}


def at(client, when):
    client.app.dependency_overrides[get_now] = lambda: when


def _path(path):
    return re.sub(r"\{channel\}", "sms", path)


def sign_in(client, app_headers, member_id):
    response = client.post("/v1/me/sessions/exchange", headers=app_headers, json={"member_id": member_id})
    assert response.status_code == 201, response.text
    return response.json()


def bearer(tokens):
    return {"Authorization": f"Bearer {tokens['access_token']}"}


@pytest.fixture
def two_members(session):
    a = make_member(session, phone="+8613900000001", name="A", email="a@example.com", now=NOW - timedelta(days=60))
    b = make_member(session, phone="+8613900000002", name="B", email="b@example.com", now=NOW - timedelta(days=60))
    make_order(session, member_id=a.id, amount_fen=50_000, occurred_at=NOW - timedelta(days=30), now=NOW)
    make_order(session, member_id=b.id, amount_fen=50_000, occurred_at=NOW - timedelta(days=30), now=NOW)
    for m in (a, b):  # available at once (the orders' points stay pending until the release job)
        points.adjust_points(session, member_id=m.id, adjustment_id=f"welcome-{m.id}", points=500, reason="welcome",
                             actor="tests", now=NOW - timedelta(days=1))
    session.commit()
    return a, b


def test_there_are_me_routes():
    assert len(ME_ROUTES) >= 11 and set(BODIES) <= set(ME_ROUTES)


def test_an_app_server_exchanges_for_a_member_session_and_the_member_sees_their_own_record(
        app_client, app_headers, two_members):
    at(app_client, NOW)
    a, _ = two_members
    tokens = sign_in(app_client, app_headers, a.id)
    assert datetime.fromisoformat(tokens["expires_at"]) == NOW + timedelta(minutes=get_settings().member_token_minutes)
    me = app_client.get("/v1/me", headers=bearer(tokens)).json()
    assert (me["id"], me["phone"], me["email"]) == (a.id, "+8613900000001", "a@example.com")
    assert app_client.get("/v1/me/points", headers=bearer(tokens)).json()["pending"] == 500


def test_only_an_app_key_may_exchange(app_client, crm_key_headers, crm_headers, two_members):
    a, _ = two_members
    for headers in (crm_key_headers, crm_headers):
        refused = app_client.post("/v1/me/sessions/exchange", headers=headers, json={"member_id": a.id})
        assert refused.status_code == 403


@pytest.mark.parametrize(("method", "path"), ME_ROUTES, ids=[f"{m} {p}" for m, p in ME_ROUTES])
def test_every_me_route_reaches_only_the_tokens_own_member(app_client, app_headers, session, two_members, method,
                                                           path):
    at(app_client, NOW)
    a, b = two_members
    before = app_client.get("/v1/me", headers=bearer(sign_in(app_client, app_headers, a.id))).json()
    as_b = bearer(sign_in(app_client, app_headers, b.id))
    response = app_client.request(method, _path(path), headers=as_b, json=BODIES.get((method, path)))
    assert response.status_code in (200, 201), response.text
    assert "+8613900000001" not in response.text and "a@example.com" not in response.text
    after = app_client.get("/v1/me", headers=bearer(sign_in(app_client, app_headers, a.id))).json()
    assert after == before  # A's record is untouched by anything B's token did


@pytest.mark.parametrize(("method", "path"), ME_ROUTES, ids=[f"{m} {p}" for m, p in ME_ROUTES])
def test_every_me_route_refuses_missing_expired_revoked_and_non_member_credentials(
        app_client, app_headers, session, two_members, method, path):
    a, _ = two_members
    at(app_client, NOW)
    tokens = sign_in(app_client, app_headers, a.id)
    body = BODIES.get((method, path))
    assert app_client.request(method, _path(path), json=body).status_code == 401
    for other in (app_headers, staff_auth(session, make_staff(session, role="supervisor", pii_access=True))):
        refused = app_client.request(method, _path(path), headers=other, json=body)
        assert refused.status_code == 403, refused.text
    at(app_client, NOW + timedelta(minutes=get_settings().member_token_minutes, seconds=1))
    expired = app_client.request(method, _path(path), headers=bearer(tokens), json=body)
    assert expired.status_code == 401 and expired.json()["error"]["code"] == "token_expired"
    at(app_client, NOW)
    assert app_client.delete("/v1/me/sessions/current", headers=bearer(tokens)).status_code == 204
    revoked = app_client.request(method, _path(path), headers=bearer(tokens), json=body)
    assert revoked.status_code == 401 and revoked.json()["error"]["code"] == "session_revoked"


def test_refresh_rotates_and_a_reused_refresh_token_ends_the_login(app_client, app_headers, two_members):
    a, _ = two_members
    at(app_client, NOW)
    first = sign_in(app_client, app_headers, a.id)
    at(app_client, NOW + timedelta(minutes=10))
    second = app_client.post("/v1/me/sessions/refresh", json={"refresh_token": first["refresh_token"]})
    assert second.status_code == 200 and second.json()["refresh_token"] != first["refresh_token"]
    assert app_client.get("/v1/me", headers=bearer(second.json())).status_code == 200
    stolen = app_client.post("/v1/me/sessions/refresh", json={"refresh_token": first["refresh_token"]})
    assert stolen.status_code == 401 and stolen.json()["error"]["code"] == "refresh_reused"
    ended = app_client.get("/v1/me", headers=bearer(second.json()))
    assert ended.status_code == 401 and ended.json()["error"]["code"] == "session_revoked"
    again = app_client.post("/v1/me/sessions/refresh", json={"refresh_token": second.json()["refresh_token"]})
    assert again.status_code == 401
    assert app_client.post("/v1/me/sessions/refresh", json={"refresh_token": "x" * 40}).status_code == 401


def test_a_members_redemption_ids_are_their_own(app_client, app_headers, two_members):
    at(app_client, NOW)
    a, b = two_members
    body = {"redemption_id": "cafe-1", "points": 100, "reason": "coffee"}
    as_a, as_b = bearer(sign_in(app_client, app_headers, a.id)), bearer(sign_in(app_client, app_headers, b.id))
    first = app_client.post("/v1/me/redemptions", headers=as_a, json=body)
    assert first.status_code == 201 and first.json()["redemption_id"] == "cafe-1"
    assert app_client.post("/v1/me/redemptions", headers=as_a, json=body).status_code == 200  # a replay
    other = app_client.post("/v1/me/redemptions", headers=as_b, json=body)  # B cannot pre-empt or replay A's
    assert other.status_code == 201 and other.json()["member_id"] == b.id
    assert app_client.get("/v1/me/points", headers=as_a).json()["available"] == 400


def test_a_member_changes_their_profile_and_preferences_but_not_their_phone_or_tags(app_client, app_headers,
                                                                                   two_members):
    a, _ = two_members
    at(app_client, NOW)
    as_a = bearer(sign_in(app_client, app_headers, a.id))
    assert app_client.patch("/v1/me", headers=as_a, json={"phone": "+8613900000009"}).status_code == 422
    assert app_client.patch("/v1/me", headers=as_a, json={"tags": ["vip"]}).status_code == 422
    prefs = app_client.put("/v1/me/contact-preferences", headers=as_a,
                           json={"preferred_channel": "wechat", "consents": {"sms": False}}).json()
    assert prefs["preferred_channel"] == "wechat" and prefs["consents"]["sms"] == "opted_out"
