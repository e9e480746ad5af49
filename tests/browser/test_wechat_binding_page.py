"""The WeChat phone binding in Debian's Chromium, on a phone-sized screen: the follower taps the menu, WeChat's
authorisation redirects back (the fake WeChat on loopback plays the authorisation screen: a redirect to the
callback with a code and the state), the page asks for the phone and the SMS code, and ends signed in.

What only a browser shows: the binding cookie kept across the redirects through WeChat's site and back, the forms
posting under the page's Content-Security-Policy, and the bound page's script keeping the member session."""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, urlparse

from playwright.sync_api import expect

from domain.db import unit_of_work
from domain.settings import get_settings
from tests.api.test_wechat_binding import oauth, sms  # noqa: F401 - fixtures: fake WeChat API and SMS gateway
from tests.browser.conftest import screenshot
from tests.factories import make_member


def _wechat_on_another_site(page, oauth_base: str) -> list[str]:
    """WeChat's authorisation screen is served by the fake WeChat on loopback, reached as ``localhost`` (another
    site than the API's 127.0.0.1, as open.weixin.qq.com is): the start's redirect is pointed there, the rest of
    its answer (the binding cookie) kept. The browser then follows WeChat's redirect back cross-site."""
    fake_site = urlparse(oauth_base)._replace(netloc=f"localhost:{urlparse(oauth_base).port}", path="").geturl()
    sent: list[str] = []

    def start(route):
        answer = route.fetch(max_redirects=0)
        location = urlparse(answer.headers["location"])
        assert location.netloc == "open.weixin.qq.com"
        sent.append(parse_qs(location.query)["state"][0])
        route.fulfill(response=answer, headers={**answer.headers, "location": fake_site + location.path + "?"
                                                + location.query})

    page.route(re.compile(r"/wechat/oauth/start$"), start)
    return sent


def test_a_follower_binds_their_phone_on_the_mobile_page_and_is_signed_in(live_server, chromium, committed_engine,
                                                                         monkeypatch, oauth, sms):  # noqa: F811
    monkeypatch.setattr(get_settings(), "wechat_public_base_url", live_server)
    with unit_of_work(committed_engine) as session:
        member = make_member(session, phone="13800138090", name="Wang Li")
        session.commit()
    oauth.oauth_codes["BROWSER-1"] = ("o-browser", "u-browser")
    oauth.authorising.append("BROWSER-1")
    context = chromium.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, locale="zh-CN")
    page = context.new_page()
    blocked: list[str] = []
    page.on("console", lambda message: blocked.append(message.text)
            if "Content Security Policy" in message.text else None)
    try:
        asked = _wechat_on_another_site(page, get_settings().wechat_oauth_api_base_url)
        page.goto(f"{live_server}/wechat/oauth/start")
        expect(page).to_have_url(f"{live_server}/wechat/oauth/page")
        assert len(asked) == 1
        expect(page.locator("h1")).to_contain_text("Bind your phone")

        page.fill("#phone", "138 0013 8090")
        page.click("#code-form button[type=submit]")
        expect(page.locator("#sent")).to_contain_text("+86138****8090")
        assert sms.received[-1]["body"]["address"] == {"phone": "+8613800138090"}
        code = str(sms.received[-1]["body"]["variables"]["code"])
        screenshot(page, "wechat-binding")

        page.fill("#code", code)
        page.click("#bind-form button[type=submit]")
        expect(page.locator("#bound")).to_contain_text("+86138****8090")
        assert "13800138090" not in re.sub(r"\s", "", page.locator("main").inner_text())
        kept = page.evaluate("sessionStorage.getItem('loyalty.member_session')")
        assert kept, "the bound page's script did not keep the member session"
        signed_in = json.loads(kept)
        assert signed_in["member_id"] == member.id
        me = page.request.get(f"{live_server}/v1/me", headers={"Authorization": f"Bearer {signed_in['access_token']}"})
        assert me.status == 200 and me.json()["wechat_openid"] == "o-browser"
        cookies = {c["name"] for c in context.cookies(live_server + "/wechat/oauth")}
        assert "loyalty_wechat_binding" not in cookies  # the binding's cookie is gone once it is used
        assert blocked == [], blocked
    finally:
        context.close()
