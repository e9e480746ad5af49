"""The member in one look, for agents: content, masking by role, the access log."""

from datetime import UTC, datetime

from sqlmodel import select

from api.deps import get_now
from api.schemas.crm import CrmPicture
from domain.access.models import AccessLogEntry, ApiKey
from tests.factories import make_api_key

NOW = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)


def test_the_lookup_shows_the_whole_picture_masked_for_agents_and_logs_the_read(app_client, app_headers, crm_headers,
                                                                                 admin_headers, staff_headers,
                                                                                 session):
    app_client.app.dependency_overrides[get_now] = lambda: NOW
    m = app_client.post("/v1/members", headers=app_headers, json={
        "source_channel": "store", "phone": "13800138000", "name": "Wang Fang", "joined_at": "2025-01-01T00:00:00Z",
        "consents": {"phone": True}, "assigned_rep": "agent-7"}).json()
    app_client.post("/v1/orders", headers=app_headers, json={
        "order_id": "CRM-1", "member_id": m["id"], "amount_fen": 150_000, "channel": "store",
        "occurred_at": "2026-03-01T10:00:00+08:00"})
    app_client.post(f"/v1/crm/members/{m['id']}/notes", headers=crm_headers,
                    json={"fields": {"has_children": True}, "text": "prefers evening calls"})
    app_client.post(f"/v1/members/{m['id']}/complaints", headers=crm_headers, json={"category": "delivery"})

    look = app_client.get("/v1/crm/members/lookup", params={"phone": "138 0013 8000"},
                          headers={**crm_headers, "X-Access-Reason": "inbound call"})
    assert look.status_code == 200, look.text
    CrmPicture.model_validate(look.json())  # its OpenAPI schema (api/schemas/crm.py), with notes, orders, complaints
    picture = look.json()
    assert picture["member"]["phone"] == "+86138****8000" and picture["member"]["phone_masked"]
    assert picture["member"]["assigned_rep"] == "agent-7"
    assert (picture["tier"]["tier"], picture["tier"]["next_tier"]) == ("C", "B")
    assert picture["points"]["pending"] == 1_500
    assert [o["order_id"] for o in picture["recent_orders"]] == ["CRM-1"]
    assert picture["notes"][0]["text"] == "prefers evening calls" and picture["notes"][0]["agent_id"] == "agent-7"
    assert [c["category"] for c in picture["open_complaints"]] == ["delivery"]
    assert picture["consents"] == {"phone": "granted"}
    assert picture["active_journeys"] == []
    pitch = picture["may_pitch_by_phone"]
    assert pitch["verdict"] == "rejected" and "complaint_cooldown" in pitch["reasons"] and pitch["next_allowed_at"]

    unmasked = app_client.get("/v1/crm/members/lookup", params={"code": m["member_code"]}, headers=admin_headers)
    assert unmasked.json()["member"]["phone"] == "+8613800138000"
    _, pii_key = make_api_key(session, scope="crm", name="fraud-desk")
    key_row = session.exec(select(ApiKey).where(ApiKey.name == "fraud-desk")).one()
    key_row.pii_access = True
    session.add(key_row)
    session.commit()
    fraud_desk = app_client.get("/v1/crm/members/lookup", params={"phone": "13800138000"},
                                headers={"Authorization": f"Bearer {pii_key}", "X-Agent-Id": "sup-1"})
    assert fraud_desk.json()["member"]["phone"] == "+8613800138000"
    supervisor = app_client.get("/v1/crm/members/lookup", params={"phone": "13800138000"},
                                headers=staff_headers("supervisor", username="sup-1", pii_access=True))
    assert supervisor.json()["member"]["phone"] == "+8613800138000"

    log = session.exec(select(AccessLogEntry).where(AccessLogEntry.member_id == m["id"])
                       .order_by(AccessLogEntry.id)).all()
    # X-Agent-Id is no identity any more: the key's read is logged under the key alone.
    assert [(e.api_key_name, e.agent_id, e.action, e.reason) for e in log] == [
        (None, "agent-7", "crm.lookup", "inbound call"), ("test-admin", None, "crm.lookup", "call"),
        ("fraud-desk", None, "crm.lookup", "call"), (None, "sup-1", "crm.lookup", "call")]


def test_the_lookup_is_for_agents_and_notes_need_a_named_agent_not_a_key(app_client, app_headers, crm_key_headers):
    assert app_client.get("/v1/crm/members/lookup", params={"phone": "13800138000"},
                          headers=app_headers).status_code == 403
    m = app_client.post("/v1/members", headers=app_headers, json={"source_channel": "store",
                                                                   "phone": "13800138001"}).json()
    response = app_client.post(f"/v1/crm/members/{m['id']}/notes", json={"text": "x"},
                               headers={**crm_key_headers, "X-Agent-Id": "agent-7"})
    assert response.status_code == 403 and response.json()["error"]["code"] == "scope_forbidden"


def test_an_agent_recorded_opt_out_blocks_the_next_call_at_once(app_client, app_headers, crm_headers):
    app_client.app.dependency_overrides[get_now] = lambda: NOW
    m = app_client.post("/v1/members", headers=app_headers, json={
        "source_channel": "store", "phone": "13800138002", "joined_at": "2025-01-01T00:00:00Z",
        "consents": {"phone": True}}).json()
    app_client.put(f"/v1/members/{m['id']}/consents/phone", json={"granted": False}, headers=crm_headers)
    pitch = app_client.get("/v1/crm/members/lookup", params={"phone": "13800138002"},
                           headers=crm_headers).json()["may_pitch_by_phone"]
    assert pitch["verdict"] == "rejected" and pitch["reasons"] == ["consent_opted_out"]


def test_interest_events_are_recorded(app_client, app_headers):
    m = app_client.post("/v1/members", headers=app_headers, json={"source_channel": "store",
                                                                   "phone": "13800138003"}).json()
    created = app_client.post(f"/v1/members/{m['id']}/interests", headers=app_headers,
                              json={"product": "family-plan", "source": "ivr"})
    assert created.status_code == 201 and created.json()["product"] == "family-plan"
    bad = app_client.post(f"/v1/members/{m['id']}/interests", headers=app_headers,
                          json={"product": "family-plan", "source": "pigeon"})
    assert bad.status_code == 422


def test_a_churn_call_list_is_defined_over_http_and_a_contradiction_is_a_422(app_client, admin_headers):
    body = {"name": "rescue", "product": "retention", "purpose": "care", "strategy": "churn",
            "audience": {"lifecycle_stages": ["decline"]}}
    created = app_client.post("/v1/crm/call-lists", headers=admin_headers, json=body)
    assert created.status_code == 201, created.text
    assert created.json()["strategy"] == "churn"
    shown = app_client.get(f"/v1/crm/call-lists/{created.json()['id']}", headers=admin_headers).json()
    assert shown["strategy"] == "churn" and shown["audience"] == {"lifecycle_stages": ["decline"]}
    for wrong in ({**body, "strategy": "hunch"}, {**body, "audience": {"at_risk": False}},
                  {**body, "audience": {"lifecycle_stages": ["teenage"]}}):
        answer = app_client.post("/v1/crm/call-lists", headers=admin_headers, json=wrong)
        assert answer.status_code == 422, (wrong, answer.text)
        assert set(answer.json()["error"]) >= {"code", "message"}
