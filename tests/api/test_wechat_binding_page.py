"""The WeChat phone binding as a mobile page: OAuth → page → SMS code → bound, signed in (a member session).

Real HTTP through the app (cookies kept by the client as a browser keeps them), the fake WeChat API and the
fake SMS gateway on loopback."""

import json
import re

from fastapi.testclient import TestClient

from domain.members.models import Member
from tests.api.test_wechat_binding import oauth, sms, start  # noqa: F401 - fixtures
from tests.factories import make_member


def _form(client, state: str, **fields: str):
    return client.post("/wechat/oauth/page", data={"state": state, **fields})


def _session_on(page: str) -> dict:
    found = re.search(r'<script type="application/json" id="member-session">(.*?)</script>', page, re.S)
    assert found, page
    return json.loads(found.group(1))


def test_the_binding_ends_on_a_page_that_signs_the_member_in(app_client, session, oauth, sms):  # noqa: F811
    member = make_member(session, phone="13800138070", name="Wang")
    oauth.oauth_codes["PAGE-1"] = ("o-page", "u-page")
    state = start(app_client)
    back = app_client.get("/wechat/oauth/callback", params={"code": "PAGE-1", "state": state}, follow_redirects=False)
    assert back.status_code == 303 and back.headers["location"] == "/wechat/oauth/page"

    page = app_client.get("/wechat/oauth/page")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert f'name="state" value="{state}"' in page.text and 'id="code-form"' in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    assert not re.search(r'(src|href)="(https?:)?//', page.text)  # nothing from a CDN or any other host

    sent = _form(app_client, state, action="code", phone="138 0013 8070")
    assert sent.status_code == 200, sent.text
    assert "+86138****8070" in sent.text and 'id="bind-form"' in sent.text
    code = str(sms.received[-1]["body"]["variables"]["code"])
    assert sms.received[-1]["body"]["address"] == {"phone": "+8613800138070"}

    wrong = _form(app_client, state, action="bind", phone="+8613800138070", code="000000" if code != "000000" else "1")
    assert wrong.status_code == 403 and 'id="error"' in wrong.text and "does not match" in wrong.text

    bound = _form(app_client, state, action="bind", phone="+8613800138070", code=code)
    assert bound.status_code == 200, bound.text
    assert 'id="bound"' in bound.text and "+86138****8070" in bound.text and "13800138070" not in bound.text
    assert bound.headers["cache-control"] == "no-store"
    assert 'loyalty_wechat_binding=""' in bound.headers["set-cookie"]  # the binding's cookie is cleared
    signed_in = _session_on(bound.text)
    assert signed_in["member_id"] == member.id

    me = app_client.get("/v1/me", headers={"Authorization": f"Bearer {signed_in['access_token']}"})
    assert me.status_code == 200 and me.json()["id"] == member.id and me.json()["wechat_openid"] == "o-page"
    session.expire_all()
    assert session.get(Member, member.id).wechat_openid == "o-page"
    refreshed = app_client.post("/v1/me/sessions/refresh", json={"refresh_token": signed_in["refresh_token"]})
    assert refreshed.status_code == 200


def test_the_page_refuses_another_browser_and_a_visit_without_a_binding(app_client, oauth, sms):  # noqa: F811
    oauth.oauth_codes["PAGE-2"] = ("o-page-2", None)
    state = start(app_client)
    assert app_client.get("/wechat/oauth/callback", params={"code": "PAGE-2", "state": state}).status_code == 200
    other_browser = TestClient(app_client.app, raise_server_exceptions=False)
    lured = _form(other_browser, state, action="code", phone="13800138071")
    assert lured.status_code == 403 and "another browser" in lured.text
    assert sms.received == []
    bare = other_browser.get("/wechat/oauth/page")
    assert bare.status_code == 403 and 'href="/wechat/oauth/start"' in bare.text
    bad = _form(app_client, state, action="code", phone="12345")
    assert bad.status_code == 422 and 'id="error"' in bad.text


def test_the_json_binding_also_ends_in_a_member_session(app_client, session, oauth, sms):  # noqa: F811
    member = make_member(session, phone="13800138072")
    oauth.oauth_codes["PAGE-3"] = ("o-page-3", None)
    state = start(app_client)
    app_client.get("/wechat/oauth/callback", params={"code": "PAGE-3", "state": state})
    assert app_client.post("/wechat/oauth/code", json={"state": state, "phone": "13800138072"}).status_code == 200
    code = str(sms.received[-1]["body"]["variables"]["code"])
    bound = app_client.post("/wechat/oauth/bind", json={"state": state, "phone": "13800138072", "code": code})
    assert bound.status_code == 200 and bound.json()["member_id"] == member.id
    token = bound.json()["session"]["access_token"]
    assert app_client.get("/v1/me/points", headers={"Authorization": f"Bearer {token}"}).status_code == 200
