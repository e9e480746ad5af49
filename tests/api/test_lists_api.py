"""Lists and searches: one cursor envelope everywhere, typed filters, masking and the access log."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from domain.access.models import AccessLogEntry
from domain.contact_policy import service as gate
from domain.crm import service as crm
from domain.members.models import ContactChannel
from domain.operations.models import JobRun, JobRunStatus
from tests.factories import make_member, make_order

NOW = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)


def walk(client, url, headers, **params):
    """Every item of a list, following next_cursor; also returns how many pages it took."""
    items, pages, cursor = [], 0, None
    while True:
        answer = client.get(url, headers=headers, params={**params, **({"cursor": cursor} if cursor else {})})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert set(body) == {"items", "next_cursor"}
        items += body["items"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return items, pages


def test_member_search_pages_through_everyone_newest_first_without_repeats(app_client, session, crm_headers):
    made = [make_member(session, name=f"Zhao {i}", tags=["vip"] if i % 2 else []) for i in range(7)]
    items, pages = walk(app_client, "/v1/members", crm_headers, name_prefix="zhao", limit=3)
    assert [m["id"] for m in items] == sorted((m.id for m in made), reverse=True)
    assert pages == 3
    tagged, _ = walk(app_client, "/v1/members", crm_headers, name_prefix="Zhao", tag="vip")
    assert len(tagged) == 3


def test_member_search_by_phone_code_tier_and_status(app_client, session, crm_headers):
    wanted = make_member(session, phone="+8613911112222", source_campaign="SPRING26")
    make_member(session, phone="+8613911113333")
    by_phone = app_client.get("/v1/members", headers=crm_headers, params={"phone": "139 1111 2222"}).json()
    assert [m["id"] for m in by_phone["items"]] == [wanted.id]
    prefix = wanted.member_code.rsplit("-", 1)[0]
    by_code = app_client.get("/v1/members", headers=crm_headers, params={"member_code": prefix.lower()}).json()
    assert wanted.id in [m["id"] for m in by_code["items"]]
    both = app_client.get("/v1/members", headers=crm_headers,
                          params={"phone": "13911112222", "tier": "D", "status": "active"}).json()
    assert [m["id"] for m in both["items"]] == [wanted.id]
    assert app_client.get("/v1/members", headers=crm_headers, params={"phone": "13911112222", "tier": "A"}
                          ).json()["items"] == []


def test_member_search_by_lifecycle_stage(app_client, session, crm_headers):
    from domain.lifecycle import service as lifecycle

    newcomer = make_member(session, name="Sun Yi", now=NOW - timedelta(days=20))
    fading = make_member(session, name="Sun Er", now=NOW - timedelta(days=250))
    lifecycle.refresh_lifecycle(session, as_of=NOW, member_range=(newcomer.id, fading.id))
    found = app_client.get("/v1/members", headers=crm_headers,
                           params={"name_prefix": "Sun", "lifecycle_stage": "decline"}).json()["items"]
    assert [m["id"] for m in found] == [fading.id]
    onboarding = app_client.get("/v1/members", headers=crm_headers,
                                params={"name_prefix": "Sun", "lifecycle_stage": "onboarding"}).json()["items"]
    assert [m["id"] for m in onboarding] == [newcomer.id]
    refused = app_client.get("/v1/members", headers=crm_headers, params={"lifecycle_stage": "teenage"})
    assert refused.status_code == 422 and "lifecycle_stage" in str(refused.json()["error"]["details"])


def test_member_search_masks_phones_for_agents_and_logs_each_member_shown(app_client, session, crm_headers,
                                                                         admin_headers):
    member = make_member(session, phone="+8613922223333", name="Qian Li")
    shown = app_client.get("/v1/members", params={"name_prefix": "Qian"},
                           headers={**crm_headers, "X-Access-Reason": "complaint follow-up"}).json()["items"]
    assert shown[0]["phone"] == "+86139****3333" and shown[0]["phone_masked"] is True
    logged = session.exec(select(AccessLogEntry).where(AccessLogEntry.member_id == member.id)).all()
    assert [(e.action, e.agent_id, e.reason) for e in logged] == [("member.search", "agent-7", "complaint follow-up")]
    full = app_client.get("/v1/members", params={"name_prefix": "Qian"}, headers=admin_headers).json()["items"]
    assert full[0]["phone"] == "+8613922223333" and full[0]["phone_masked"] is False


@pytest.mark.parametrize(("params", "field"), [({"status": "sleeping"}, "status"), ({"tier": "AB"}, "tier"),
                                                ({"limit": 0}, "limit"), ({"limit": 201}, "limit")])
def test_filters_are_typed_and_refused_in_the_one_error_shape(app_client, crm_headers, params, field):
    answer = app_client.get("/v1/members", headers=crm_headers, params=params)
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "validation_error"
    assert field in str(answer.json()["error"]["details"])


def test_a_forged_cursor_is_a_422_not_a_500(app_client, crm_headers):
    for cursor in ("not-base64!", "eyJhIjoxfQ", "WzEsMl0"):
        answer = app_client.get("/v1/members", headers=crm_headers, params={"cursor": cursor})
        assert answer.status_code == 422, (cursor, answer.text)
        assert answer.json()["error"]["code"] == "invalid_cursor"


def test_filters_appear_typed_in_the_openapi_schema(app_client):
    schema = app_client.get("/openapi.json").json()
    params = {p["name"]: p for p in schema["paths"]["/v1/members"]["get"]["parameters"]}
    assert {"phone", "name_prefix", "member_code", "tag", "tier", "status", "lifecycle_stage", "cursor",
            "limit"} <= set(params)
    status = params["status"]["schema"]["anyOf"][0]
    assert "$ref" in status or "enum" in status
    stage = params["lifecycle_stage"]["schema"]["anyOf"][0]
    assert schema["components"]["schemas"]["LifecycleStage"]["enum"] == ["onboarding", "growth", "maturity",
                                                                         "decline"] and "$ref" in stage
    assert params["limit"]["schema"]["maximum"] == 200
    envelope = schema["paths"]["/v1/campaigns"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert envelope["$ref"].endswith("Page_CampaignOut_")


def test_a_members_orders_latest_purchase_first(app_client, session, crm_key_headers):
    member = make_member(session)
    for day in (3, 1, 2):
        make_order(session, member_id=member.id, order_id=f"L-{day}", occurred_at=NOW - timedelta(days=10 - day))
    items, pages = walk(app_client, f"/v1/members/{member.id}/orders", crm_key_headers, limit=2)
    assert [o["order_id"] for o in items] == ["L-3", "L-2", "L-1"] and pages == 2
    assert app_client.get("/v1/members/999999/orders", headers=crm_key_headers).status_code == 404


def test_campaigns_are_listed_and_read_by_id(app_client, admin_headers):
    ids = [app_client.post("/v1/campaigns", headers=admin_headers, json={
        "name": f"spring {i}", "channel": "sms", "template": "first_offer"}).json()["id"] for i in range(3)]
    items, _ = walk(app_client, "/v1/campaigns", admin_headers, status="draft", limit=2)
    assert [c["id"] for c in items] == ids[::-1]
    one = app_client.get(f"/v1/campaigns/{ids[0]}", headers=admin_headers).json()
    assert (one["name"], one["status"], one["created_by"]) == ("spring 0", "draft", "test-admin")
    assert app_client.get("/v1/campaigns", headers=admin_headers, params={"status": "launched"}).json()["items"] == []
    assert app_client.get("/v1/campaigns/999999", headers=admin_headers).status_code == 404


def test_journeys_are_listed_in_the_envelope_and_read_by_id(app_client, admin_headers):
    items, _ = walk(app_client, "/v1/journeys", admin_headers)
    assert {"welcome", "reactivation"} <= {j["key"] for j in items}
    first = items[-1]
    one = app_client.get(f"/v1/journeys/{first['id']}", headers=admin_headers).json()
    assert one == first
    assert app_client.get("/v1/journeys/999999", headers=admin_headers).json()["error"]["code"] == "journey_not_found"


def test_call_lists_and_their_leads_in_dialling_order(app_client, session, crm_headers):
    for _ in range(5):
        make_member(session, now=NOW - timedelta(days=200), consents={ContactChannel.PHONE: True})
    call_list = crm.create_call_list(session, name="family", product="family-plan", purpose="marketing", audience={},
                                     weights={}, interest_days=30, recall_hours=48, agent_capacity=20, now=NOW)
    crm.extract_leads(session, call_list_id=call_list.id, now=NOW)
    session.commit()
    lists = app_client.get("/v1/crm/call-lists", headers=crm_headers).json()
    assert call_list.id in [c["id"] for c in lists["items"]]
    assert app_client.get(f"/v1/crm/call-lists/{call_list.id}", headers=crm_headers).json()["name"] == "family"
    leads, pages = walk(app_client, f"/v1/crm/call-lists/{call_list.id}/leads", crm_headers, limit=2)
    assert len(leads) >= 5 and pages >= 3
    priorities = [lead["priority"] for lead in leads]
    assert priorities == sorted(priorities, reverse=True)
    pooled = app_client.get(f"/v1/crm/call-lists/{call_list.id}/leads", headers=crm_headers,
                            params={"state": "assigned"}).json()
    assert pooled["items"] == []


def test_complaints_across_members_open_ones_first_for_the_supervisor(app_client, session, crm_headers):
    a, b = make_member(session), make_member(session)
    first = gate.record_complaint(session, member_id=a.id, category="billing", note="", actor="x", now=NOW)
    gate.record_complaint(session, member_id=b.id, category="rude_call", note="", actor="x",
                          now=NOW + timedelta(hours=1))
    gate.resolve_complaint(session, member_id=a.id, complaint_id=first.id, resolution="refunded", actor="x", now=NOW)
    session.commit()
    everything = app_client.get("/v1/complaints", headers=crm_headers).json()["items"]
    assert [c["category"] for c in everything][:2] == ["rude_call", "billing"]
    still_open = app_client.get("/v1/complaints", headers=crm_headers, params={"open_only": True}).json()["items"]
    assert [c["member_id"] for c in still_open] == [b.id]
    mine = app_client.get("/v1/complaints", headers=crm_headers, params={"member_id": a.id}).json()["items"]
    assert [c["resolution"] for c in mine] == ["refunded"]


def test_job_runs_filter_by_status(app_client, session, admin_headers):
    for status in (JobRunStatus.SUCCEEDED, JobRunStatus.FAILED, JobRunStatus.SUCCEEDED):
        session.add(JobRun(job="expire-points", as_of=NOW, trigger="manual", status=status, host="h", pid=1,
                           started_at=NOW, counts={}, error="boom" if status == JobRunStatus.FAILED else None))
    session.commit()
    failed = app_client.get("/v1/admin/job-runs", headers=admin_headers, params={"status": "failed"}).json()["items"]
    assert [(r["status"], r["error"]) for r in failed] == [("failed", "boom")]


def test_the_access_log_is_for_supervisors_only(app_client, session, crm_headers, admin_headers):
    member = make_member(session, name="Sun Mei")
    app_client.get("/v1/members", params={"name_prefix": "Sun"}, headers=crm_headers)
    assert app_client.get("/v1/admin/access-log", headers=crm_headers).status_code == 403
    log = app_client.get("/v1/admin/access-log", headers=admin_headers, params={"member_id": member.id}).json()
    assert [(e["action"], e["agent_id"]) for e in log["items"]] == [("member.search", "agent-7")]
