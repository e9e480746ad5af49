"""The contact gate on PostgreSQL: decisions recorded, idempotent, race-free; the outbox delivered once."""

import dataclasses
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from threading import Barrier

import pytest
from sqlmodel import Session, select

from domain.contact_policy import service as gate
from domain.db import unit_of_work
from domain.errors import Conflict
from domain.members import service as members
from domain.members.models import ContactChannel
from domain.ports import DeliveryOutcome, DeliveryResult
from domain.touchpoints.models import CallTask, Touch, TouchStatus
from integrations.webhook import WebhookAdapter
from jobs.dispatch import dispatch_due
from tests.factories import make_member
from tests.fakes.webhook_server import webhook_gateway

NOW = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)  # 12:00 Shanghai
DAY = timedelta(days=1)
JOINED = NOW - 100 * DAY


def marketing_member(session, **overrides):
    return make_member(session, now=JOINED, consents={ContactChannel.SMS: True, ContactChannel.PHONE: True},
                       **overrides)


def touch(session, member, key, channel="sms", purpose="marketing", now=NOW):
    return gate.request_touch(session, member_id=member.id, channel=channel, purpose=purpose, source="test",
                              idempotency_key=key, template="offer", variables={"body": "Hi {name}", "name": "Li"},
                              now=now)[0]


def test_a_decision_is_recorded_with_its_reasons_and_approved_touches_wait_in_the_outbox(session):
    member = marketing_member(session)
    approved = touch(session, member, "k1")
    assert (approved.decision, approved.status, approved.send_at) == ("approved", TouchStatus.QUEUED, NOW)
    rejected = touch(session, member, "k2", channel="email")
    assert (rejected.decision, rejected.status) == ("rejected", TouchStatus.REJECTED)
    assert rejected.reasons == ["no_address"]  # the member has no email address


def test_the_same_touch_requested_twice_is_one_touch(session):
    member = marketing_member(session)
    first = touch(session, member, "same")
    again, replayed = gate.request_touch(session, member_id=member.id, channel="sms", purpose="marketing",
                                         source="test", idempotency_key="same", template="offer", variables={}, now=NOW)
    assert replayed and again.id == first.id
    assert len(session.exec(select(Touch).where(Touch.member_id == member.id)).all()) == 1


def test_the_fifth_marketing_message_in_a_week_is_deferred(session):
    member = marketing_member(session)
    for i in range(4):
        assert touch(session, member, f"m{i}").decision == "approved"
    fifth = touch(session, member, "m4")
    assert fifth.decision == "deferred" and "cap:marketing_messages" in fifth.reasons
    assert fifth.send_at == datetime(2026, 3, 17, 4, 0, tzinfo=UTC)


def test_an_opt_out_stops_even_service_messages_at_once(session):
    member = marketing_member(session)
    members.set_consent(session, member_id=member.id, channel=ContactChannel.SMS, granted=False, source="member",
                        now=NOW)
    decision = gate.evaluate_contact(session, member_id=member.id, channel="sms", purpose="service", now=NOW)
    assert decision.verdict == "rejected" and decision.reasons == ("consent_opted_out",)


def test_a_complaint_blocks_marketing_but_not_care_or_service(session):
    member = marketing_member(session)
    gate.record_complaint(session, member_id=member.id, category="rude_call", note="", actor="agent-1", now=NOW)
    verdicts = {p: gate.evaluate_contact(session, member_id=member.id, channel="sms", purpose=p, now=NOW + DAY).verdict
                for p in ("marketing", "care", "service")}
    assert verdicts == {"marketing": "rejected", "care": "approved", "service": "approved"}
    late = gate.evaluate_contact(session, member_id=member.id, channel="sms", purpose="marketing", now=NOW + 89 * DAY)
    assert "complaint_cooldown" in late.reasons and late.next_allowed_at == NOW + 90 * DAY
    over = gate.evaluate_contact(session, member_id=member.id, channel="sms", purpose="marketing", now=NOW + 90 * DAY)
    assert "complaint_cooldown" not in over.reasons


def test_a_closed_member_gets_nothing(session):
    member = marketing_member(session)
    members.close_member(session, member_id=member.id, reason="left", actor="admin", now=NOW)
    assert gate.evaluate_contact(session, member_id=member.id, channel="sms", purpose="service",
                                 now=NOW).reasons == ("member_closed",)


def test_quiet_hours_defer_in_each_members_own_timezone(session):
    shanghai = marketing_member(session)
    new_york = marketing_member(session, timezone="America/New_York")
    evening_in_shanghai = datetime(2026, 3, 10, 14, 0, tzinfo=UTC)  # 22:00 Shanghai, 10:00 New York (EDT)
    deferred = touch(session, shanghai, "q1", now=evening_in_shanghai)
    allowed = touch(session, new_york, "q2", now=evening_in_shanghai)
    assert deferred.decision == "deferred" and deferred.send_at == datetime(2026, 3, 11, 1, 0, tzinfo=UTC)
    assert allowed.decision == "approved"


def test_concurrent_requests_never_both_take_the_last_slot(committed_engine):
    with unit_of_work(committed_engine) as session:
        member = marketing_member(session)
        session.commit()
    attempts = 12
    barrier = Barrier(attempts, timeout=60)

    def ask(i: int) -> str:
        with unit_of_work(committed_engine) as session:
            barrier.wait()
            t, _ = gate.request_touch(session, member_id=member.id, channel="phone", purpose="marketing",
                                      source="race", idempotency_key=f"call-{i}", template="call", variables={},
                                      now=NOW)
            session.commit()
            return t.decision

    with ThreadPoolExecutor(attempts) as pool:
        decisions = list(pool.map(ask, range(attempts)))
    assert decisions.count("approved") == 1 and decisions.count("rejected") == attempts - 1


def test_a_batch_decides_each_touch_as_the_single_gate_would(session):
    evening = datetime(2026, 3, 10, 14, 0, tzinfo=UTC)  # 22:00 in Shanghai: quiet hours there, not in New York
    ok, new_york = marketing_member(session), marketing_member(session, timezone="America/New_York")
    opted_out, never_asked = marketing_member(session), make_member(session, now=JOINED)
    complained, newcomer, capped = marketing_member(session), make_member(session, now=evening - 2 * DAY,
                                                                          consents={ContactChannel.SMS: True}), \
        marketing_member(session)
    closed, unreachable = marketing_member(session), marketing_member(session)
    members.set_consent(session, member_id=opted_out.id, channel=ContactChannel.SMS, granted=False, source="m",
                        now=NOW)
    gate.record_complaint(session, member_id=complained.id, category="x", note="", actor="a", now=NOW)
    for i in range(4):
        touch(session, capped, f"before-{i}", now=evening - DAY)
    members.close_member(session, member_id=closed.id, reason="left", actor="admin", now=NOW)
    members.set_channel_reachability(session, member_id=unreachable.id, channel=ContactChannel.SMS, reachable=False,
                                     reason="number dead", now=NOW)
    already = touch(session, ok, "asked-before", now=evening - DAY)
    asks = [(m, "sms", "marketing", f"b-{m.id}") for m in (ok, new_york, opted_out, never_asked, complained,
                                                            newcomer, capped, closed, unreachable)]
    asks += [(new_york, "sms", "marketing", f"again-{i}") for i in range(4)]  # later ones see earlier ones' slots
    asks += [(ok, "email", "service", "no-email"), (closed, "sms", "service", "closed-service"),
             (ok, "sms", "marketing", "asked-before"), (ok, "sms", "marketing", f"b-{ok.id}")]  # two replays
    requests = [gate.TouchRequest(member_id=m.id, channel=ch, purpose=pu, source="test", idempotency_key=key,
                                  template="offer", variables={}) for m, ch, pu, key in asks]

    def outcome(t, replayed):
        return t.decision, list(t.reasons), t.send_at, t.next_allowed_at, replayed

    one_by_one = session.begin_nested()
    expected = [outcome(*gate.request_touch(session, member_id=r.member_id, channel=r.channel, purpose=r.purpose,
                                            source=r.source, idempotency_key=r.idempotency_key, template=r.template,
                                            variables={}, now=evening)) for r in requests]
    one_by_one.rollback()
    batch = gate.request_touches(session, requests, now=evening)
    assert [outcome(*b) for b in batch] == expected
    assert len({t.decision for t, _ in batch}) == 3  # the population exercises approvals, deferrals, rejections
    assert batch[-2][0].id == already.id and batch[-1][0].id == batch[0][0].id
    with pytest.raises(Conflict):  # the same key for another member is refused, and nothing of the batch is kept
        gate.request_touches(session, [gate.TouchRequest(member_id=m.id, channel="sms", purpose="service",
                                                         source="test", idempotency_key=f"late-{m.id}", template="t",
                                                         variables={}) for m in (ok, capped)]
                             + [dataclasses.replace(requests[0], member_id=capped.id)], now=evening)
    assert not session.exec(select(Touch).where(Touch.idempotency_key.startswith("late-"))).all()


def test_two_batches_over_the_same_members_at_once_take_each_last_slot_once(committed_engine):
    with unit_of_work(committed_engine) as session:
        people = [marketing_member(session).id for _ in range(15)]
        session.commit()
    barrier = Barrier(2, timeout=60)

    def campaign(source: str, order: list[int]) -> list[str]:
        with unit_of_work(committed_engine) as session:
            barrier.wait()
            done = gate.request_touches(session, [gate.TouchRequest(member_id=m, channel="phone", purpose="marketing",
                                                                    source=source, idempotency_key=str(m),
                                                                    template="call", variables={}) for m in order],
                                        now=NOW)
            session.commit()
            return [t.decision for t, _ in done]

    with ThreadPoolExecutor(2) as pool:  # opposite member orders: deadlock-prone unless locks are ordered
        first, second = pool.map(campaign, ["a", "b"], [people, people[::-1]])
    per_member = list(zip(first, second[::-1], strict=True))
    assert all(sorted(pair) == ["approved", "rejected"] for pair in per_member)  # one call a month each


class CountingAdapter:
    def __init__(self, channel="sms", outcome=DeliveryOutcome.SENT):
        self.channel, self.outcome = channel, outcome
        self.sent: list[int] = []
        self.lock = threading.Lock()

    def send(self, message):
        with self.lock:
            self.sent.append(message.touch_id)
        return DeliveryResult(self.outcome, provider_ref=f"p-{message.touch_id}")


def _queue(engine, n, channel="sms", purpose="service"):
    with unit_of_work(engine) as session:
        member = marketing_member(session)
        for i in range(n):
            touch(session, member, f"t{i}", channel=channel, purpose=purpose)
        session.commit()
        return member


def test_two_dispatchers_at_once_send_each_touch_exactly_once(committed_engine):
    _queue(committed_engine, 60)
    adapter = CountingAdapter()
    barrier = Barrier(2, timeout=60)

    def run(_):
        barrier.wait()
        return dispatch_due(committed_engine, adapters={"sms": adapter}, now=NOW, batch=7)

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(run, range(2)))
    assert sorted(adapter.sent) == sorted(set(adapter.sent)) and len(adapter.sent) == 60
    assert sum(r["sent"] for r in results) == 60
    with Session(committed_engine) as session:
        assert {t.status for t in session.exec(select(Touch))} == {TouchStatus.SENT}


def test_a_failing_webhook_is_retried_with_backoff_then_sent(committed_engine):
    _queue(committed_engine, 1)
    with webhook_gateway([500, 503, 200]) as (url, gateway):
        adapter = WebhookAdapter("sms", url, timeout=2)
        assert dispatch_due(committed_engine, adapters={"sms": adapter}, now=NOW)["retry"] == 1
        assert dispatch_due(committed_engine, adapters={"sms": adapter}, now=NOW + timedelta(seconds=10))["retry"] == 0
        assert dispatch_due(committed_engine, adapters={"sms": adapter}, now=NOW + timedelta(seconds=31))["retry"] == 1
        assert dispatch_due(committed_engine, adapters={"sms": adapter}, now=NOW + timedelta(seconds=95))["sent"] == 1
    keys = {r["idempotency_key"] for r in gateway.received}
    assert len(gateway.received) == 3 and len(keys) == 1  # one key across retries
    with Session(committed_engine) as session:
        t = session.exec(select(Touch)).one()
        assert (t.status, t.attempts, t.provider_ref) == (TouchStatus.SENT, 3, "gw-3")


def test_a_webhook_that_always_fails_is_given_up_with_the_reason(committed_engine):
    _queue(committed_engine, 1)
    with webhook_gateway([500]) as (url, _):
        adapter = WebhookAdapter("sms", url, timeout=2)
        for minute in range(0, 60, 5):
            dispatch_due(committed_engine, adapters={"sms": adapter}, now=NOW + timedelta(minutes=minute))
    with Session(committed_engine) as session:
        t = session.exec(select(Touch)).one()
        assert t.status == TouchStatus.FAILED and t.attempts == 5 and "HTTP 500" in t.last_error


def test_a_permanent_refusal_stops_at_once(committed_engine):
    _queue(committed_engine, 1)
    with webhook_gateway([400]) as (url, _):
        dispatch_due(committed_engine, adapters={"sms": WebhookAdapter("sms", url)}, now=NOW)
    with Session(committed_engine) as session:
        t = session.exec(select(Touch)).one()
        assert t.status == TouchStatus.FAILED and t.attempts == 1


def test_a_dispatcher_that_died_mid_send_is_taken_over_after_its_lease(committed_engine):
    _queue(committed_engine, 1)
    from domain.touchpoints.service import claim_due

    with unit_of_work(committed_engine) as session:  # a dispatcher claims, then dies before recording
        assert len(claim_due(session, now=NOW, limit=10, lease=timedelta(seconds=120))) == 1
        session.commit()
    adapter = CountingAdapter()
    assert dispatch_due(committed_engine, adapters={"sms": adapter}, now=NOW + timedelta(seconds=60))["sent"] == 0
    assert dispatch_due(committed_engine, adapters={"sms": adapter}, now=NOW + timedelta(seconds=121))["sent"] == 1
    with Session(committed_engine) as session:
        assert session.exec(select(Touch)).one().attempts == 2  # at-least-once: the second attempt


def test_a_phone_touch_becomes_a_call_task_for_agents(committed_engine):
    member = _queue(committed_engine, 1, channel="phone")
    assert dispatch_due(committed_engine, adapters={}, now=NOW)["call_tasks"] == 1
    with Session(committed_engine) as session:
        task = session.exec(select(CallTask)).one()
        assert task.member_id == member.id and session.exec(select(Touch)).one().status == TouchStatus.SENT


def test_an_opt_out_after_queueing_suppresses_the_send(committed_engine):
    member = _queue(committed_engine, 1, purpose="marketing")
    with unit_of_work(committed_engine) as session:
        members.set_consent(session, member_id=member.id, channel=ContactChannel.SMS, granted=False,
                            source="member", now=NOW)
        session.commit()
    adapter = CountingAdapter()
    assert dispatch_due(committed_engine, adapters={"sms": adapter}, now=NOW)["suppressed"] == 1
    assert adapter.sent == []


@pytest.mark.parametrize("job", ["dispatch-outbox", "release-points", "expire-points", "tier-evaluation",
                                 "settle-rebates", "prune-job-runs"])
def test_the_scheduler_registers_every_periodic_job(job, engine):
    from jobs.scheduler import build_scheduler

    scheduler = build_scheduler(engine, timezone="Asia/Shanghai", blocking=False)
    assert job in {j.id for j in scheduler.get_jobs()}


def test_two_dispatcher_processes_send_each_touch_once_through_a_real_gateway(committed_engine):
    """Two `loyalty jobs run dispatch-outbox` OS processes at once against one loopback gateway."""
    import json
    import os
    import subprocess
    import sys

    _queue(committed_engine, 150)  # more than one claim (100): the second process has work of its own
    with webhook_gateway([200], rendezvous=2) as (url, gateway):
        env = {**os.environ, "LOYALTY_WEBHOOK_URLS": json.dumps({"sms": url}), "LOYALTY_LOG_LEVEL": "warning"}
        command = [sys.executable, "-m", "cli", "jobs", "run", "dispatch-outbox", "--as-of", NOW.isoformat(),
                   "--no-progress"]
        procs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
        outputs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    sent_by = [json.loads(out.decode().strip().splitlines()[-1])["counts"]["sent"] for out, _ in outputs]
    touch_ids = [r["body"]["touch_id"] for r in gateway.received]
    assert sum(sent_by) == 150 and len(touch_ids) == 150 and len(set(touch_ids)) == 150
    assert all(n > 0 for n in sent_by), sent_by  # both processes claimed and both sent
