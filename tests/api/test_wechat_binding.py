"""Phone binding through WeChat's OAuth web flow, against the fake WeChat API on loopback."""

from urllib.parse import parse_qs, urlparse

import pytest
from sqlmodel import select

from domain.members.models import Member
from domain.settings import get_settings
from tests.factories import make_member
from tests.fakes.wechat_server import fake_wechat


@pytest.fixture
def oauth(monkeypatch):
    with fake_wechat() as (base, fake):
        settings = get_settings()
        monkeypatch.setattr(settings, "wechat_app_id", "wxapp")
        monkeypatch.setattr(settings, "wechat_app_secret", "s3cret")
        monkeypatch.setattr(settings, "wechat_oauth_api_base_url", base.replace("cgi-bin/", ""))
        yield fake


def start(client) -> str:
    response = client.get("/wechat/oauth/start", follow_redirects=False)
    assert response.status_code == 302
    location = urlparse(response.headers["location"])
    assert location.netloc == "open.weixin.qq.com"
    return parse_qs(location.query)["state"][0]


def test_a_follower_binds_their_phone_to_their_existing_membership(app_client, session, oauth):
    existing = make_member(session, phone="13800138000", name="Li")
    prospect = make_member(session, phone=None, wechat_openid="o-li", source_channel="wechat")
    oauth.oauth_codes["CODE1"] = ("o-li", "u-li")
    state = start(app_client)
    proved = app_client.get("/wechat/oauth/callback", params={"code": "CODE1", "state": state})
    assert proved.status_code == 200, proved.text
    bound = app_client.post("/wechat/oauth/bind", json={"state": state, "phone": "+86 138 0013 8000"})
    assert bound.status_code == 200 and bound.json()["member_id"] == existing.id
    session.expire_all()
    assert (session.get(Member, existing.id).wechat_openid, session.get(Member, existing.id).wechat_unionid) == (
        "o-li", "u-li")
    assert session.get(Member, prospect.id).status == "closed"  # merged into the known member
    replay = app_client.post("/wechat/oauth/bind", json={"state": state, "phone": "13800138000"})
    assert replay.status_code == 403  # a state binds once


def test_a_phone_bound_to_another_openid_is_a_conflict_not_an_overwrite(app_client, session, oauth):
    make_member(session, phone="13800138001", wechat_openid="o-owner")
    oauth.oauth_codes["CODE2"] = ("o-intruder", "u-x")
    state = start(app_client)
    app_client.get("/wechat/oauth/callback", params={"code": "CODE2", "state": state})
    response = app_client.post("/wechat/oauth/bind", json={"state": state, "phone": "13800138001"})
    assert response.status_code == 409 and response.json()["error"]["code"] == "phone_bound_elsewhere"
    session.expire_all()
    assert session.exec(select(Member).where(Member.wechat_openid == "o-owner")).one().phone == "+8613800138001"


def test_a_forged_state_or_a_reused_code_is_refused(app_client, oauth):
    oauth.oauth_codes["CODE3"] = ("o-3", "u-3")
    forged = app_client.get("/wechat/oauth/callback", params={"code": "CODE3", "state": "not-a-real-state"})
    assert forged.status_code == 403 and forged.json()["error"]["code"] == "invalid_state"
    state = start(app_client)
    reused = app_client.get("/wechat/oauth/callback", params={"code": "CODE3", "state": state})
    assert reused.status_code == 403 and reused.json()["error"]["code"] == "oauth_code_refused"


def test_a_new_follower_without_a_membership_becomes_an_active_member(app_client, session, oauth):
    oauth.oauth_codes["CODE4"] = ("o-new", "u-new")
    state = start(app_client)
    app_client.get("/wechat/oauth/callback", params={"code": "CODE4", "state": state})
    bound = app_client.post("/wechat/oauth/bind", json={"state": state, "phone": "13800138009"})
    assert bound.status_code == 200 and bound.json()["status"] == "active"


def test_without_wechat_credentials_binding_is_refused_without_calling_out(app_client):
    response = app_client.get("/wechat/oauth/callback", params={"code": "X", "state": "whatever-state"})
    assert response.status_code == 409 and response.json()["error"]["code"] == "wechat_not_configured"
    assert app_client.get("/wechat/oauth/start", follow_redirects=False).status_code == 409
