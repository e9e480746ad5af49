"""Staff are people: login, throttled guessing, logout, disabled accounts, expired tokens, key rotation,
four-eyes by staff identity, and leads worked only by the agent holding them."""

from datetime import UTC, datetime, timedelta

import pytest

from api.deps import get_now
from domain.crm import service as crm
from domain.members.models import ContactChannel
from domain.settings import get_settings
from domain.staff import service as staff
from tests.factories import TEST_PASSWORD, make_member, make_staff, staff_auth

NOW = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)


def at(client, when):
    client.app.dependency_overrides[get_now] = lambda: when


def login(client, username, password=TEST_PASSWORD):
    return client.post("/v1/staff/sessions", json={"username": username, "password": password})


def bearer(response):
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def test_a_person_logs_in_and_the_token_says_who_they_are(app_client, session):
    at(app_client, NOW)
    make_staff(session, role="supervisor", username="wang.li", pii_access=True)
    response = login(app_client, "Wang.Li")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["token_type"] == "bearer" and body["staff"]["username"] == "wang.li"
    assert datetime.fromisoformat(body["expires_at"]) == NOW + timedelta(minutes=get_settings().staff_token_minutes)
    me = app_client.get("/v1/staff/sessions/current", headers=bearer(response))
    assert me.status_code == 200 and (me.json()["role"], me.json()["pii_access"]) == ("supervisor", True)


def test_a_wrong_password_and_an_unknown_name_answer_alike(app_client, session):
    make_staff(session, username="li.na")
    wrong, unknown = login(app_client, "li.na", "not the password"), login(app_client, "nobody", "whatever-long")
    assert (wrong.status_code, unknown.status_code) == (401, 401)
    same = ("code", "message", "details")  # everything but the request id
    assert [wrong.json()["error"][k] for k in same] == [unknown.json()["error"][k] for k in same]


def test_repeated_wrong_passwords_throttle_the_account_until_the_lock_passes(app_client, session):
    at(app_client, NOW)
    make_staff(session, username="target")
    settings = get_settings()
    for _ in range(settings.staff_login_max_failures):
        assert login(app_client, "target", "guess-guess-guess").status_code == 401
    throttled = login(app_client, "target")  # even the right password waits
    assert throttled.status_code == 429 and throttled.json()["error"]["code"] == "login_throttled"
    assert 0 < int(throttled.headers["Retry-After"]) <= settings.staff_login_lock_minutes * 60 + 1
    at(app_client, NOW + timedelta(minutes=settings.staff_login_lock_minutes, seconds=1))
    assert login(app_client, "target").status_code == 201
    assert login(app_client, "target", "guess-guess-guess").status_code == 401  # the count starts again
    assert login(app_client, "target").status_code == 201


def test_logout_ends_the_session_and_refresh_extends_it(app_client, session):
    at(app_client, NOW)
    make_staff(session, username="zhao")
    headers = bearer(login(app_client, "zhao"))
    later = NOW + timedelta(minutes=20)
    at(app_client, later)
    refreshed = app_client.post("/v1/staff/sessions/current/refresh", headers=headers)
    assert datetime.fromisoformat(refreshed.json()["expires_at"]) > NOW + timedelta(minutes=30)
    assert app_client.delete("/v1/staff/sessions/current", headers=bearer(refreshed)).status_code == 204
    for token in (headers, bearer(refreshed)):  # every token of that login stops at once
        gone = app_client.get("/v1/staff/sessions/current", headers=token)
        assert gone.status_code == 401 and gone.json()["error"]["code"] == "session_revoked"


def test_an_expired_token_and_a_disabled_account_are_refused(app_client, session):
    at(app_client, NOW)
    make_staff(session, username="sun")
    headers = bearer(login(app_client, "sun"))
    at(app_client, NOW + timedelta(minutes=get_settings().staff_token_minutes, seconds=1))
    expired = app_client.get("/v1/staff/sessions/current", headers=headers)
    assert expired.status_code == 401 and expired.json()["error"]["code"] == "token_expired"
    at(app_client, NOW)
    staff.disable_staff(session, username="sun", now=NOW)
    session.commit()
    assert app_client.get("/v1/staff/sessions/current", headers=headers).status_code == 401
    assert login(app_client, "sun").status_code == 401


def test_signing_keys_rotate_without_logging_anyone_out(app_client, session, monkeypatch):
    old, new = "k2026a", "k2026b"
    secrets_ = {old: "a" * 40, new: "b" * 40}
    monkeypatch.setenv("LOYALTY_TOKEN_KEYS", f'{{"{old}": "{secrets_[old]}"}}')
    get_settings.cache_clear()
    try:
        at(app_client, NOW)
        make_staff(session, username="qian")
        signed_by_old = bearer(login(app_client, "qian"))
        monkeypatch.setenv("LOYALTY_TOKEN_KEYS", f'{{"{old}": "{secrets_[old]}", "{new}": "{secrets_[new]}"}}')
        monkeypatch.setenv("LOYALTY_TOKEN_SIGNING_KID", new)
        get_settings.cache_clear()
        assert app_client.get("/v1/staff/sessions/current", headers=signed_by_old).status_code == 200
        signed_by_new = bearer(login(app_client, "qian"))
        monkeypatch.setenv("LOYALTY_TOKEN_KEYS", f'{{"{new}": "{secrets_[new]}"}}')
        get_settings.cache_clear()
        assert app_client.get("/v1/staff/sessions/current", headers=signed_by_new).status_code == 200
        dropped = app_client.get("/v1/staff/sessions/current", headers=signed_by_old)
        assert dropped.status_code == 401 and dropped.json()["error"]["code"] == "invalid_token"
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()


def test_four_eyes_compares_two_staff_identities_and_a_key_cannot_approve(app_client, session, admin_headers):
    at(app_client, NOW)
    author = staff_auth(session, make_staff(session, role="marketer", username="author"), now=NOW)
    second = staff_auth(session, make_staff(session, role="supervisor", username="second"), now=NOW)
    created = app_client.post("/v1/campaigns", headers=author, json={
        "name": "spring", "channel": "sms", "template": "first_offer"})
    assert created.status_code == 201, created.text
    approve = f"/v1/campaigns/{created.json()['id']}/approve"
    own = app_client.post(approve, headers=author)
    assert own.status_code == 409 and own.json()["error"]["code"] == "self_approval"
    by_key = app_client.post(approve, headers={**admin_headers, "X-Agent-Id": "second"})
    assert by_key.status_code == 403 and by_key.json()["error"]["code"] == "scope_forbidden"
    ok = app_client.post(approve, headers=second)
    assert ok.status_code == 200 and ok.json()["approved_by"] == "staff:second"


@pytest.fixture
def held_lead(session):
    make_member(session, now=NOW - timedelta(days=200), consents={ContactChannel.PHONE: True})
    call_list = crm.create_call_list(session, name="l", product="p", purpose="marketing", audience={}, weights={},
                                     interest_days=30, recall_hours=48, agent_capacity=20, now=NOW)
    crm.extract_leads(session, call_list_id=call_list.id, now=NOW)
    lead = crm.next_lead(session, call_list_id=call_list.id, agent_id="holder", now=NOW)
    session.commit()
    return lead


def test_a_leads_outcome_is_recorded_by_the_agent_holding_it_or_a_supervisor(app_client, session, held_lead):
    at(app_client, NOW)
    holder = staff_auth(session, make_staff(session, role="agent", username="holder"), now=NOW)
    other = staff_auth(session, make_staff(session, role="agent", username="other"), now=NOW)
    boss = staff_auth(session, make_staff(session, role="supervisor", username="boss"), now=NOW)
    url = f"/v1/crm/members/{held_lead.member_id}/call-outcomes"
    body = {"outcome": "no_answer", "lead_id": held_lead.id}
    refused = app_client.post(url, headers=other, json=body)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "lead_not_yours"
    assert app_client.post(url, headers=holder, json=body).status_code == 201
    by_boss = app_client.post(url, headers=boss, json={**body, "outcome": "reached"})
    assert by_boss.status_code == 201 and by_boss.json()["agent_id"] == "boss"
