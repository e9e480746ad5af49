from datetime import UTC, datetime

from fastapi.testclient import TestClient

from api.deps import get_now


def setup_member(client, headers):
    return client.post("/v1/members", headers=headers, json={
        "source_channel": "store", "phone": "13800138000", "joined_at": "2025-01-01T00:00:00Z",
        "consents": {"sms": True, "phone": True}}).json()


def at(client: TestClient, moment: datetime) -> None:
    client.app.dependency_overrides[get_now] = lambda: moment  # type: ignore[attr-defined]


def test_eligibility_request_history_consent_and_complaint_over_http(app_client, app_headers, crm_headers,
                                                                    admin_headers):
    at(app_client, datetime(2026, 3, 10, 4, 0, tzinfo=UTC))
    assert app_client.post("/v1/templates", headers=admin_headers, json={
        "key": "spring_offer", "purpose": "marketing", "body": "Spring offer!"}).status_code == 201
    m = setup_member(app_client, app_headers)
    base = f"/v1/members/{m['id']}"
    ok = app_client.get(f"{base}/contact-eligibility", params={"channel": "sms", "purpose": "marketing"},
                        headers=app_headers).json()
    assert ok["verdict"] == "approved"
    body = {"channel": "sms", "purpose": "marketing", "idempotency_key": "promo-1", "template": "spring_offer"}
    first = app_client.post(f"{base}/contacts", json=body, headers=app_headers)
    again = app_client.post(f"{base}/contacts", json=body, headers=app_headers)
    assert first.status_code == 201 and again.status_code == 200 and again.json()["id"] == first.json()["id"]

    complaint = app_client.post(f"{base}/complaints", json={"category": "too_many_messages"}, headers=crm_headers)
    assert complaint.status_code == 201 and complaint.json()["actor"] == "staff:agent-7"
    blocked = app_client.get(f"{base}/contact-eligibility", params={"channel": "sms", "purpose": "marketing"},
                             headers=app_headers).json()
    assert blocked["verdict"] == "rejected" and "complaint_cooldown" in blocked["reasons"]
    assert blocked["next_allowed_at"].startswith("2026-06-08")

    consents = app_client.put(f"{base}/consents/sms", json={"granted": False}, headers=crm_headers).json()
    assert consents["sms"] == "opted_out"
    service = app_client.get(f"{base}/contact-eligibility", params={"channel": "sms", "purpose": "service"},
                             headers=app_headers).json()
    assert service["reasons"] == ["consent_opted_out"]
    history = app_client.get(f"{base}/contacts", headers=crm_headers).json()
    assert [(t["decision"], t["status"]) for t in history] == [("approved", "queued")]


def test_bad_channel_or_purpose_is_422(app_client, app_headers):
    m = setup_member(app_client, app_headers)
    bad = app_client.get(f"/v1/members/{m['id']}/contact-eligibility", params={"channel": "pigeon",
                                                                                "purpose": "marketing"},
                         headers=app_headers)
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "validation_error"
    complaint = app_client.post(f"/v1/members/{m['id']}/complaints", json={"category": "x"}, headers=app_headers)
    assert complaint.status_code == 403
