"""Campaigns: preview on a sample, approval by a second person, sending through the gate, measured uplift."""

from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from domain.campaigns import service as campaigns
from domain.campaigns.models import CampaignMember
from domain.contact_policy import service as gate
from domain.db import unit_of_work
from domain.errors import Conflict
from domain.journeys.rules import in_control_group
from domain.members.models import ContactChannel
from jobs.runner import run_job
from tests.factories import make_member, make_order

NOW = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=400)
SMS = {ContactChannel.SMS: True}


def draft(session, audience, control_share=0.0, author="marketer-1"):
    from domain.templates.service import publish_template

    publish_template(session, key="spring_offer", channel="any", purpose="marketing",
                     body="{name}, spring offer for {tier} members", variables=["name", "tier"], actor="t", now=NOW)
    return campaigns.create_campaign(session, name="spring", channel="sms", purpose="marketing",
                                     template="spring_offer", audience=audience, control_share=control_share,
                                     actor=author, now=NOW)


def test_the_audience_filter_preview_and_four_eyes_approval(session):
    shanghai_b = make_member(session, now=OLD, city="Shanghai", consents=SMS, birthday=date(1995, 1, 1))
    make_order(session, member_id=shanghai_b.id, amount_fen=600_000, occurred_at=NOW - timedelta(days=20))
    make_member(session, now=OLD, city="Beijing", consents=SMS)
    make_member(session, now=OLD, city="Shanghai", consents=SMS, birthday=date(1960, 1, 1))
    campaign = draft(session, {"cities": ["Shanghai"], "tiers": ["B", "A"], "max_age": 40,
                               "min_spend_fen": 500_000})
    shown = campaigns.preview(session, campaign_id=campaign.id, now=NOW)
    assert shown["audience_size"] == 1 and shown["sample"][0]["id"] == shanghai_b.id
    with pytest.raises(Conflict):
        campaigns.launch(session, campaign_id=campaign.id, now=NOW)          # not approved
    with pytest.raises(Conflict):
        campaigns.approve(session, campaign_id=campaign.id, actor="marketer-1", now=NOW)  # own campaign
    campaigns.approve(session, campaign_id=campaign.id, actor="manager-1", now=NOW)
    assert campaigns.launch(session, campaign_id=campaign.id, now=NOW) == {"audience": 1}


def test_unknown_filters_are_refused_when_the_campaign_is_created(session):
    from domain.errors import InvalidInput

    with pytest.raises(InvalidInput):
        draft(session, {"star_sign": "leo"})


def test_a_launched_campaign_goes_through_the_gate_with_a_control_group_and_a_report(committed_engine):
    with unit_of_work(committed_engine) as session:
        people = [make_member(session, now=OLD, consents=SMS) for _ in range(40)]
        campaign = draft(session, {"statuses": ["active"]}, control_share=0.25)
        # The complainer is one the campaign would contact (not control), so the gate's suppression is tested.
        complainer = next(p for p in people if not in_control_group(
            member_id=p.id, experiment=f"campaign:{campaign.id}", control_share=campaign.control_share))
        gate.record_complaint(session, member_id=complainer.id, category="x", note="", actor="a", now=NOW)
        campaigns.approve(session, campaign_id=campaign.id, actor="manager", now=NOW)
        campaigns.launch(session, campaign_id=campaign.id, now=NOW)
        session.commit()
    assert run_job("send-campaigns", engine=committed_engine, as_of=NOW).status == "succeeded"
    assert run_job("send-campaigns", engine=committed_engine, as_of=NOW).counts == {"requested": 0, "decided_in_sql": 0}
    with Session(committed_engine) as session:
        rows = session.exec(select(CampaignMember)).all()
        control = [r for r in rows if r.control]
        treated = [r for r in rows if not r.control]
        assert len(rows) == 40 and 0 < len(control) < 20
        assert all(r.decision is None for r in control) and all(r.decision for r in treated)
        buyers = [r.member_id for r in treated[:5]] + [r.member_id for r in control[:1]]
    with unit_of_work(committed_engine) as session:
        for member_id in buyers:
            make_order(session, member_id=member_id, amount_fen=10_000, occurred_at=NOW + timedelta(days=3))
        result = campaigns.report(session, campaign_id=campaign.id)
    assert result["audience"] == 40 and result["control"] == len(control)
    assert result["converted"] == {"treatment": 5, "control": 1}
    assert complainer.id in [r.member_id for r in treated]
    assert result["suppressed"] == {"complaint_cooldown": 1}
    assert result["uplift"]["uplift"] == pytest.approx(5 / len(treated) - 1 / len(control))


EVENING = datetime(2026, 3, 10, 14, 0, tzinfo=UTC)  # 22:00 in Shanghai (quiet hours), 14:00 in London


def _generated_audience(session, rng, n=90):
    """Members of every consent profile in Shanghai and London, with complaints, new joiners, channels marked
    unreachable and recent touches (some filling the 4-a-week marketing cap)."""
    from domain.contact_policy.models import Complaint
    from domain.members.service import set_channel_reachability

    channels = ("sms", "email", "app", "wechat")
    for i in range(n):
        joined = EVENING - timedelta(days=rng.choice([400, 400, 400, 40, 10]))
        consents = {ContactChannel(c): rng.random() < 0.85 for c in channels if rng.random() < 0.6}
        member = make_member(session, now=joined, joined_at=joined, consents=consents,
                             name=rng.choice(["Li Lei", None, "王小明", "{tier}"]),
                             timezone=rng.choice(["Asia/Shanghai", "Europe/London"]),
                             preferred_channel=rng.choice([None, None, *[ContactChannel(c) for c in channels]]),
                             email=f"c{i}@example.com" if rng.random() < 0.6 else None,
                             wechat_openid=f"o-c-{i}" if rng.random() < 0.5 else None)
        if rng.random() < 0.15:
            set_channel_reachability(session, member_id=member.id, channel=ContactChannel(rng.choice(channels)),
                                     reachable=False, reason="bounced", now=OLD)
        if rng.random() < 0.15:
            session.add(Complaint(member_id=member.id, category="x", actor="t",
                                  opened_at=EVENING - timedelta(days=rng.choice([5, 120]))))
        for j in range(rng.choice([0, 0, 0, 1, 2, 4])):
            session.execute(sa.text("""
                INSERT INTO touches (member_id, channel, purpose, source, idempotency_key, template, variables,
                                     decision, reasons, status, send_at, requested_at, attempts)
                VALUES (:m, :ch, 'marketing', 'earlier', :key, 't', '{}', 'approved', '{}', 'sent', :at, :at, 0)"""),
                {"m": member.id, "ch": rng.choice(channels), "key": f"{member.id}:{j}",
                 "at": EVENING - timedelta(days=rng.uniform(0.5, 6.5))})
    session.flush()


def _launch(session, *, channel, control_share, author):
    from domain.templates.service import publish_template

    publish_template(session, key="evening_offer", channel="any", purpose="marketing",
                     body="{name}, an offer for {tier} members {{today}}", variables=["name", "tier"], actor="t",
                     now=OLD)
    campaign = campaigns.create_campaign(session, name=f"evening {channel}", channel=channel, purpose="marketing",
                                         template="evening_offer", audience={}, control_share=control_share,
                                         actor=author, now=EVENING)
    campaigns.approve(session, campaign_id=campaign.id, actor="manager", now=EVENING)
    campaigns.launch(session, campaign_id=campaign.id, now=EVENING)
    return campaign


def _sent(session):
    touches = session.execute(sa.text("""
        SELECT member_id, channel, purpose, source, idempotency_key, template, variables, decision, reasons, status,
               send_at, next_allowed_at, requested_at, attempts
        FROM touches WHERE source LIKE 'campaign:%' ORDER BY source, idempotency_key""")).all()
    audience = session.execute(sa.text("""
        SELECT cm.campaign_id, cm.member_id, cm.control, cm.decision, cm.reasons, t.source, t.idempotency_key
        FROM campaign_members cm LEFT JOIN touches t ON t.id = cm.touch_id ORDER BY 1, 2""")).all()
    return [tuple(r) for r in touches], [tuple(r) for r in audience]


def _counted():
    """The gate-decision counters (/metrics) by labels, as they stand in this process."""
    from domain import telemetry

    return {(metric.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in (telemetry.GATE_DECISIONS, telemetry.GATE_DECISION_REASONS) for metric in family.collect()
            for sample in metric.samples if sample.name.endswith("_total")}


def _send_all(session, *, limit, common_case_in_sql):
    """Run the job's batches; returns (requested, decided in SQL, what the /metrics counters grew by)."""
    requested = in_sql = 0
    before = _counted()
    while (done := campaigns.send_batch(session, now=EVENING, limit=limit, common_case_in_sql=common_case_in_sql)
           ).requested:
        requested, in_sql = requested + done.requested, in_sql + done.decided_in_sql
    grown = {k: v - before.get(k, 0) for k, v in _counted().items() if v != before.get(k, 0)}
    return requested, in_sql, grown


def test_the_common_case_in_sql_sends_exactly_what_the_python_gate_alone_would(session):
    import random

    from domain.touchpoints.models import Touch

    rng = random.Random(1704)
    _generated_audience(session, rng)
    by_sms = _launch(session, channel="sms", control_share=0.2, author="marketer-1")
    preferred = _launch(session, channel="preferred", control_share=0.1, author="marketer-2")
    # A touch this campaign already stored for one member (a run that died after it): replayed, not sent again.
    replayed = session.scalars(select(CampaignMember).where(CampaignMember.campaign_id == by_sms.id,
                                                            CampaignMember.control.is_(False))).first()
    session.add(Touch(member_id=replayed.member_id, channel="sms", purpose="marketing", source=f"campaign:{by_sms.id}",
                      idempotency_key=str(replayed.member_id), template="evening_offer", variables={},
                      decision="deferred", reasons=["quiet_hours"], status="queued",
                      send_at=EVENING + timedelta(hours=1), requested_at=EVENING))
    session.flush()

    python_only = session.begin_nested()
    requested, in_sql, metrics = _send_all(session, limit=1000, common_case_in_sql=False)
    expected = _sent(session)
    python_only.rollback()
    assert in_sql == 0 and requested > 100
    for limit in (1000, 37):  # one batch (members of both campaigns in it), and batches that split them
        attempt = session.begin_nested()
        # The same touches, audience rows and /metrics counts (SQL-decided approvals are counted too).
        assert _send_all(session, limit=limit, common_case_in_sql=True)[::2] == (requested, metrics)
        assert _sent(session) == expected
        attempt.rollback()
    in_sql = _send_all(session, limit=1000, common_case_in_sql=True)[1]
    touches, audience = expected
    decisions = {t[7] for t in touches}
    # The population exercises every path: the SQL common case and the Python gate's approvals, deferrals
    # (quiet hours in Shanghai, full caps) and rejections, the control group and members with no channel.
    assert 0 < in_sql < len(touches)
    assert decisions == {"approved", "deferred", "rejected"}
    reasons = {r for t in touches for r in t[8]}
    assert {"quiet_hours", "cap:marketing_messages", "consent_missing", "complaint_cooldown"} <= reasons
    assert any(a[2] for a in audience)
    assert any(a[3] == "rejected" and a[4] == ["no_reachable_channel"] for a in audience)
    first = next(t for t in touches if t[3] == f"campaign:{by_sms.id}" and t[4] == str(replayed.member_id))
    assert first[7] == "deferred"
    assert any(t[3] == f"campaign:{preferred.id}" and t[6]["body"] == "member, an offer for D members {today}"
               for t in touches)


@pytest.mark.parametrize(("runs", "workers"), [(2, 1), (2, 2), (1, 4)],
                         ids=["two runs", "two runs of two workers", "one run of four workers"])
def test_runners_at_once_send_each_audience_member_once_and_keep_the_caps(committed_engine, runs, workers):
    import random
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    rng = random.Random(20)
    with unit_of_work(committed_engine) as session:
        _generated_audience(session, rng, n=120)
        _launch(session, channel="sms", control_share=0.0, author="marketer-1")
        _launch(session, channel="preferred", control_share=0.0, author="marketer-2")
        session.commit()
    barrier = Barrier(runs, timeout=60)

    def runner(_):
        barrier.wait()
        return run_job("send-campaigns", engine=committed_engine, as_of=EVENING,
                       options={"batch": 25, "workers": workers})

    with ThreadPoolExecutor(runs) as pool:
        outcomes = list(pool.map(runner, range(runs)))
    assert [o.status for o in outcomes] == ["succeeded"] * runs
    assert all(o.counts["requested"] > 0 for o in outcomes)  # every runner took part of the audience
    assert sum(o.counts["requested"] for o in outcomes) == 240  # and none took a member twice
    assert sum(o.counts["decided_in_sql"] for o in outcomes) > 0
    with Session(committed_engine) as session:
        touches, audience = _sent(session)
        assert len(audience) == 240 and all(a[3] is not None for a in audience)
        sent_to = [(a[5], a[6]) for a in audience if a[5] is not None]
        assert len(sent_to) == len(set(sent_to)) == len(touches)  # one touch per audience member, none twice
        # No member got more than the cap allows: at most 4 counted marketing messages in any 7 days.
        counted = session.execute(sa.text("""
            SELECT t.member_id, count(*) FROM touches t JOIN touches u ON u.member_id = t.member_id
            AND u.status IN ('queued', 'sending', 'sent') AND u.purpose = 'marketing'
            AND u.send_at >= t.send_at AND u.send_at < t.send_at + interval '7 days'
            WHERE t.status IN ('queued', 'sending', 'sent') AND t.purpose = 'marketing'
            GROUP BY t.id, t.member_id HAVING count(*) > 4""")).all()
        assert counted == []


def test_a_runs_workers_send_at_once_so_a_batch_waiting_on_a_contact_lock_holds_up_only_itself(committed_engine):
    import random
    import time
    from concurrent.futures import ThreadPoolExecutor

    with unit_of_work(committed_engine) as session:
        _generated_audience(session, random.Random(7), n=100)
        campaign = _launch(session, channel="sms", control_share=0.0, author="marketer-1")
        session.commit()
    unsent = sa.text("SELECT count(*) FROM campaign_members WHERE campaign_id = :c AND decision IS NULL")
    with committed_engine.connect() as holder:
        # The member of the first audience row is in a gate decision elsewhere: the batch that claims the row waits.
        first = holder.scalar(sa.text("SELECT member_id FROM campaign_members WHERE campaign_id = :c ORDER BY id "
                                      "LIMIT 1"), {"c": campaign.id})
        holder.execute(sa.text("SELECT pg_advisory_lock(hashtextextended('contact:' || :m, 0))"), {"m": first})
        holder.commit()
        with ThreadPoolExecutor(1) as pool:
            run = pool.submit(run_job, "send-campaigns", engine=committed_engine, as_of=EVENING,
                              options={"batch": 10, "workers": 2})
            deadline, left = time.monotonic() + 30, None
            while time.monotonic() < deadline and left != 10:
                with committed_engine.connect() as conn:
                    left = conn.scalar(unsent, {"c": campaign.id})
                time.sleep(0.05)
            assert left == 10  # the other worker sent everyone but the waiting batch's ten
            assert not run.done()
            holder.execute(sa.text("SELECT pg_advisory_unlock(hashtextextended('contact:' || :m, 0))"), {"m": first})
            holder.commit()
            outcome = run.result(timeout=30)
    assert outcome.status == "succeeded" and outcome.counts["requested"] == 100
    with committed_engine.connect() as conn:
        assert conn.scalar(unsent, {"c": campaign.id}) == 0


def test_a_batch_claim_holds_its_members_contact_locks_and_turns_jit_off_before_the_gate_statement(committed_engine):
    with unit_of_work(committed_engine) as session:
        people = [make_member(session, now=OLD, consents=SMS) for _ in range(6)]
        campaign = draft(session, {"statuses": ["active"]})
        campaigns.approve(session, campaign_id=campaign.id, actor="manager", now=NOW)
        campaigns.launch(session, campaign_id=campaign.id, now=NOW)
        session.commit()
    claim = campaigns.CLAIM_SQL.format(locks=gate.lock_contacts_sql("SELECT claimed.member_id AS id FROM claimed"))
    with committed_engine.connect() as holder, committed_engine.connect() as other:
        claimed = holder.execute(sa.text(claim), {"n": 4}).all()
        assert len(claimed) == 4 and [r.id for r in claimed] == sorted(r.id for r in claimed)
        assert holder.scalar(sa.text("SELECT current_setting('jit')")) == "off"
        held = {r.member_id for r in claimed}
        # Another transaction cannot take a claimed member's contact lock (the gate's decisions for them wait), and
        # takes an unclaimed member's at once.
        taken = {p.id: other.scalar(sa.text("SELECT pg_try_advisory_xact_lock(hashtextextended('contact:' || :i, 0))"),
                                    {"i": p.id}) for p in people}
        other.rollback()
        assert {i for i, ok in taken.items() if not ok} == held
        holder.rollback()
