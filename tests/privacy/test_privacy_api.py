"""Privacy routes: operators and an admin key only, access-logged, erasure idempotent."""

import sqlalchemy as sa

from domain.points.service import verify_points
from tests.factories import make_member, make_order


def test_export_and_erase_over_http(app_client, session, admin_headers, crm_key_headers, staff_headers):
    member = make_member(session, phone="+8613911112222", name="Wang Fang")
    make_order(session, member_id=member.id, amount_fen=120_000)
    reason = {"X-Access-Reason": "privacy request #12"}

    refused = app_client.get(f"/v1/admin/members/{member.id}/privacy-export", headers={**crm_key_headers, **reason})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "scope_forbidden"
    no_reason = app_client.get(f"/v1/admin/members/{member.id}/privacy-export", headers=admin_headers)
    assert no_reason.status_code == 422

    operator = staff_headers("operator", username="op-1")
    exported = app_client.get(f"/v1/admin/members/{member.id}/privacy-export", headers={**operator, **reason})
    assert exported.status_code == 200, exported.text
    assert exported.json()["tables"]["members"][0]["phone"] == "+8613911112222"
    assert len(exported.json()["tables"]["orders"]) == 1
    logged = session.execute(sa.text("SELECT agent_id, action, reason FROM access_log WHERE member_id = :m"),
                             {"m": member.id}).tuples().all()
    assert logged == [("op-1", "privacy.export", "privacy request #12")]

    body = {"reason": "privacy request #12"}
    first = app_client.post(f"/v1/admin/members/{member.id}/erasure", json=body, headers=admin_headers)
    assert first.status_code == 201 and first.json()["replayed"] is False, first.text
    again = app_client.post(f"/v1/admin/members/{member.id}/erasure", json=body, headers=admin_headers)
    assert again.status_code == 200 and again.json()["replayed"] is True
    assert again.json()["erased_at"] == first.json()["erased_at"]
    gone = app_client.get("/v1/members/lookup", params={"phone": "+8613911112222"}, headers=crm_key_headers)
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "member_not_found"
    assert verify_points(session) == []

    missing = app_client.post("/v1/admin/members/999999/erasure", json=body, headers=admin_headers)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "member_not_found"
    empty = app_client.post(f"/v1/admin/members/{member.id}/erasure", json={"reason": ""}, headers=admin_headers)
    assert empty.status_code == 422
