"""Phone binding through WeChat's OAuth web flow, against the fake WeChat API on loopback."""

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlparse

import pytest
from sqlmodel import select

from api.deps import get_now
from domain.members.models import Member
from domain.settings import get_settings
from tests.factories import make_member
from tests.fakes.webhook_server import webhook_gateway
from tests.fakes.wechat_server import fake_wechat


@pytest.fixture
def sms(monkeypatch):
    """The SMS gateway on loopback: the codes people are sent arrive here."""
    with webhook_gateway([200]) as (url, gateway):
        monkeypatch.setattr(get_settings(), "webhook_urls", {"sms": url})
        yield gateway


@pytest.fixture
def oauth(monkeypatch, sms):
    with fake_wechat() as (base, fake):
        settings = get_settings()
        monkeypatch.setattr(settings, "wechat_app_id", "wxapp")
        monkeypatch.setattr(settings, "wechat_app_secret", "s3cret")
        monkeypatch.setattr(settings, "wechat_oauth_api_base_url", base.replace("cgi-bin/", ""))
        yield fake


def code_for(client, sms, state: str, phone: str) -> str:
    """Ask for an SMS code for ``phone`` and read it off the gateway, as the person reads their phone."""
    response = client.post("/wechat/oauth/code", json={"state": state, "phone": phone})
    assert response.status_code == 200, response.text
    assert "*" in response.json()["sent_to"]  # the page shows the phone masked
    return str(sms.received[-1]["body"]["variables"]["code"])


def bind(client, sms, state: str, phone: str):
    return client.post("/wechat/oauth/bind", json={"state": state, "phone": phone,
                                                   "code": code_for(client, sms, state, phone)})


def start(client) -> str:
    response = client.get("/wechat/oauth/start", follow_redirects=False)
    assert response.status_code == 302
    location = urlparse(response.headers["location"])
    assert location.netloc == "open.weixin.qq.com"
    return parse_qs(location.query)["state"][0]


def test_a_follower_binds_their_phone_to_their_existing_membership(app_client, session, oauth, sms):
    existing = make_member(session, phone="13800138000", name="Li")
    prospect = make_member(session, phone=None, wechat_openid="o-li", source_channel="wechat")
    oauth.oauth_codes["CODE1"] = ("o-li", "u-li")
    state = start(app_client)
    proved = app_client.get("/wechat/oauth/callback", params={"code": "CODE1", "state": state})
    assert proved.status_code == 200, proved.text
    bound = bind(app_client, sms, state, "+86 138 0013 8000")
    assert bound.status_code == 200 and bound.json()["member_id"] == existing.id
    assert sms.received[-1]["body"]["address"] == {"phone": "+8613800138000"}
    session.expire_all()
    assert (session.get(Member, existing.id).wechat_openid, session.get(Member, existing.id).wechat_unionid) == (
        "o-li", "u-li")
    assert session.get(Member, prospect.id).status == "closed"  # merged into the known member
    replay = app_client.post("/wechat/oauth/bind", json={"state": state, "phone": "13800138000", "code": "000000"})
    assert replay.status_code == 403  # a state binds once


def test_a_phone_bound_to_another_openid_is_a_conflict_not_an_overwrite(app_client, session, oauth, sms):
    make_member(session, phone="13800138001", wechat_openid="o-owner")
    oauth.oauth_codes["CODE2"] = ("o-intruder", "u-x")
    state = start(app_client)
    app_client.get("/wechat/oauth/callback", params={"code": "CODE2", "state": state})
    response = bind(app_client, sms, state, "13800138001")
    assert response.status_code == 409 and response.json()["error"]["code"] == "phone_bound_elsewhere"
    session.expire_all()
    assert session.exec(select(Member).where(Member.wechat_openid == "o-owner")).one().phone == "+8613800138001"


def test_a_forged_state_or_a_reused_code_is_refused(app_client, oauth):
    oauth.oauth_codes["CODE3"] = ("o-3", "u-3")
    forged = app_client.get("/wechat/oauth/callback", params={"code": "CODE3", "state": "not-a-real-state"})
    assert forged.status_code == 403 and forged.json()["error"]["code"] == "state_not_this_browser"
    app_client.cookies.set("loyalty_wechat_binding", "not-a-real-state", path="/wechat/oauth")
    forged = app_client.get("/wechat/oauth/callback", params={"code": "CODE3", "state": "not-a-real-state"})
    assert forged.status_code == 403 and forged.json()["error"]["code"] == "invalid_state"
    state = start(app_client)
    reused = app_client.get("/wechat/oauth/callback", params={"code": "CODE3", "state": state})
    assert reused.status_code == 403 and reused.json()["error"]["code"] == "oauth_code_refused"


def test_a_new_follower_without_a_membership_becomes_an_active_member(app_client, session, oauth, sms):
    oauth.oauth_codes["CODE4"] = ("o-new", "u-new")
    state = start(app_client)
    app_client.get("/wechat/oauth/callback", params={"code": "CODE4", "state": state})
    bound = bind(app_client, sms, state, "13800138009")
    assert bound.status_code == 200 and bound.json()["status"] == "active"


def test_without_wechat_credentials_binding_is_refused_without_calling_out(app_client):
    response = app_client.get("/wechat/oauth/callback", params={"code": "X", "state": "whatever-state"})
    assert response.status_code == 409 and response.json()["error"]["code"] == "wechat_not_configured"
    assert app_client.get("/wechat/oauth/start", follow_redirects=False).status_code == 409


def proved_state(client, oauth, openid: str) -> str:
    oauth.oauth_codes[f"C-{openid}"] = (openid, f"u-{openid}")
    state = start(client)
    assert client.get("/wechat/oauth/callback", params={"code": f"C-{openid}", "state": state}).status_code == 200
    return state


def test_without_the_sms_code_nobody_binds_a_phone_they_do_not_hold(app_client, session, oauth, sms):
    victim = make_member(session, phone="13800138020")
    state = proved_state(app_client, oauth, "o-guess")
    no_code = app_client.post("/wechat/oauth/bind", json={"state": state, "phone": "13800138020", "code": "123456"})
    assert no_code.status_code == 403 and no_code.json()["error"]["code"] == "code_required"
    real = code_for(app_client, sms, state, "13800138020")
    wrong = str((int(real) + 1) % 1_000_000).zfill(6)
    for left in (4, 3, 2, 1, 0):
        refused = app_client.post("/wechat/oauth/bind", json={"state": state, "phone": "13800138020", "code": wrong})
        assert refused.status_code == 403 and refused.json()["error"]["details"]["attempts_left"] == left
    locked = app_client.post("/wechat/oauth/bind", json={"state": state, "phone": "13800138020", "code": real})
    assert locked.status_code == 403 and locked.json()["error"]["code"] == "too_many_attempts"
    session.expire_all()
    assert session.get(Member, victim.id).wechat_openid is None


def test_a_code_binds_only_the_phone_it_was_sent_to_and_only_while_fresh(app_client, oauth, sms, monkeypatch):
    monkeypatch.setattr(get_settings(), "wechat_oauth_state_minutes", 30)  # the binding outlives its code
    state = proved_state(app_client, oauth, "o-swap")
    code = code_for(app_client, sms, state, "13800138021")
    other = app_client.post("/wechat/oauth/bind", json={"state": state, "phone": "13800138022", "code": code})
    assert other.status_code == 403 and other.json()["error"]["code"] == "wrong_code"
    later = datetime.now(UTC) + timedelta(minutes=11)
    app_client.app.dependency_overrides[get_now] = lambda: later
    expired = app_client.post("/wechat/oauth/bind", json={"state": state, "phone": "13800138021", "code": code})
    assert expired.status_code == 403 and expired.json()["error"]["code"] == "code_expired"


def test_codes_are_not_resent_within_a_minute_and_a_gateway_failure_leaves_no_trace(app_client, oauth, sms):
    state = proved_state(app_client, oauth, "o-impatient")
    sms.statuses[:] = [503]
    down = app_client.post("/wechat/oauth/code", json={"state": state, "phone": "13800138023"})
    assert down.status_code == 503 and down.json()["error"]["code"] == "sms_unavailable"
    sms.statuses[:] = [200]
    code_for(app_client, sms, state, "13800138023")  # asked again at once: the failed send counted for nothing
    again = app_client.post("/wechat/oauth/code", json={"state": state, "phone": "13800138023"})
    assert again.status_code == 429 and again.json()["error"]["code"] == "code_recently_sent"
    assert 0 < int(again.headers["Retry-After"]) <= 60
    assert app_client.post("/wechat/oauth/bind", json={"state": state, "phone": "13800138023", "code": "abc"}
                           ).status_code == 422
