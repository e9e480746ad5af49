"""Built-in journeys end to end on the clock: every message through the gate, each step once."""

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from threading import Barrier

import sqlalchemy as sa
from sqlmodel import Session, select

from domain.contact_policy import service as gate
from domain.db import unit_of_work
from domain.journeys import service as journeys
from domain.journeys.models import Enrollment, Journey, StepExecution
from domain.journeys.rules import conversion_uplift
from domain.members.models import ContactChannel, Member, MemberStatus
from domain.touchpoints.models import Touch
from jobs.dispatch import dispatch_due
from jobs.runner import run_job
from tests.factories import make_member, make_order

T = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai
DAY = timedelta(days=1)
SMS = {ContactChannel.SMS: True}


def no_control(engine, key):
    with unit_of_work(engine) as session:
        journeys.ensure_builtin_journeys(session, now=T)
        journey = journeys.journey_by_key(session, key=key)
        steps = journeys._version(session, journey.id, journey.current_version).steps
        journeys.edit_journey(session, journey_id=journey.id, steps=steps, control_share=0.0, now=T)
        session.commit()


def run(engine, job, at):
    outcome = run_job(job, engine=engine, as_of=at)
    assert outcome.status == "succeeded", outcome.error
    return outcome.counts


def steps_of(engine, member_id):
    with Session(engine) as session:
        rows = session.execute(sa.text("""
            SELECT x.step_index, x.outcome, x.reasons, t.template FROM journey_step_executions x
            JOIN journey_enrollments e ON e.id = x.enrollment_id LEFT JOIN touches t ON t.id = x.touch_id
            WHERE e.member_id = :m ORDER BY x.id"""), {"m": member_id}).all()
    return [(r[0], r[1], list(r[2]), r[3]) for r in rows]


def test_welcome_runs_day_0_day_3_and_the_offer_only_after_onboarding(committed_engine):
    no_control(committed_engine, "welcome")
    with unit_of_work(committed_engine) as session:
        member = make_member(session, now=T, preferred_channel=ContactChannel.SMS, consents=SMS)
    assert run(committed_engine, "enroll-journeys", T + timedelta(hours=1))["enrolled_on_join"] == 1
    assert run(committed_engine, "enroll-journeys", T + timedelta(hours=2))["enrolled_on_join"] == 0  # once per join
    run(committed_engine, "run-journeys", T + timedelta(hours=1))
    run(committed_engine, "run-journeys", T + 3 * DAY)       # nothing due yet: day 3 counts from the first step
    run(committed_engine, "run-journeys", T + 3 * DAY + timedelta(hours=1))
    run(committed_engine, "run-journeys", T + 30 * DAY + timedelta(hours=1))
    assert steps_of(committed_engine, member.id) == [
        (0, "approved", ["care"], "welcome"), (1, "approved", ["service"], "how_it_works"),
        (2, "approved", ["marketing"], "first_offer")]
    with Session(committed_engine) as session:
        assert session.exec(select(Enrollment)).one().state == "completed"


def test_a_member_who_complains_mid_journey_gets_care_but_no_marketing(committed_engine):
    no_control(committed_engine, "welcome")
    with unit_of_work(committed_engine) as session:
        member = make_member(session, now=T, preferred_channel=ContactChannel.SMS, consents=SMS)
        gate.record_complaint(session, member_id=member.id, category="delivery", note="", actor="agent",
                              now=T + timedelta(minutes=30))
        session.commit()
    run(committed_engine, "enroll-journeys", T + timedelta(hours=1))
    for day in (0, 3, 30):
        run(committed_engine, "run-journeys", T + day * DAY + timedelta(hours=1))
    outcomes = steps_of(committed_engine, member.id)
    assert outcomes[0][1] == "approved" and outcomes[1][1] == "approved"
    assert outcomes[2][1] == "rejected" and "complaint_cooldown" in outcomes[2][2]
    with Session(committed_engine) as session:
        report = journeys.journey_report(session, journey_id=journeys.journey_by_key(session, key="welcome").id)
    assert report["suppressed"] == {"complaint_cooldown": 1}


def test_a_step_falling_in_quiet_hours_is_deferred_to_nine_local_then_sent(committed_engine):
    no_control(committed_engine, "welcome")
    joined = datetime(2026, 3, 2, 13, 30, tzinfo=UTC)  # 21:30 in Shanghai
    with unit_of_work(committed_engine) as session:
        member = make_member(session, now=joined, preferred_channel=ContactChannel.SMS, consents=SMS)
    run(committed_engine, "enroll-journeys", joined + timedelta(minutes=5))
    run(committed_engine, "run-journeys", joined + timedelta(minutes=5))
    assert steps_of(committed_engine, member.id)[0][1] == "deferred"
    with Session(committed_engine) as session:
        touch = session.exec(select(Touch).where(Touch.member_id == member.id)).one()
        assert touch.send_at == datetime(2026, 3, 3, 1, 0, tzinfo=UTC)  # 09:00 next morning
    assert dispatch_due(committed_engine, adapters={}, now=joined + timedelta(hours=1))["sent"] == 0
    from integrations.devlog import DevLogAdapter

    adapter = DevLogAdapter("sms")
    assert dispatch_due(committed_engine, adapters={"sms": adapter}, now=touch.send_at)["sent"] == 1
    assert "Welcome" in adapter.sent[0].body


def test_reactivation_marks_dormant_and_a_purchase_mid_journey_converts(committed_engine):
    no_control(committed_engine, "reactivation")
    with unit_of_work(committed_engine) as session:
        buyer = make_member(session, now=T - 400 * DAY, preferred_channel=ContactChannel.SMS, consents=SMS)
        quiet = make_member(session, now=T - 400 * DAY, preferred_channel=ContactChannel.SMS, consents=SMS)
        make_order(session, member_id=buyer.id, amount_fen=10_000, occurred_at=T - 200 * DAY)
        make_order(session, member_id=quiet.id, amount_fen=10_000, occurred_at=T - 200 * DAY)
    assert run(committed_engine, "mark-dormant", T) == {"dormant": 2, "enrolled": 2}
    assert run(committed_engine, "mark-dormant", T + DAY)["dormant"] == 0
    run(committed_engine, "run-journeys", T)
    with unit_of_work(committed_engine) as session:
        make_order(session, member_id=buyer.id, amount_fen=20_000, occurred_at=T + 3 * DAY)
        assert session.get(Member, buyer.id).status == MemberStatus.ACTIVE
    for day in (7, 21, 45):
        run(committed_engine, "run-journeys", T + day * DAY + timedelta(hours=1))
    assert [s[3] for s in steps_of(committed_engine, buyer.id)] == ["we_miss_you"]
    assert [s[3] for s in steps_of(committed_engine, quiet.id)] == [
        "we_miss_you", "comeback_offer", "strong_comeback_offer", None]
    with Session(committed_engine) as session:
        states = {e.member_id: e.state for e in session.exec(select(Enrollment))}
        assert states == {buyer.id: "converted", quiet.id: "lapsed"}
        assert session.get(Member, quiet.id).status == MemberStatus.LAPSED


def test_birthday_greeting_at_ten_local_once_and_29_february_on_the_28th(committed_engine):
    with unit_of_work(committed_engine) as session:
        member = make_member(session, now=T - 400 * DAY, birthday=date(1992, 2, 29), consents=SMS,
                             preferred_channel=ContactChannel.SMS)
    assert run(committed_engine, "care-greetings", datetime(2027, 2, 28, 1, 30, tzinfo=UTC))["enrolled"] == 0  # 09:30
    assert run(committed_engine, "care-greetings", datetime(2027, 2, 28, 2, 5, tzinfo=UTC))["enrolled"] == 1
    assert run(committed_engine, "care-greetings", datetime(2027, 2, 28, 5, 0, tzinfo=UTC))["enrolled"] == 0
    run(committed_engine, "run-journeys", datetime(2027, 2, 28, 2, 6, tzinfo=UTC))
    assert steps_of(committed_engine, member.id) == [(0, "approved", ["care"], "birthday")]


def test_two_journey_runners_at_once_execute_each_step_once(committed_engine):
    no_control(committed_engine, "welcome")
    with unit_of_work(committed_engine) as session:
        for _ in range(40):
            make_member(session, now=T, preferred_channel=ContactChannel.SMS, consents=SMS)
    run(committed_engine, "enroll-journeys", T + timedelta(hours=1))
    barrier = Barrier(2, timeout=60)

    def go(_):
        barrier.wait()
        return run_job("run-journeys", engine=committed_engine, as_of=T + timedelta(hours=1),
                       options={"batch": 5}).counts["steps"]

    with ThreadPoolExecutor(2) as pool:
        done = list(pool.map(go, range(2)))
    assert sum(done) == 40
    with Session(committed_engine) as session:
        assert len(session.exec(select(StepExecution)).all()) == 40
        assert len(session.exec(select(Touch)).all()) == 40


def test_a_member_is_in_one_journey_at_a_time_by_priority(committed_engine):
    """Five win-back journeys and the built-in reactivation share a trigger: a dormant member enters only the
    highest-priority one (the first release put them in all six and let the caps sort it out)."""
    no_control(committed_engine, "reactivation")
    offer = [{"day": 0, "kind": "send", "message": "comeback_offer", "channel": "sms", "purpose": "marketing"}]
    with unit_of_work(committed_engine) as session:
        for n in range(5):
            journeys.create_journey(session, key=f"winback{n}", name=f"Win-back {n}", trigger="member.dormant",
                                    steps=offer, control_share=0.0, now=T - 400 * DAY, priority=30 + n)
        made = [make_member(session, now=T - 400 * DAY, preferred_channel=ContactChannel.SMS, consents=SMS)
                for _ in range(2)]
        for member in made:
            make_order(session, member_id=member.id, amount_fen=10_000, occurred_at=T - 200 * DAY)
    assert run(committed_engine, "mark-dormant", T) == {"dormant": 2, "enrolled": 2}
    assert run(committed_engine, "run-journeys", T)["steps"] == 2
    with Session(committed_engine) as session:
        keys = session.execute(sa.text("SELECT DISTINCT j.key FROM journey_enrollments e "
                                       "JOIN journeys j ON j.id = e.journey_id")).scalars().all()
    assert keys == ["winback4"]
    for member in made:
        assert steps_of(committed_engine, member.id) == [(0, "approved", ["marketing"], "comeback_offer")]


def test_the_report_computes_uplift_from_the_treatment_and_control_outcomes(session):
    journeys.ensure_builtin_journeys(session, now=T)
    journey = session.exec(select(Journey).where(Journey.key == "reactivation")).one()
    for i in range(30):
        member = make_member(session, now=T - 400 * DAY)
        control = i >= 20                      # 20 treated, 10 control
        converted = (i < 6) or (i == 20)       # 6 of 20 treated, 1 of 10 control
        session.add(Enrollment(journey_id=journey.id, version=1, member_id=member.id, trigger_ref=f"t{i}",
                               control=control, state="converted" if converted else "lapsed", enrolled_at=T))
    session.flush()
    report = journeys.journey_report(session, journey_id=journey.id)
    expected = conversion_uplift(treatment_converted=6, treatment_size=20, control_converted=1, control_size=10)
    assert (report["enrolled"], report["control"]) == (30, 10)
    assert report["converted"] == {"treatment": 6, "control": 1}
    assert abs(report["uplift"]["uplift"] - 0.2) < 1e-9
    assert report["uplift"]["ci95"] == [expected.ci_low, expected.ci_high]


def test_a_created_journey_branches_on_a_condition_and_a_running_member_keeps_their_version(committed_engine):
    steps = [
        {"day": 0, "kind": "send", "message": "welcome", "channel": "sms", "purpose": "care"},
        {"day": 1, "kind": "branch", "if": "tier_in:B,A", "goto": 3},
        {"day": 1, "kind": "send", "message": "how_it_works", "channel": "sms", "purpose": "service"},
        {"day": 2, "kind": "send", "message": "birthday", "channel": "sms", "purpose": "care"},
    ]
    with unit_of_work(committed_engine) as session:
        journeys.ensure_builtin_journeys(session, now=T)
        journeys.set_journey_status(session, journey_id=journeys.journey_by_key(session, key="welcome").id,
                                    status="paused")
        journey = journeys.create_journey(session, key="vip_welcome", name="VIP welcome", trigger="member.joined",
                                          steps=steps, control_share=0.0, now=T)
        plain = make_member(session, now=T, consents=SMS)
        vip = make_member(session, now=T, consents=SMS)
        make_order(session, member_id=vip.id, amount_fen=600_000, occurred_at=T - timedelta(minutes=1),
                   now=T - timedelta(minutes=1))  # tier B before the branch
    assert run(committed_engine, "enroll-journeys", T + timedelta(hours=1))["enrolled_on_join"] == 2  # welcome paused
    with unit_of_work(committed_engine) as session:  # an edit after enrollment does not touch running members
        journeys.edit_journey(session, journey_id=journey.id, steps=steps[:1], control_share=0.0, now=T)
        session.commit()
    for day in (0, 1, 2):
        run(committed_engine, "run-journeys", T + day * DAY + timedelta(hours=1))
    assert [(s[1], s[3]) for s in steps_of(committed_engine, plain.id)] == [
        ("approved", "welcome"), ("branch_not_taken", None), ("approved", "how_it_works"), ("approved", "birthday")]
    assert [(s[1], s[3]) for s in steps_of(committed_engine, vip.id)] == [
        ("approved", "welcome"), ("branch_taken", None), ("approved", "birthday")]


def test_invalid_journey_steps_are_refused(session):
    import pytest

    from domain.errors import InvalidInput

    for steps in ([{"day": 0, "kind": "fly"}], [{"day": 0, "kind": "branch", "if": "purchased", "goto": 0}],
                  [{"day": 5, "kind": "lapse"}, {"day": 1, "kind": "lapse"}]):
        with pytest.raises(InvalidInput):
            journeys.create_journey(session, key="bad", name="bad", trigger="member.joined", steps=steps,
                                    control_share=0, now=T)
