"""Group customers over HTTP: accounts, people in roles, families with consent, the tier's source everywhere."""

from datetime import UTC, datetime

from api.deps import get_now
from tests.factories import make_staff

NOW = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)


def _member(client, headers, name, phone):
    return client.post("/v1/members", headers=headers, json={
        "source_channel": "store", "phone": phone, "name": name, "joined_at": "2025-01-01T00:00:00Z"}).json()


def test_the_crm_lookup_of_a_leaders_spouse_explains_where_the_tier_comes_from(app_client, app_headers, crm_headers,
                                                                                admin_headers, session):
    app_client.app.dependency_overrides[get_now] = lambda: NOW
    manager = make_staff(session, role="supervisor").id
    org = app_client.post("/v1/organisations", headers=admin_headers, json={
        "name": "Huaxia Logistics", "revenue_class": "key", "industry": "logistics", "size": 800})
    assert org.status_code == 201, org.text
    org_id = org.json()["id"]
    assert (org.json()["service_tier"], org.json()["key_account"]) == ("A", True)
    assert app_client.put(f"/v1/organisations/{org_id}/manager", headers=admin_headers,
                          json={"staff_id": manager}).status_code == 200
    leader = _member(app_client, app_headers, "Chen Jie", "13800138101")
    spouse = _member(app_client, app_headers, "Liu Yan", "13800138102")
    linked = app_client.put(f"/v1/organisations/{org_id}/members/{leader['id']}", headers=crm_headers,
                            json={"role": "leader"})
    assert linked.status_code == 200 and linked.json()["role"] == "leader"
    family = app_client.post(f"/v1/members/{leader['id']}/family", headers=crm_headers, json={
        "relative_id": spouse["id"], "relation": "spouse", "consent_source": "call recording R-88"})
    assert family.status_code == 201, family.text
    replay = app_client.post(f"/v1/members/{leader['id']}/family", headers=crm_headers, json={
        "relative_id": spouse["id"], "relation": "spouse", "consent_source": "call recording R-88"})
    assert replay.status_code == 200 and replay.json()["replayed"]

    look = app_client.get("/v1/crm/members/lookup", params={"phone": "13800138102"}, headers=crm_headers)
    assert look.status_code == 200, look.text
    picture = look.json()
    assert picture["tier"]["tier"] == "D"
    served = picture["treatment"]
    assert (served["tier"], served["own_tier"], served["source"]) == ("A", "D", "family")
    assert (served["organisation"], served["via_member"], served["relation"]) == ("Huaxia Logistics", "Chen Jie",
                                                                                  "spouse")
    assert served["explanation"].startswith("tier A: family of Chen Jie")
    assert [(f["member_id"], f["name"], f["relation"]) for f in picture["family"]] == [
        (leader["id"], "Chen Jie", "spouse")]
    assert picture["organisations"] == []
    listed = app_client.get("/v1/members", params={"name_prefix": "Liu Yan"}, headers=crm_headers).json()["items"]
    assert [(m["tier"], m["served_tier"]) for m in listed] == [("D", "A")]  # lists show the tier served at

    leader_look = app_client.get("/v1/crm/members/lookup", params={"phone": "13800138101"}, headers=crm_headers).json()
    assert [(o["name"], o["role"], o["manager_staff_id"]) for o in leader_look["organisations"]] == [
        ("Huaxia Logistics", "leader", manager)]
    assert leader_look["treatment"]["source"] == "organisation"

    tier = app_client.get(f"/v1/members/{spouse['id']}/tier", headers=crm_headers).json()
    assert (tier["tier"], tier["treatment"]["tier"], tier["treatment"]["source"]) == ("D", "A", "family")
    read = app_client.get(f"/v1/members/{spouse['id']}", headers=crm_headers).json()
    assert (read["tier"], read["treatment"]["tier"], read["treatment"]["source"]) == ("D", "A", "family")
    own = app_client.get(f"/v1/members/{spouse['id']}/treatment", headers=crm_headers).json()
    assert own["via_member_id"] == leader["id"]

    account = app_client.get(f"/v1/organisations/{org_id}", headers=crm_headers).json()
    assert [(p["member_id"], p["role"]) for p in account["people"]] == [(leader["id"], "leader")]

    ended = app_client.delete(f"/v1/family-links/{family.json()['id']}", headers=crm_headers)
    assert ended.status_code == 200 and ended.json()["removed_at"] is not None
    # Removing the link is not retroactive: the benefit holds until the next tier evaluation.
    assert app_client.get(f"/v1/members/{spouse['id']}/treatment", headers=crm_headers).json()["tier"] == "A"


def test_bad_group_input_answers_4xx_in_the_one_error_shape(app_client, app_headers, crm_headers, admin_headers):
    org_id = app_client.post("/v1/organisations", headers=admin_headers,
                             json={"name": "Dup Co", "revenue_class": "small"}).json()["id"]
    dup = app_client.post("/v1/organisations", headers=admin_headers, json={"name": "Dup Co", "revenue_class": "small"})
    assert dup.status_code == 409 and dup.json()["error"]["code"] == "organisation_exists"
    bad = app_client.post(f"/v1/organisations/{org_id}/contracts", headers=admin_headers, json={
        "reference": "C-1", "starts_on": "2026-05-01", "ends_on": "2026-01-01"})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_contract_term"
    member = _member(app_client, app_headers, "Solo", "13800138109")
    self_link = app_client.post(f"/v1/members/{member['id']}/family", headers=crm_headers, json={
        "relative_id": member["id"], "relation": "spouse", "consent_source": "app"})
    assert self_link.status_code == 422
    assert app_client.post("/v1/organisations", headers=crm_headers,
                           json={"name": "X", "revenue_class": "key"}).status_code == 403


def test_the_eleventh_key_account_for_one_manager_is_refused(app_client, admin_headers, session):
    manager = make_staff(session, role="supervisor").id
    ids = [app_client.post("/v1/organisations", headers=admin_headers,
                           json={"name": f"Key {i}", "revenue_class": "key"}).json()["id"] for i in range(11)]
    answers = [app_client.put(f"/v1/organisations/{i}/manager", headers=admin_headers, json={"staff_id": manager})
               for i in ids]
    assert [a.status_code for a in answers] == [200] * 10 + [422]
    assert answers[-1].json()["error"]["code"] == "manager_at_capacity"
    assert answers[-1].json()["error"]["details"] == {"staff_id": manager, "held": 10, "cap": 10}


def test_the_account_team_names_staff_accounts_and_an_unknown_or_disabled_one_is_a_404(app_client, admin_headers,
                                                                                       session):
    from datetime import UTC, datetime

    from sqlmodel import select

    from domain.organisations.models import AccountTeamMember

    org_id = app_client.post("/v1/organisations", headers=admin_headers,
                             json={"name": "Team Co", "revenue_class": "large"}).json()["id"]
    deputy = make_staff(session, role="agent")
    named = app_client.put(f"/v1/organisations/{org_id}/team/{deputy.id}/deputy", headers=admin_headers)
    assert named.status_code == 200, named.text
    team = session.exec(select(AccountTeamMember).where(AccountTeamMember.organisation_id == org_id)).all()
    assert [(t.staff_id, t.role) for t in team] == [(deputy.id, "deputy")]
    left = make_staff(session, role="agent")
    left.disabled_at = datetime(2026, 1, 1, tzinfo=UTC)
    session.add(left)
    session.commit()
    for staff_id in (999_999, left.id):
        for answer in (app_client.put(f"/v1/organisations/{org_id}/team/{staff_id}/deputy", headers=admin_headers),
                       app_client.put(f"/v1/organisations/{org_id}/manager", headers=admin_headers,
                                      json={"staff_id": staff_id})):
            assert answer.status_code == 404, answer.text
            assert answer.json()["error"]["code"] == "staff_not_found"
            assert answer.json()["error"]["details"] == {"staff_ids": [staff_id]}


def test_supervisors_run_accounts_and_a_logged_in_agent_logs_visits_in_their_own_name(app_client, staff_headers):
    supervisor, agent = staff_headers("supervisor"), staff_headers("agent")
    assert app_client.post("/v1/organisations", headers=agent,
                           json={"name": "Staff Co", "revenue_class": "large"}).status_code == 403
    org = app_client.post("/v1/organisations", headers=supervisor, json={"name": "Staff Co", "revenue_class": "large"})
    assert org.status_code == 201, org.text
    visit = app_client.post(f"/v1/organisations/{org.json()['id']}/visits", headers=agent, json={
        "visited_at": "2026-03-05T02:00:00Z", "needs": ["fleet cards"],
        "follow_ups": [{"action": "send a quote", "due_on": "2026-03-12"}]})
    assert visit.status_code == 201, visit.text
    assert visit.json()["staff_id"] is not None and visit.json()["follow_ups"][0]["action"] == "send a quote"


def test_every_account_answer_is_a_typed_model(app_client, session, admin_headers, app_headers):
    manager = make_staff(session, role="supervisor").id
    org_id = app_client.post("/v1/organisations", headers=admin_headers,
                             json={"name": "Typed Co", "revenue_class": "key"}).json()["id"]
    base = f"/v1/organisations/{org_id}"

    def ok(answer, status=200):
        assert answer.status_code == status, answer.text
        return answer.json()

    assert ok(app_client.put(f"{base}/team/{manager}/deputy", headers=admin_headers))["staff_id"] == manager
    assert ok(app_client.put(f"{base}/dates/founding_anniversary", headers=admin_headers,
                             json={"label": "Founded", "on_date": "2001-05-20"}))["on_date"] == "2001-05-20"
    assert ok(app_client.post("/v1/organisations/allocate", headers=admin_headers,
                              json={"staff_ids": [manager]}))["allocated"] == {str(org_id): manager}
    visit = ok(app_client.post(f"{base}/visits", headers=admin_headers, json={
        "staff_id": manager, "visited_at": "2026-03-05T02:00:00Z",
        "follow_ups": [{"action": "send a quote", "due_on": "2026-03-12"}]}), 201)
    assert visit["follow_ups"] == [{"action": "send a quote", "due_on": "2026-03-12", "owner_staff_id": None}]
    plan = ok(app_client.get(f"{base}/visit-plan", headers=admin_headers))
    assert plan["visits_per_year"] == 24 and [v["id"] for v in plan["recent_visits"]] == [visit["id"]]
    report = ok(app_client.get("/v1/account-managers/visit-report", params={"month": "2026-03"},
                               headers=admin_headers))
    assert [(r["staff_id"], r["done"]) for r in report] == [(manager, 1)]
    complaint = ok(app_client.post(f"{base}/complaints", headers=admin_headers, json={"category": "billing"}), 201)
    assert complaint["owner_staff_id"] == manager
    assert ok(app_client.get(f"{base}/complaints", headers=admin_headers))[0]["id"] == complaint["id"]
    answered = ok(app_client.post(f"{base}/complaints/{complaint['id']}/response", headers=admin_headers,
                                  json={"response": "credited"}))
    assert answered["response"] == "credited"
    detail = ok(app_client.get(base, headers=admin_headers))
    assert detail["team"][0]["role"] == "deputy" and detail["important_dates"][0]["kind"] == "founding_anniversary"

    owner = _member(app_client, app_headers, "Ma Li", "13800138201")
    child = _member(app_client, app_headers, "Ma Xiao", "13800138202")
    ok(app_client.post(f"/v1/members/{owner['id']}/family", headers=admin_headers, json={
        "relative_id": child["id"], "relation": "child", "consent_source": "form 3"}), 201)
    pool = ok(app_client.post("/v1/points-pools", headers=admin_headers,
                              json={"owner_member_id": owner["id"], "name": "Ma family"}), 201)
    joined = ok(app_client.put(f"/v1/points-pools/{pool['id']}/members/{child['id']}", headers=admin_headers,
                               json={"consent_source": "form 3"}))
    assert [m["member_id"] for m in joined["members"]] == [child["id"]]
    assert ok(app_client.post(f"/v1/points-pools/{pool['id']}/sweep", headers=admin_headers)) == {
        "points_pooled": 0, "contributors": 0}
    assert ok(app_client.delete(f"/v1/points-pools/{pool['id']}/members/{child['id']}",
                                headers=admin_headers))["members"] == []
