"""``next-lead`` hands out only members who may be called now, and says so (issue #16). The contact gate decides
(``gate.evaluate_contacts``): quiet hours in the member's own zone, caps filled since the extraction, a complaint
since, an opt-out since. The call list does not reimplement any of it."""

from datetime import UTC, datetime, timedelta

import pytest

from api.deps import get_now
from domain.contact_policy import service as gate
from domain.members.models import ContactChannel
from domain.members.service import set_consent
from tests.factories import make_member, make_staff, staff_auth

NOW = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai, 04:00 in London (quiet until 09:00)
DAY = timedelta(days=1)
PROFILES = {  # every consent profile; none of them gave the phone channel its consent
    "only_sms": {ContactChannel.SMS: True}, "only_email": {ContactChannel.EMAIL: True},
    "only_app": {ContactChannel.APP: True}, "only_wechat": {ContactChannel.WECHAT: True}, "none": {},
}


@pytest.fixture(autouse=True)
def clock(app_client):
    app_client.app.dependency_overrides[get_now] = lambda: NOW


def _members(session, timezone: str) -> dict[str, int]:
    return {name: make_member(session, now=NOW - 200 * DAY, timezone=timezone, consents=consents,
                              email=f"{name}-{timezone.replace('/', '-')}@example.com".lower(),
                              wechat_openid=f"o-{name}-{timezone}").id
            for name, consents in PROFILES.items()}


def _list(client, headers, purpose: str) -> tuple[int, dict]:
    created = client.post("/v1/crm/call-lists", headers=headers,
                          json={"name": "care round", "product": "thanks", "purpose": purpose})
    assert created.status_code == 201, created.text
    list_id = created.json()["id"]
    extracted = client.post(f"/v1/crm/call-lists/{list_id}/extract", headers=headers)
    assert extracted.status_code == 200
    return list_id, extracted.json()


def test_a_care_list_hands_out_only_members_outside_their_quiet_hours_and_says_when_the_rest_can_be_called(
        app_client, session):
    shanghai, london = _members(session, "Asia/Shanghai"), _members(session, "Europe/London")
    supervisor = staff_auth(session, make_staff(session, role="supervisor"))
    agent = staff_auth(session, make_staff(session, role="agent", username="agent-q"))
    list_id, extracted = _list(app_client, supervisor, "care")
    assert extracted["excluded"] == {}
    handed = []
    while True:
        pulled = app_client.post(f"/v1/crm/call-lists/{list_id}/next-lead", headers=agent)
        assert pulled.status_code == 200, pulled.text
        body = pulled.json()
        if body["lead"] is None:
            break
        handed.append(body["lead"]["member_id"])
        app_client.post(f"/v1/crm/members/{body['lead']['member_id']}/call-outcomes", headers=agent,
                        json={"outcome": "reached", "lead_id": body["lead"]["id"]})
    # Every consent profile in Shanghai is callable for care at noon; every one in London is asleep.
    assert sorted(handed) == sorted(shanghai.values())
    assert body["skipped"] == len(london) and body["skipped_by_reason"] == {"quiet_hours": len(london)}
    assert datetime.fromisoformat(body["next_callable_at"]) == datetime(2026, 3, 10, 9, 0, tzinfo=UTC)


def test_a_marketing_lead_is_held_back_when_the_member_complained_or_opted_out_after_the_extraction(
        app_client, session):
    callers = [make_member(session, now=NOW - 200 * DAY, consents={ContactChannel.PHONE: True}) for _ in range(3)]
    by_profile = _members(session, "Asia/Shanghai")
    supervisor = staff_auth(session, make_staff(session, role="supervisor"))
    agent = staff_auth(session, make_staff(session, role="agent", username="agent-m"))
    list_id, extracted = _list(app_client, supervisor, "marketing")
    # None of the other consent profiles gave the phone its consent: the extraction left them out for marketing.
    assert extracted["excluded"] == {"consent_missing": len(by_profile)}
    complained, opted_out, fine = callers
    gate.record_complaint(session, member_id=complained.id, category="billing", note="", actor="t", now=NOW - DAY)
    set_consent(session, member_id=opted_out.id, channel=ContactChannel.PHONE, granted=False, source="call",
                now=NOW - DAY)
    session.commit()
    first = app_client.post(f"/v1/crm/call-lists/{list_id}/next-lead", headers=agent).json()
    assert first["lead"]["member_id"] == fine.id
    second = app_client.post(f"/v1/crm/call-lists/{list_id}/next-lead", headers=agent).json()
    assert second["lead"] is None and second["skipped"] == 2
    assert second["skipped_by_reason"] == {"complaint_cooldown": 1, "consent_opted_out": 1}
    # The cool-down lifts 90 days after the complaint; an opt-out never lifts by waiting.
    assert datetime.fromisoformat(second["next_callable_at"]) == NOW - DAY + 90 * DAY
