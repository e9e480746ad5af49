"""The WeChat callback as an attacker meets it: published tokens, forged, body-swapped and plaintext callbacks,
empty, malformed and oversized bodies."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from sqlmodel import select
from wechatpy.crypto import WeChatCrypto

from api.main import create_app
from domain.members.models import Member
from domain.settings import get_settings
from domain.wechat.rules import PUBLISHED_TOKENS, configuration_problem, signature
from tests.api.test_wechat_callback import AES_KEY, APP_ID, event_xml, post, signed

SECRET_TOKEN = "k3Jq9xVt2LmWz7Rb"


@pytest.mark.parametrize("token", sorted(PUBLISHED_TOKENS))
def test_the_app_refuses_to_start_with_wechat_configured_and_a_published_token(monkeypatch, token):
    monkeypatch.setattr(get_settings(), "wechat_app_id", APP_ID)
    monkeypatch.setattr(get_settings(), "wechat_token", token)
    with pytest.raises(RuntimeError, match="LOYALTY_WECHAT_TOKEN"):
        create_app()


def test_configuration_rules():
    assert configuration_problem(app_id="", token="loyalty-dev-token", encoding_aes_key="") is None  # local mode
    assert configuration_problem(app_id=APP_ID, token=SECRET_TOKEN, encoding_aes_key="") is None
    assert configuration_problem(app_id="", token="", encoding_aes_key=AES_KEY) is not None
    assert "43" in (configuration_problem(app_id=APP_ID, token=SECRET_TOKEN, encoding_aes_key="short") or "")


def test_loyalty_serve_exits_with_a_message_instead_of_serving_a_published_token():
    env = {**os.environ, "LOYALTY_WECHAT_APP_ID": APP_ID, "LOYALTY_WECHAT_TOKEN": "loyalty-dev-token"}
    result = subprocess.run([sys.executable, "-m", "cli", "serve", "--no-jobs", "--port", "8159"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "LOYALTY_WECHAT_TOKEN" in result.stderr and "Traceback" not in result.stderr


@pytest.fixture
def safe_mode(monkeypatch):
    """The account as production runs it: its own token, safe mode on."""
    settings = get_settings()
    monkeypatch.setattr(settings, "wechat_app_id", APP_ID)
    monkeypatch.setattr(settings, "wechat_token", SECRET_TOKEN)
    monkeypatch.setattr(settings, "wechat_encoding_aes_key", AES_KEY)
    return WeChatCrypto(SECRET_TOKEN, AES_KEY, APP_ID)


def _secret_signed(nonce: str = "n0nce") -> dict[str, str]:
    params = signed(nonce=nonce)
    return {**params, "signature": signature(SECRET_TOKEN, params["timestamp"], nonce)}


def _encrypted(crypto: WeChatCrypto, xml: str, params: dict[str, str]) -> tuple[str, str]:
    body = crypto.encrypt_message(xml, params["nonce"], params["timestamp"])
    encrypt = re.search(r"<Encrypt><!\[CDATA\[(.*?)\]\]></Encrypt>", body).group(1)  # type: ignore[union-attr]
    return body, signature(SECRET_TOKEN, params["timestamp"], params["nonce"], encrypt)


def _members_with_openid(session, *openids: str) -> list[Member]:
    return list(session.exec(select(Member).where(Member.wechat_openid.in_(openids))))  # type: ignore[attr-defined]


def test_a_callback_signed_with_the_published_token_is_refused(app_client, session, safe_mode):
    params = signed()  # signed with loyalty-dev-token, as the attack on the first release did
    body, _ = _encrypted(safe_mode, event_xml("o-forged", "subscribe"), params)
    forged_msg_signature = signature("loyalty-dev-token", params["timestamp"], params["nonce"], "x")
    response = post(app_client, body, {**params, "encrypt_type": "aes", "msg_signature": forged_msg_signature})
    assert response.status_code == 403 and response.json()["error"]["code"] == "invalid_signature"
    assert _members_with_openid(session, "o-forged") == []


def test_a_genuine_safe_mode_callback_is_accepted(app_client, session, safe_mode):
    params = _secret_signed()
    body, msg_signature = _encrypted(safe_mode, event_xml("o-real", "subscribe", create_time=1_772_000_500), params)
    response = post(app_client, body, {**params, "encrypt_type": "aes", "msg_signature": msg_signature})
    assert response.status_code == 200, response.text
    assert len(_members_with_openid(session, "o-real")) == 1


def test_a_body_swapped_under_a_genuine_signature_is_refused(app_client, session, safe_mode):
    params = _secret_signed()
    _, genuine_signature = _encrypted(safe_mode, event_xml("o-victim", "subscribe", create_time=1_772_000_600), params)
    swapped, _ = _encrypted(safe_mode, event_xml("o-attacker", "subscribe", create_time=1_772_000_601), params)
    response = post(app_client, swapped, {**params, "encrypt_type": "aes", "msg_signature": genuine_signature})
    assert response.status_code == 403 and response.json()["error"]["code"] == "invalid_signature"
    assert _members_with_openid(session, "o-victim", "o-attacker") == []


def test_a_plaintext_callback_is_refused_when_safe_mode_is_configured(app_client, session, safe_mode):
    response = post(app_client, event_xml("o-plain", "subscribe"), _secret_signed())  # a valid query signature
    assert response.status_code == 403 and response.json()["error"]["code"] == "plaintext_refused"
    assert _members_with_openid(session, "o-plain") == []


@pytest.mark.parametrize("body", ["", "   ", "<xml></xml>", "not xml at all", "<xml><FromUserName>x"])
def test_an_empty_or_malformed_body_is_400(app_client, body):
    response = post(app_client, body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == "malformed_message"


@pytest.mark.parametrize("create_time", ["soon", "-5", "1.5", "9" * 40, ""])
def test_a_non_numeric_create_time_is_400(app_client, create_time):
    xml = event_xml("o-odd", "subscribe").replace("<CreateTime>1772000000</CreateTime>",
                                                  f"<CreateTime>{create_time}</CreateTime>")
    response = post(app_client, xml)
    if create_time == "":  # absent is treated as 0 by WeChat's own SDKs: accepted
        assert response.status_code == 200
    else:
        assert response.status_code == 400 and response.json()["error"]["code"] == "malformed_message"


def test_a_non_numeric_msg_id_is_400(app_client):
    xml = ("<xml><ToUserName>gh</ToUserName><FromUserName>o-txt</FromUserName><CreateTime>1772000000</CreateTime>"
           "<MsgType>text</MsgType><Content>hi</Content><MsgId>12ab</MsgId></xml>")
    assert post(app_client, xml).status_code == 400


def test_a_callback_body_over_its_own_bound_is_413(app_client):
    big = event_xml("o-big", "subscribe", extra="<Pad>" + "x" * 70_000 + "</Pad>")
    response = post(app_client, big)
    assert response.status_code == 413 and response.json()["error"]["code"] == "payload_too_large"
