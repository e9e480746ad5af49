"""The console over HTTP (the browser tests drive the same pages in Chromium): login, the page cookie, who may
open what, masking and the access log, local assets."""

from __future__ import annotations

import pytest
from sqlmodel import select

from api.console.charts import stacked_bars, uplift_chart
from domain.access.models import AccessLogEntry
from tests.factories import make_member, make_staff

PASSWORD = "correct horse battery staple"


@pytest.fixture
def client(app_client):
    app_client.follow_redirects = False
    return app_client


def log_in(client, session, role: str, *, pii: bool = False, username: str | None = None):
    account = make_staff(session, role=role, username=username, pii_access=pii, password=PASSWORD)
    answer = client.post("/console/login", data={"username": account.username, "password": PASSWORD})
    assert answer.status_code == 303, answer.text
    return answer


def test_a_page_without_a_session_sends_the_visitor_to_the_login_page(client):
    answer = client.get("/console/agent")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/login?next=/console/agent"
    assert "Staff sign-in" in client.get("/console/login").text


def test_a_wrong_password_is_refused_on_the_form(client, session):
    account = make_staff(session, role="agent", password=PASSWORD)
    answer = client.post("/console/login", data={"username": account.username, "password": "nope nope nope"})
    assert answer.status_code == 401
    assert "wrong username or password" in answer.text
    assert "loyalty_console" not in answer.headers.get("set-cookie", "")


def test_the_page_cookie_is_http_only_same_site_strict_and_scoped_to_the_console(client, session):
    answer = log_in(client, session, "agent")
    assert answer.headers["location"] == "/console/agent"
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/console" in cookie


def test_the_login_form_never_redirects_off_the_console(client, session):
    account = make_staff(session, role="agent", password=PASSWORD)
    for target in ("https://evil.example/", "//evil.example/x", "/v1/members"):
        answer = client.post("/console/login", data={"username": account.username, "password": PASSWORD,
                                                     "next": target})
        assert answer.headers["location"] == "/console/agent", target


def test_an_agent_lookup_shows_the_phone_masked_and_is_access_logged(client, session):
    member = make_member(session, phone="+8613800138000", name="Wang Fang")
    log_in(client, session, "agent", username="wu.qiang")
    page = client.post("/console/agent/lookup", data={"phone": "13800138000", "reason": "inbound call"})
    assert page.status_code == 200
    assert "Wang Fang" in page.text and "+86138****8000" in page.text and "+8613800138000" not in page.text
    logged = session.exec(select(AccessLogEntry).where(AccessLogEntry.member_id == member.id)).all()
    assert [(e.agent_id, e.action, e.reason) for e in logged] == [("wu.qiang", "crm.lookup", "inbound call")]
    unknown = client.post("/console/agent/lookup", data={"phone": "13900000000"})
    assert "No member has that phone number." in unknown.text


def test_the_member_search_page_filters_by_lifecycle_stage_masked_and_access_logged(client, session):
    from datetime import UTC, datetime, timedelta

    from domain.lifecycle import service as lifecycle

    as_of = datetime.now(UTC)
    newcomer = make_member(session, name="Zhou Xin", phone="+8613800138111", now=as_of - timedelta(days=10))
    fading = make_member(session, name="Zhou Lan", phone="+8613800138222", now=as_of - timedelta(days=250))
    lifecycle.refresh_lifecycle(session, as_of=as_of, member_range=(newcomer.id, fading.id))
    log_in(client, session, "agent", username="wu.qiang")
    empty = client.get("/console/agent/members")
    assert empty.status_code == 200 and "Choose a filter" in empty.text and 'value="decline"' in empty.text
    page = client.get("/console/agent/members", params={"name_prefix": "Zhou", "lifecycle_stage": "decline"})
    assert page.status_code == 200, page.text
    assert "Zhou Lan" in page.text and "Zhou Xin" not in page.text
    assert "+86138****8222" in page.text and "+8613800138222" not in page.text
    logged = session.exec(select(AccessLogEntry).where(AccessLogEntry.member_id == fading.id)).all()
    assert [(e.agent_id, e.action) for e in logged] == [("wu.qiang", "member.search")]
    assert client.get("/console/agent/members", params={"lifecycle_stage": "teenage"}).status_code == 422


@pytest.mark.parametrize(("role", "path", "allowed"), [
    ("agent", "/console/agent", True), ("agent", "/console/agent/members", True),
    ("marketer", "/console/agent/members", False), ("agent", "/console/supervisor", False),
    ("agent", "/console/marketer", False), ("marketer", "/console/marketer", True),
    ("marketer", "/console/agent", False), ("supervisor", "/console/supervisor/access-log", True),
    ("operator", "/console/operator", True), ("operator", "/console/marketer/journeys", False),
    ("operator", "/console/supervisor/access-log", True), ("agent", "/console/supervisor/access-log", False)])
def test_each_role_opens_its_own_screens_only(client, session, role, path, allowed):
    log_in(client, session, role)
    answer = client.get(path)
    assert answer.status_code == (200 if allowed else 403), (role, path, answer.text[:200])


def test_logging_out_ends_the_session(client, session):
    log_in(client, session, "operator")
    assert client.get("/console/operator").status_code == 200
    assert client.post("/console/logout").headers["location"] == "/console/login"
    assert client.get("/console/operator").status_code == 303


def test_swagger_ui_and_redoc_are_served_from_local_files(client):
    for path in ("/docs", "/redoc"):
        html = client.get(path).text
        assert "/static-offline-docs/" in html
        assert "cdn." not in html and "fonts.googleapis" not in html
    assert client.get("/static-offline-docs/swagger-ui-bundle.js").status_code == 200
    assert client.get("/console/static/console.css").status_code == 200


def test_the_uplift_chart_draws_both_groups_and_the_interval():
    svg = uplift_chart(treatment_rate=0.12, control_rate=0.08, uplift=0.04, ci_low=0.01, ci_high=0.07,
                       treatment_size=900, control_size=100)
    assert svg.startswith("<svg") and "12.0%" in svg and "8.0%" in svg and "significant at 95%" in svg
    empty = uplift_chart(treatment_rate=None, control_rate=None, uplift=None, ci_low=None, ci_high=None,
                         treatment_size=0, control_size=0)
    assert "not measurable yet" in empty


def test_the_suppression_chart_escapes_its_labels():
    svg = stacked_bars(days=["2026-03-01"], series={"<script>": [3]}, title="t")
    assert "<script>" not in svg and "&lt;script&gt;" in svg
