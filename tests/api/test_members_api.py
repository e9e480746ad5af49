from sqlmodel import select

from domain.access.models import AccessLogEntry


def create(client, headers, **body):
    return client.post("/v1/members", json={"source_channel": "app", **body}, headers=headers)


def assert_error_shape(response, status, code=None):
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details", "request_id"}
    if code:
        assert body["error"]["code"] == code


def test_create_read_update_and_look_up_a_member(app_client, app_headers, admin_headers):
    created = create(app_client, app_headers, phone="+86 138-0013-8000", name="Han Meimei",
                     source_campaign="S26", consents={"sms": True}, external_ids={"pos": "P1"})
    assert created.status_code == 201, created.text
    member = created.json()
    assert member["phone"] == "+8613800138000" and member["tier"] == "D" and member["status"] == "active"
    assert member["consents"] == {"sms": "granted"} and member["external_ids"] == {"pos": "P1"}

    read = app_client.get(f"/v1/members/{member['id']}", headers=admin_headers)
    assert read.status_code == 200 and read.json()["member_code"] == member["member_code"]

    patched = app_client.patch(f"/v1/members/{member['id']}", json={"city": "Hangzhou", "timezone": "Asia/Urumqi"},
                               headers=admin_headers)
    assert patched.status_code == 200 and patched.json()["city"] == "Hangzhou"

    for query in ({"phone": "13800138000"}, {"code": member["member_code"]},
                  {"external_system": "pos", "external_id": "P1"}):
        found = app_client.get("/v1/members/lookup", params=query, headers=admin_headers)
        assert found.status_code == 200 and found.json()["id"] == member["id"], query


def test_a_prospect_from_wechat_binds_a_phone_later(app_client, app_headers, admin_headers):
    prospect = create(app_client, app_headers, wechat_openid="o-xyz", source_channel="wechat").json()
    assert prospect["status"] == "prospect"
    found = app_client.get("/v1/members/lookup", params={"openid": "o-xyz"}, headers=admin_headers)
    assert found.json()["id"] == prospect["id"]
    bound = app_client.patch(f"/v1/members/{prospect['id']}", json={"phone": "13800138002"}, headers=admin_headers)
    assert bound.json()["status"] == "active"


def test_duplicate_phone_is_409_naming_the_existing_member(app_client, app_headers):
    first = create(app_client, app_headers, phone="13800138000").json()
    second = create(app_client, app_headers, phone="+86 138 0013 8000")
    assert_error_shape(second, 409, "phone_taken")
    assert second.json()["error"]["details"]["member_id"] == first["id"]


def test_malformed_input_is_422_with_the_error_shape(app_client, app_headers, admin_headers):
    assert_error_shape(create(app_client, app_headers, phone="12345"), 422, "invalid_phone")
    assert_error_shape(create(app_client, app_headers, phone="13800138000", timezone="Mars/Base"), 422,
                       "invalid_timezone")
    assert_error_shape(create(app_client, app_headers, phone="13800138000", colour="blue"), 422, "validation_error")
    assert_error_shape(app_client.post("/v1/members", content=b"{not json", headers=app_headers), 422)
    assert_error_shape(app_client.get("/v1/members/lookup", headers=admin_headers), 422, "lookup_key_required")
    assert_error_shape(app_client.get("/v1/members/abc", headers=admin_headers), 422, "validation_error")


def test_unknown_member_is_404(app_client, app_headers, admin_headers):
    assert_error_shape(app_client.get("/v1/members/999999", headers=admin_headers), 404, "member_not_found")


def test_calls_without_a_valid_key_are_401(app_client):
    assert_error_shape(app_client.get("/v1/members/1"), 401, "missing_api_key")
    assert_error_shape(app_client.get("/v1/members/1", headers={"Authorization": "Bearer lk_nope_nope"}), 401,
                       "invalid_api_key")
    response = create(app_client, {}, phone="13800138000")
    assert response.status_code == 401


def test_a_key_of_the_wrong_scope_is_403(app_client, app_headers, admin_headers):
    assert_error_shape(app_client.get("/v1/admin/job-runs", headers=app_headers), 403, "scope_forbidden")
    member = create(app_client, app_headers, phone="13800138000").json()  # an app enrols, then reads by id no more
    assert_error_shape(app_client.get(f"/v1/members/{member['id']}", headers=app_headers), 403, "scope_forbidden")
    assert_error_shape(app_client.patch(f"/v1/members/{member['id']}", json={"phone": "13800138001"},
                                        headers=app_headers), 403, "scope_forbidden")
    assert app_client.get("/v1/admin/job-runs", headers=admin_headers).status_code == 200


def test_every_read_of_personal_data_by_a_system_or_a_person_is_written_to_the_access_log(
        app_client, app_headers, admin_headers, crm_headers, session):
    member = create(app_client, app_headers, phone="13800138000").json()
    app_client.get(f"/v1/members/{member['id']}", headers=admin_headers)
    app_client.get("/v1/members/lookup", params={"phone": "13800138000"},
                   headers={**crm_headers, "X-Access-Reason": "inbound call"})
    log = session.exec(select(AccessLogEntry).where(AccessLogEntry.member_id == member["id"])
                       .order_by(AccessLogEntry.id)).all()
    assert [(e.api_key_name, e.agent_id, e.reason) for e in log] == [
        ("test-admin", None, "unspecified"), (None, "agent-7", "inbound call")]
    assert log[1].staff_id is not None


def test_closing_a_member_over_http(app_client, app_headers, admin_headers):
    member = create(app_client, app_headers, phone="13800138000").json()
    closed = app_client.post(f"/v1/members/{member['id']}/close", json={"reason": "asked"}, headers=admin_headers)
    assert closed.json()["status"] == "closed"
    assert_error_shape(app_client.patch(f"/v1/members/{member['id']}", json={"name": "x"}, headers=admin_headers),
                       409, "member_closed")


def test_health_endpoints_answer(app_client):
    assert app_client.get("/healthz").json() == {"status": "ok"}
    ready = app_client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["revision"]
