"""Campaign drafts through the API (issue #16): listed, read, edited and deleted while they are drafts (409 once
approved or launched); the preview says how many of the audience the contact gate would let through now, by
reason, on members of every consent profile — the gate's own decision (``gate.evaluate_contacts``) on the channel
the one channel rule picks."""

from datetime import UTC, datetime, timedelta

import pytest

from api.deps import get_now
from domain.contact_policy import service as gate
from domain.members.models import ContactChannel
from tests.factories import make_member, make_staff, staff_auth

NOW = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai, 04:00 in London
OLD = NOW - timedelta(days=400)


@pytest.fixture(autouse=True)
def clock(app_client):
    app_client.app.dependency_overrides[get_now] = lambda: NOW


@pytest.fixture
def marketer(session):
    return staff_auth(session, make_staff(session, role="marketer", username="mk-1"))


@pytest.fixture
def supervisor(session):
    return staff_auth(session, make_staff(session, role="supervisor", username="sup-1"))


def _draft(client, headers, **overrides):
    body = {"name": "spring", "channel": "sms", "template": "first_offer", "audience": {"tiers": ["D"]},
            **overrides}
    created = client.post("/v1/campaigns", headers=headers, json=body)
    assert created.status_code == 201, created.text
    return created.json()["id"]


def test_a_draft_is_listed_read_edited_and_deleted(app_client, marketer):
    kept, dropped = _draft(app_client, marketer), _draft(app_client, marketer, name="autumn")
    listed = app_client.get("/v1/campaigns?status=draft", headers=marketer).json()["items"]
    assert {c["id"] for c in listed} == {kept, dropped}
    edited = app_client.patch(f"/v1/campaigns/{kept}", headers=marketer,
                              json={"name": "spring, Shanghai only", "audience": {"cities": ["Shanghai"]},
                                    "control_share": 0.2})
    assert edited.status_code == 200, edited.text
    read = app_client.get(f"/v1/campaigns/{kept}", headers=marketer).json()
    assert (read["name"], read["audience"], read["control_share"], read["status"]) == (
        "spring, Shanghai only", {"cities": ["Shanghai"]}, 0.2, "draft")
    # An edit is checked as a creation is: an unknown filter or template is a 422 and changes nothing.
    bad_filter = app_client.patch(f"/v1/campaigns/{kept}", headers=marketer, json={"audience": {"star_sign": "leo"}})
    assert bad_filter.status_code == 422
    bad_template = app_client.patch(f"/v1/campaigns/{kept}", headers=marketer, json={"template": "no_such"})
    assert bad_template.status_code == 422
    assert app_client.get(f"/v1/campaigns/{kept}", headers=marketer).json()["template"] == "first_offer"
    deleted = app_client.delete(f"/v1/campaigns/{dropped}", headers=marketer)
    assert deleted.status_code == 204
    assert app_client.get(f"/v1/campaigns/{dropped}", headers=marketer).status_code == 404
    assert app_client.delete(f"/v1/campaigns/{dropped}", headers=marketer).status_code == 404


def test_an_approved_or_launched_campaign_can_no_longer_be_edited_or_deleted(app_client, marketer, supervisor):
    campaign = _draft(app_client, marketer)
    assert app_client.post(f"/v1/campaigns/{campaign}/approve", headers=supervisor).status_code == 200
    for step in ("approved", "launched"):
        edit = app_client.patch(f"/v1/campaigns/{campaign}", headers=marketer, json={"name": "changed"})
        assert edit.status_code == 409 and edit.json()["error"]["code"] == "campaign_not_draft"
        assert edit.json()["error"]["details"] == {"status": step}
        delete = app_client.delete(f"/v1/campaigns/{campaign}", headers=marketer)
        assert delete.status_code == 409 and delete.json()["error"]["code"] == "campaign_not_draft"
        if step == "approved":
            assert app_client.post(f"/v1/campaigns/{campaign}/launch", headers=marketer).status_code == 200
    assert app_client.get(f"/v1/campaigns/{campaign}", headers=marketer).json()["name"] == "spring"


def test_the_preview_counts_what_the_gate_would_do_now_on_every_consent_profile(app_client, session, marketer):
    def member(consents, zone="Asia/Shanghai", **kw):
        return make_member(session, now=OLD, timezone=zone, consents=consents,
                           email=f"p{len(kw)}-{len(consents)}-{zone[:4]}-{kw.get('tag', '')}@example.com",
                           wechat_openid=f"o-{zone}-{kw.get('tag', '')}-{len(consents)}", city="Shanghai")

    member({ContactChannel.SMS: True}, tag="sms")
    member({ContactChannel.EMAIL: True}, tag="email")
    member({ContactChannel.APP: True}, tag="app")
    member({ContactChannel.WECHAT: True}, tag="wechat")
    member({}, tag="none")
    member({ContactChannel.SMS: True}, zone="Europe/London", tag="london")
    complained = member({ContactChannel.SMS: True}, tag="complained")
    gate.record_complaint(session, member_id=complained.id, category="service", note="", actor="t",
                          now=NOW - timedelta(days=5))
    session.commit()
    campaign = _draft(app_client, marketer, channel="preferred", audience={"cities": ["Shanghai"]})
    shown = app_client.get(f"/v1/campaigns/{campaign}/preview", headers=marketer)
    assert shown.status_code == 200, shown.text
    body = shown.json()
    assert body["audience_size"] == 7
    assert body["gate_now"] == {
        "basis": "audience", "evaluated": 7, "approved": 4, "deferred": 1, "rejected": 2,
        "by_reason": {"complaint_cooldown": 1, "no_reachable_channel": 1, "quiet_hours": 1},
        "approved_by_channel": {"app": 1, "email": 1, "sms": 1, "wechat": 1}}
    # On SMS alone, the members who gave SMS no consent are what the gate refuses for marketing.
    app_client.patch(f"/v1/campaigns/{campaign}", headers=marketer, json={"channel": "sms"})
    on_sms = app_client.get(f"/v1/campaigns/{campaign}/preview", headers=marketer).json()["gate_now"]
    assert (on_sms["approved"], on_sms["deferred"], on_sms["rejected"]) == (1, 1, 5)
    assert on_sms["by_reason"] == {"complaint_cooldown": 1, "consent_missing": 4, "quiet_hours": 1}
