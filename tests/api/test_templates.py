"""Templates as data: a versioned catalogue per channel with purpose and declared variables; journeys, campaigns
and touch requests name a template; an unknown placeholder or variable is a 422 naming it; a touch's purpose
is its template's."""

from datetime import UTC, datetime

from tests.api.test_contacts_api import at, setup_member


def publish(client, headers, **fields):
    return client.post("/v1/templates", headers=headers, json={"purpose": "marketing", **fields})


def test_an_undeclared_placeholder_is_refused_naming_it_and_publishing_again_adds_a_version(app_client, admin_headers):
    typo = publish(app_client, admin_headers, key="spring", body="Hi {nme}, spring offer", variables=["name"])
    assert typo.status_code == 422 and "{nme}" in typo.json()["error"]["message"]
    assert typo.json()["error"]["details"]["field"] == "body"
    broken = publish(app_client, admin_headers, key="spring", body="Hi {name", variables=["name"])
    assert broken.status_code == 422
    first = publish(app_client, admin_headers, key="spring", body="Hi {name}, spring offer", variables=["name"])
    second = publish(app_client, admin_headers, key="spring", body="{name}, spring offer (v2)", variables=["name"])
    sms = publish(app_client, admin_headers, key="spring", channel="sms", body="{name}: offer", variables=["name"])
    assert [r.json()["version"] for r in (first, second, sms)] == [1, 2, 1]
    relabel = publish(app_client, admin_headers, key="spring", purpose="service", body="x", variables=[])
    assert relabel.status_code == 422 and relabel.json()["error"]["code"] == "template_purpose_fixed"
    versions = app_client.get("/v1/templates/spring", headers=admin_headers).json()
    assert [(v["channel"], v["version"]) for v in versions] == [("any", 2), ("any", 1), ("sms", 1)]
    current = {(t["key"], t["channel"]): t for t in app_client.get("/v1/templates", headers=admin_headers).json()}
    assert current[("spring", "any")]["version"] == 2 and ("welcome", "any") in current  # built-ins listed


def test_a_touch_names_a_template_and_carries_its_purpose(app_client, app_headers, admin_headers):
    at(app_client, datetime(2026, 3, 10, 4, 0, tzinfo=UTC))
    publish(app_client, admin_headers, key="spring", body="Hi {name}, spring offer", variables=["name"])
    m = setup_member(app_client, app_headers)

    def touch(key, **fields):
        return app_client.post(f"/v1/members/{m['id']}/contacts", headers=app_headers,
                               json={"channel": "sms", "idempotency_key": key, **fields})

    unknown = touch("a", template="no_such")
    assert unknown.status_code == 422 and unknown.json()["error"]["code"] == "unknown_template"
    extra = touch("b", template="spring", variables={"name": "Li", "nme": "Li"})
    assert extra.status_code == 422 and "'nme'" in extra.json()["error"]["message"]
    missing = touch("c", template="spring", variables={})
    assert missing.status_code == 422 and "'name'" in missing.json()["error"]["message"]
    # Marketing cannot be sent labelled as service.
    disguised = touch("d", template="spring", purpose="service", variables={"name": "Li"})
    assert disguised.status_code == 422 and disguised.json()["error"]["code"] == "purpose_mismatch"
    sent = touch("e", template="spring", variables={"name": "Li"})
    assert sent.status_code == 201 and sent.json()["purpose"] == "marketing"


def test_journeys_and_campaigns_name_catalogue_templates(app_client, admin_headers):
    publish(app_client, admin_headers, key="vip_note", purpose="care", body="{name}, your code {secret}",
            variables=["name", "secret"])
    step = {"day": 0, "kind": "send", "channel": "sms"}
    for message, purpose, field in (("no_such", "care", "message"), ("vip_note", "care", "message"),
                                    ("first_offer", "care", "purpose")):
        answer = app_client.post("/v1/journeys", headers=admin_headers, json={
            "key": "j", "name": "J", "trigger": "member.dormant",
            "steps": [{**step, "message": message, "purpose": purpose}]})
        assert answer.status_code == 422 and answer.json()["error"]["details"]["field"] == field, answer.json()
    campaign = {"name": "spring", "channel": "sms", "audience": {}, "control_share": 0}
    unknown = app_client.post("/v1/campaigns", headers=admin_headers, json={**campaign, "template": "no_such"})
    assert unknown.status_code == 422 and unknown.json()["error"]["code"] == "unknown_template"
    unfillable = app_client.post("/v1/campaigns", headers=admin_headers, json={**campaign, "template": "vip_note"})
    assert unfillable.status_code == 422 and "{secret}" in unfillable.json()["error"]["message"]
    created = app_client.post("/v1/campaigns", headers=admin_headers, json={**campaign, "template": "first_offer"})
    assert created.status_code == 201
    shown = app_client.get(f"/v1/campaigns/{created.json()['id']}", headers=admin_headers).json()
    assert shown["purpose"] == "marketing" and shown["body"].startswith("{name}, a first thank-you offer")
