"""Channel usage over HTTP: a batch is idempotent; the scores and the gains chart are served."""

from datetime import UTC, datetime

from domain.scores import report as score_report
from domain.scores import service as scores
from tests.factories import make_member

JOINED = datetime(2025, 6, 1, 4, 0, tzinfo=UTC)


def test_a_usage_batch_sent_twice_changes_nothing_the_second_time(app_client, session, admin_headers):
    member = make_member(session, now=JOINED)
    body = {"source": "ivr", "facts": [{"member_id": member.id, "channel": "phone", "day": "2026-11-03",
                                        "transactions": 2}]}
    first = app_client.post("/v1/channel-usage", json=body, headers=admin_headers)
    assert first.status_code == 200, first.text
    assert first.json() == {"received": 1, "changed": 1}
    assert app_client.post("/v1/channel-usage", json=body, headers=admin_headers).json() == {"received": 1,
                                                                                             "changed": 0}


def test_a_usage_batch_with_a_bad_channel_or_reserved_source_is_a_422(app_client, session, admin_headers):
    member = make_member(session, now=JOINED)
    fact = {"member_id": member.id, "channel": "fax", "day": "2026-11-03", "transactions": 2}
    assert app_client.post("/v1/channel-usage", json={"source": "ivr", "facts": [fact]},
                           headers=admin_headers).status_code == 422
    reserved = app_client.post("/v1/channel-usage", json={"source": "product", "facts": []}, headers=admin_headers)
    assert reserved.status_code == 422 and reserved.json()["error"]["code"] == "reserved_source"


def test_the_member_scores_and_the_top_channel_reason_are_served(app_client, session, crm_headers):
    member = make_member(session, now=JOINED)
    scores.ingest_usage(session, source="ivr", rows=[scores.UsageRow(member.id, "phone", datetime(2026, 11, 3).date(),
                                                                     4)], now=JOINED)
    scores.score_members(session, as_of=datetime(2026, 12, 1).date(), seed=1, now=JOINED)
    body = app_client.get(f"/v1/members/{member.id}/channel-scores", headers=crm_headers).json()
    assert body["scores"]["phone"] == 1.0 and body["top"]["channel"] == "phone" and body["top"]["why"]


def test_the_gains_chart_is_a_png_once_a_validation_ran(app_client, session, admin_headers):
    assert app_client.get("/v1/admin/scores/gains.png", headers=admin_headers).status_code == 404
    for _ in range(4):
        make_member(session, now=JOINED)
    report = score_report.validate(session, as_of=datetime(2026, 12, 1).date(), seed=1)
    score_report.store_report(session, report=report, now=JOINED)
    response = app_client.get("/v1/admin/scores/gains.png", headers=admin_headers)
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert response.content.startswith(b"\x89PNG")


def test_the_lifecycle_and_the_at_risk_list_are_served(app_client, session, crm_headers):
    from datetime import timedelta

    from domain.lifecycle import service as lifecycle

    as_of = datetime(2026, 12, 1, tzinfo=UTC)
    member = make_member(session, now=as_of - timedelta(days=250))
    lifecycle.refresh_lifecycle(session, as_of=as_of, member_range=(member.id, member.id))
    lifecycle.refresh_churn_risk(session, as_of=as_of, member_range=(member.id, member.id))
    body = app_client.get(f"/v1/members/{member.id}/lifecycle", headers=crm_headers).json()
    assert body["stage"] == "decline" and body["churn"]["cohort"] == "6_12m" and body["churn"]["at_risk"]
    listed = app_client.get("/v1/crm/at-risk?cohort=6_12m", headers=crm_headers).json()
    assert member.id in [r["member_id"] for r in listed]
    assert app_client.get("/v1/crm/at-risk?cohort=teen", headers=crm_headers).status_code == 422


def test_a_member_sees_their_own_lifecycle_stage_but_not_the_churn_warning(app_client, session):
    from datetime import timedelta

    from domain.lifecycle import service as lifecycle
    from tests.factories import member_auth

    as_of = datetime(2026, 12, 1, tzinfo=UTC)
    member = make_member(session, now=as_of - timedelta(days=250))
    assert app_client.get("/v1/me/stage", headers=member_auth(session, member)).json() == {"stage": None,
                                                                                           "as_of": None}
    lifecycle.refresh_lifecycle(session, as_of=as_of, member_range=(member.id, member.id))
    lifecycle.refresh_churn_risk(session, as_of=as_of, member_range=(member.id, member.id))
    body = app_client.get("/v1/me/stage", headers=member_auth(session, member)).json()
    assert body == {"stage": "decline", "as_of": "2026-12-01"}
