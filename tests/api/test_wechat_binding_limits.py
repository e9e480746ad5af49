"""Phone binding against abuse: the state is bound to the browser that started it, SMS codes are limited per
phone and per WeChat user across bindings, wrong answers count per phone across resends, and what
unauthenticated callers leave behind is pruned."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from cli.main import main
from domain.settings import get_settings
from domain.wechat.models import OAuthState, ProcessedCallback
from domain.wechat.service import prune_bindings_and_callbacks
from tests.api.test_wechat_binding import code_for, oauth, sms, start  # noqa: F401 - fixtures


def _proved_state(client, oauth, openid: str) -> str:  # noqa: F811
    code = f"C-{openid}-{len(oauth.oauth_codes)}"
    oauth.oauth_codes[code] = (openid, None)
    state = start(client)
    response = client.get("/wechat/oauth/callback", params={"code": code, "state": state})
    assert response.status_code == 200, response.text
    return state


def _ask(client, state: str, phone: str):
    return client.post("/wechat/oauth/code", json={"state": state, "phone": phone})


def test_a_state_is_refused_in_a_browser_that_did_not_start_it(app_client, oauth, sms):  # noqa: F811
    oauth.oauth_codes["CODE-X"] = ("o-victim", None)
    state = start(app_client)
    other_browser = TestClient(app_client.app, raise_server_exceptions=False)
    lured = other_browser.get("/wechat/oauth/callback", params={"code": "CODE-X", "state": state})
    assert lured.status_code == 403 and lured.json()["error"]["code"] == "state_not_this_browser"
    assert app_client.get("/wechat/oauth/callback", params={"code": "CODE-X", "state": state}).status_code == 200
    copied = other_browser.post("/wechat/oauth/code", json={"state": state, "phone": "13800138000"})
    assert copied.status_code == 403 and copied.json()["error"]["code"] == "state_not_this_browser"
    cookie = app_client.get("/wechat/oauth/start", follow_redirects=False).headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/wechat/oauth" in cookie


def test_codes_to_one_phone_are_limited_across_bindings(app_client, oauth, sms, monkeypatch):  # noqa: F811
    monkeypatch.setattr(get_settings(), "wechat_bind_codes_per_phone_hour", 2)
    for openid in ("o-a", "o-b"):
        assert _ask(app_client, _proved_state(app_client, oauth, openid), "13800138111").status_code == 200
    third = _ask(app_client, _proved_state(app_client, oauth, "o-c"), "13800138111")
    assert third.status_code == 429 and third.json()["error"]["code"] == "too_many_codes_for_phone"
    assert int(third.headers["retry-after"]) > 0
    assert len(sms.received) == 2


def test_codes_asked_for_by_one_wechat_user_are_limited_across_bindings(app_client, oauth, sms,  # noqa: F811
                                                                         monkeypatch):
    monkeypatch.setattr(get_settings(), "wechat_bind_codes_per_openid_hour", 2)
    for phone in ("13800138201", "13800138202"):
        assert _ask(app_client, _proved_state(app_client, oauth, "o-flood"), phone).status_code == 200
    third = _ask(app_client, _proved_state(app_client, oauth, "o-flood"), "13800138203")
    assert third.status_code == 429 and third.json()["error"]["code"] == "too_many_codes_for_client"


def test_wrong_answers_count_per_phone_across_resends_and_bindings(app_client, oauth, sms,  # noqa: F811
                                                                    monkeypatch):
    settings = get_settings()
    monkeypatch.setattr(settings, "wechat_bind_code_resend_seconds", 0)
    monkeypatch.setattr(settings, "wechat_bind_wrong_codes_per_phone_hour", 3)
    phone = "13800138300"
    state = _proved_state(app_client, oauth, "o-guess")
    code_for(app_client, sms, state, phone)
    for _ in range(2):
        wrong = app_client.post("/wechat/oauth/bind", json={"state": state, "phone": phone, "code": "000000"})
        assert wrong.json()["error"]["code"] == "wrong_code"
    code_for(app_client, sms, state, phone)  # a resend does not reset the count
    app_client.post("/wechat/oauth/bind", json={"state": state, "phone": phone, "code": "000000"})
    other = _proved_state(app_client, oauth, "o-guess-2")  # nor does a new binding
    right = code_for(app_client, sms, other, phone)
    refused = app_client.post("/wechat/oauth/bind", json={"state": other, "phone": phone, "code": right})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "too_many_attempts"


AS_OF = datetime(2026, 3, 10, tzinfo=UTC)


def test_prune_forgets_old_bindings_and_callback_keys_and_keeps_recent_ones(session):
    old, recent = AS_OF - timedelta(hours=25), AS_OF - timedelta(hours=1)
    session.add_all([OAuthState(state="old-state-1", created_at=old, code_hash="x" * 64),
                     OAuthState(state="new-state-1", created_at=recent),
                     ProcessedCallback(key="msg:1", received_at=AS_OF - timedelta(hours=49)),
                     ProcessedCallback(key="msg:2", received_at=recent)])
    session.flush()
    assert prune_bindings_and_callbacks(session, as_of=AS_OF) == {"binding_states": 1, "processed_callbacks": 1}
    assert prune_bindings_and_callbacks(session, as_of=AS_OF) == {"binding_states": 0, "processed_callbacks": 0}
    assert [r.state for r in session.exec(select(OAuthState))] == ["new-state-1"]
    assert [r.key for r in session.exec(select(ProcessedCallback))] == ["msg:2"]


def test_the_prune_job_runs_on_demand_as_of_a_date(committed_engine):
    with Session(committed_engine) as session:
        session.add(OAuthState(state="stale-state", created_at=AS_OF - timedelta(days=2)))
        session.commit()
    result = CliRunner().invoke(main, ["jobs", "run", "prune-wechat", "--as-of", AS_OF.date().isoformat()])
    assert result.exit_code == 0, result.output
    assert '"binding_states": 1' in result.output
    with Session(committed_engine) as session:
        assert session.get(OAuthState, "stale-state") is None
