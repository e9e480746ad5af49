"""Journeys do what they promise: validated whole at creation and edit, isolated at run time, welcome and
reactivation semantics, one step per gap when catching up — through the API and the jobs on the clock."""

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session

from domain.db import unit_of_work
from domain.journeys import service as journeys
from domain.members.models import ContactChannel, SourceChannel
from jobs.runner import run_job
from tests.factories import make_member, make_order
from tests.jobs.test_journeys import no_control, steps_of

T = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
DAY = timedelta(days=1)
HOUR = timedelta(hours=1)
SMS = {ContactChannel.SMS: True}
SEND = {"day": 0, "kind": "send", "message": "comeback_offer", "channel": "sms", "purpose": "marketing"}


def run(engine, job, at):
    outcome = run_job(job, engine=engine, as_of=at)
    assert outcome.status == "succeeded", outcome.error
    return outcome.counts


def states(engine, member_id):
    with Session(engine) as session:
        return dict(session.execute(sa.text(
            "SELECT j.key, e.state FROM journey_enrollments e JOIN journeys j ON j.id = e.journey_id "
            "WHERE e.member_id = :m"), {"m": member_id}).all())


# --- validation -------------------------------------------------------------------------------------


def test_a_journey_is_validated_whole_and_the_422_names_the_step(app_client, admin_headers):
    def create(steps, trigger="member.dormant"):
        return app_client.post("/v1/journeys", headers=admin_headers, json={
            "key": "winback", "name": "Win-back", "trigger": trigger, "steps": steps})

    cases = [
        ([SEND, {**SEND, "day": 3, "channel": "fax"}], 1, "channel"),
        ([{**SEND, "message": "no_such_template"}], 0, "message"),
        ([{**SEND, "purpose": "sales"}], 0, "purpose"),
        ([SEND, {"day": 2, "kind": "branch", "if": "tier_in:Z", "goto": "exit"}], 1, "if"),
        ([SEND, {"day": 2, "kind": "branch", "if": "purchased", "goto": 1}], 1, "goto"),
        ([{**SEND, "day": 5}, {**SEND, "day": 1}], 1, "day"),
        ([{"day": 0, "kind": "lapse"}, SEND], 0, "kind"),
        ([{**SEND, "colour": "red"}], 0, "colour"),
        ([{**SEND, "message": "{occasion}"}], 0, "message"),
    ]
    for steps, step, field in cases:
        answer = create(steps)
        assert answer.status_code == 422, (steps, answer.json())
        error = answer.json()["error"]
        assert (error["code"], error["details"]["step"], error["details"]["field"]) == ("invalid_step", step, field)
        assert error["message"].startswith(f"step {step}:")
    created = create([SEND, {"day": 2, "kind": "branch", "if": "consent_granted:wechat", "goto": "exit"},
                      {"day": 45, "kind": "lapse"}])
    assert created.status_code == 201
    journey_id = created.json()["id"]
    edited = app_client.put(f"/v1/journeys/{journey_id}", headers=admin_headers,
                            json={"steps": [{**SEND, "channel": "fax"}], "control_share": 0})
    assert edited.status_code == 422 and edited.json()["error"]["details"]["field"] == "channel"


def test_the_built_in_journeys_pass_their_own_validation():
    from domain.journeys.builtins import BUILT_INS
    from domain.journeys.rules import journey_problems
    from domain.templates.service import BUILT_IN

    catalogue = {key: (purpose, variables) for key, purpose, _, variables in BUILT_IN}
    for spec in BUILT_INS:
        assert journey_problems(trigger=spec["trigger"], steps=spec["steps"], templates=catalogue) == []


def test_a_journey_failing_at_run_time_is_recorded_and_the_others_carry_on(committed_engine):
    no_control(committed_engine, "reactivation")
    with unit_of_work(committed_engine) as session:
        journeys.create_journey(session, key="legacy", name="Legacy", trigger="member.joined", priority=50,
                                steps=[{**SEND, "message": "we_miss_you", "purpose": "care"}], control_share=0.0,
                                now=T - DAY)
        # A version stored before validation existed, with a channel no gate knows.
        session.execute(sa.text("UPDATE journey_versions SET steps = CAST(:s AS jsonb) WHERE journey_id = "
                                "(SELECT id FROM journeys WHERE key = 'legacy')"),
                        {"s": '[{"day": 0, "kind": "send", "message": "welcome", "channel": "fax", '
                              '"purpose": "care"}]'})
        newcomer = make_member(session, now=T, consents=SMS)
        sleeper = make_member(session, now=T - 400 * DAY, consents=SMS)
        make_order(session, member_id=sleeper.id, amount_fen=10_000, occurred_at=T - 200 * DAY)
    run(committed_engine, "enroll-journeys", T + HOUR)
    run(committed_engine, "mark-dormant", T + HOUR)
    counts = run(committed_engine, "run-journeys", T + HOUR)
    assert list(counts["failed_journeys"]) == ["legacy"] and "fax" in counts["failed_journeys"]["legacy"]
    assert steps_of(committed_engine, sleeper.id) == [(0, "approved", ["care"], "we_miss_you")]
    assert steps_of(committed_engine, newcomer.id) == []  # its journey's step waits for an operator's fix
    assert run(committed_engine, "run-journeys", T + 2 * HOUR)["failed_journeys"].keys() == {"legacy"}


# --- welcome and reactivation ----------------------------------------------------------------------


def test_imported_members_who_joined_long_ago_get_no_welcome(committed_engine):
    no_control(committed_engine, "welcome")
    with unit_of_work(committed_engine) as session:
        old = make_member(session, now=T, joined_at=T - 200 * DAY, source_channel=SourceChannel.IMPORT, consents=SMS)
        recent = make_member(session, now=T, joined_at=T - 2 * DAY, source_channel=SourceChannel.IMPORT,
                             consents=SMS)
        new = make_member(session, now=T, consents=SMS)
    assert run(committed_engine, "enroll-journeys", T + HOUR)["enrolled_on_join"] == 2
    assert states(committed_engine, old.id) == {}
    assert states(committed_engine, recent.id) == {"welcome": "active"}
    assert states(committed_engine, new.id) == {"welcome": "active"}


def test_a_member_who_buys_at_once_still_gets_the_welcome_but_no_selling(committed_engine):
    no_control(committed_engine, "welcome")
    with unit_of_work(committed_engine) as session:
        member = make_member(session, now=T, consents=SMS)
        make_order(session, member_id=member.id, amount_fen=5_000, occurred_at=T + timedelta(minutes=1))
    run(committed_engine, "enroll-journeys", T + 10 * 60 * timedelta(seconds=1))
    for at in (T + HOUR, T + 4 * DAY, T + 31 * DAY):
        run(committed_engine, "run-journeys", at)
    assert steps_of(committed_engine, member.id) == [(0, "approved", ["care"], "welcome")]
    assert states(committed_engine, member.id) == {"welcome": "converted"}


def test_a_new_journey_does_not_back_enrol_until_an_operator_asks(committed_engine, engine):
    from fastapi.testclient import TestClient

    from api.main import create_app
    from tests.factories import make_api_key

    no_control(committed_engine, "reactivation")
    with unit_of_work(committed_engine) as session:
        sleeper = make_member(session, now=T - 400 * DAY, consents=SMS)
        make_order(session, member_id=sleeper.id, amount_fen=10_000, occurred_at=T - 200 * DAY)
        _, key = make_api_key(session, scope="admin")
    run(committed_engine, "mark-dormant", T)
    with unit_of_work(committed_engine) as session:
        winback = journeys.create_journey(session, key="winback", name="Win-back", trigger="member.dormant",
                                          steps=[SEND], control_share=0.0, now=T + DAY, priority=50)
        session.commit()
        winback_id = winback.id
    assert run(committed_engine, "enroll-journeys", T + DAY + HOUR)["enrolled_on_dormancy"] == 0
    assert states(committed_engine, sleeper.id) == {"reactivation": "active"}
    with TestClient(create_app()) as client:
        answer = client.post(f"/v1/journeys/{winback_id}/backfill", headers={"Authorization": f"Bearer {key}"},
                             json={"since": (T - DAY).isoformat()})
    assert answer.status_code == 200 and answer.json()["enrolled"] == 1
    # The higher-priority journey takes the member; they are never in two at once.
    assert states(committed_engine, sleeper.id) == {"reactivation": "exited", "winback": "active"}


def test_a_member_in_the_welcome_is_not_put_into_reactivation(committed_engine):
    no_control(committed_engine, "welcome")
    no_control(committed_engine, "reactivation")
    with unit_of_work(committed_engine) as session:
        member = make_member(session, now=T, consents=SMS)
    run(committed_engine, "enroll-journeys", T + HOUR)
    with unit_of_work(committed_engine) as session:  # a dormancy signal while the welcome still runs
        session.execute(sa.text("INSERT INTO domain_events (kind, member_id, payload, occurred_at) "
                                "VALUES ('member.dormant', :m, '{}', :at)"), {"m": member.id, "at": T + 2 * DAY})
        session.commit()
    assert run(committed_engine, "enroll-journeys", T + 2 * DAY + HOUR)["enrolled_on_dormancy"] == 0
    assert states(committed_engine, member.id) == {"welcome": "active"}


def test_overdue_steps_catch_up_one_at_a_time(committed_engine):
    no_control(committed_engine, "reactivation")
    with unit_of_work(committed_engine) as session:
        member = make_member(session, now=T - 400 * DAY, consents=SMS)
        make_order(session, member_id=member.id, amount_fen=10_000, occurred_at=T - 200 * DAY)
    run(committed_engine, "mark-dormant", T)
    run(committed_engine, "run-journeys", T)
    # The scheduler stops for 60 days: days 7, 21 and the lapse at 45 are all overdue.
    run(committed_engine, "run-journeys", T + 60 * DAY)
    assert [s[3] for s in steps_of(committed_engine, member.id)] == ["we_miss_you", "comeback_offer"]
    run(committed_engine, "run-journeys", T + 73 * DAY)  # the next one keeps its 14-day gap from the catch-up
    assert len(steps_of(committed_engine, member.id)) == 2
    run(committed_engine, "run-journeys", T + 74 * DAY)
    assert [s[3] for s in steps_of(committed_engine, member.id)] == ["we_miss_you", "comeback_offer",
                                                                    "strong_comeback_offer"]
    run(committed_engine, "run-journeys", T + 98 * DAY)
    assert states(committed_engine, member.id) == {"reactivation": "lapsed"}
