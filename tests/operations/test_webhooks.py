"""Domain events out: signed, at-least-once by event id, ordered per member, retried, replayable."""

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from domain.db import unit_of_work
from domain.events.service import record_event
from domain.webhooks import service as webhooks
from domain.webhooks.rules import verify_signature
from jobs.runner import run_job
from tests.factories import make_member
from tests.fakes.event_receiver import event_receiver


def subscribe(engine, url, events=("tier.changed", "points.earned", "complaint.opened"), now=None):
    with unit_of_work(engine) as session:
        sub = webhooks.create_subscription(session, name=f"sys-{time.monotonic_ns()}", url=url, events=list(events),
                                           actor="tests", now=(now or datetime.now(UTC)) - timedelta(minutes=1))
        session.commit()
        return sub


def emit(engine, member_id, kinds, now):
    with unit_of_work(engine) as session:
        ids = []
        for i, kind in enumerate(kinds):
            event = record_event(session, kind=kind, member_id=member_id, payload={"n": i}, now=now)
            session.flush()
            ids.append(event.id)
        session.commit()
        return ids


def members(engine, n):
    with unit_of_work(engine) as session:
        return [make_member(session, now=datetime(2025, 1, 1, tzinfo=UTC)).id for _ in range(n)]


def deliver(engine, as_of):
    return run_job("deliver-webhooks", engine=engine, as_of=as_of).counts


def valid(headers, body, secret):
    return verify_signature(headers["Loyalty-Signature"], body, secret, now=datetime.now(UTC))


@pytest.mark.timeout(120)
def test_a_receiver_gets_each_event_once_per_id_across_a_dispatcher_crash_with_a_valid_signature(committed_engine):
    now = datetime.now(UTC)
    with event_receiver() as (url, receiver):
        sub = subscribe(committed_engine, url)
        a, b = members(committed_engine, 2)
        events = emit(committed_engine, a, ["tier.changed", "points.earned", "complaint.recorded"], now) + \
            emit(committed_engine, b, ["points.earned", "tier.changed", "member.joined"], now)  # not subscribed
        wanted = {f"evt_{e}" for e in events[:5]}
        receiver.delay_seconds = 0.4  # the kill lands while a delivery is in flight
        proc = subprocess.Popen([sys.executable, "-m", "cli", "jobs", "run", "deliver-webhooks", "--no-progress"],
                                env={**os.environ, "LOYALTY_LOG_LEVEL": "warning"}, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while len(receiver.received) < 2:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        got_before = len({b["id"] for b in receiver.bodies()})
        assert 0 < got_before < 5, "the crash must land mid-run"
        receiver.delay_seconds = 0
        # Another dispatcher, once the dead one's claims have expired, delivers the rest (and the one in flight).
        deliver(committed_engine, now + timedelta(minutes=5))
        assert deliver(committed_engine, now + timedelta(minutes=10))["delivered"] == 0
        ids = [body["id"] for body in receiver.bodies()]
        assert set(ids) == wanted  # every subscribed event; the unsubscribed one never
        assert len(ids) - len(set(ids)) <= 1  # at-least-once: only the delivery in flight at the kill may repeat
        assert all(valid(h, body, sub.secret) for h, body in receiver.received)
        assert all(h["Loyalty-Event-Id"] == json.loads(body)["id"] for h, body in receiver.received)
        for member in (a, b):  # each member's events arrive in the order they happened
            first_seen = list(dict.fromkeys(x["id"] for x in receiver.bodies() if x["member_id"] == member))
            assert first_seen == sorted(first_seen, key=lambda i: int(i[4:]))
    with committed_engine.connect() as conn:
        assert set(conn.scalars(sa.text("SELECT status FROM webhook_deliveries"))) == {"delivered"}


def test_a_failing_event_holds_back_that_member_s_later_events_and_is_retried_with_backoff(committed_engine):
    now = datetime.now(UTC)
    with event_receiver() as (url, receiver):
        subscribe(committed_engine, url)
        a, b = members(committed_engine, 2)
        first, second = emit(committed_engine, a, ["tier.changed", "points.earned"], now)
        (other,) = emit(committed_engine, b, ["tier.changed"], now)
        receiver.fail_ids.add(f"evt_{first}")
        counts = deliver(committed_engine, now)
        assert counts["retry"] == 1 and {x["id"] for x in receiver.bodies()} == {f"evt_{other}"}
        assert deliver(committed_engine, now + timedelta(seconds=10))["retry"] == 0  # backing off: not yet due
        receiver.fail_ids.clear()
        deliver(committed_engine, now + timedelta(minutes=2))
        assert [x["id"] for x in receiver.bodies()] == [f"evt_{other}", f"evt_{first}", f"evt_{second}"]


def test_after_a_rotation_deliveries_carry_both_signatures_until_the_overlap_ends(committed_engine):
    now = datetime.now(UTC)
    with event_receiver() as (url, receiver):
        sub = subscribe(committed_engine, url)
        (a,) = members(committed_engine, 1)
        with unit_of_work(committed_engine) as session:
            rotated = webhooks.rotate_secret(session, subscription_id=sub.id, overlap=timedelta(hours=1), now=now)
            new_secret = rotated.secret
            session.commit()
        emit(committed_engine, a, ["tier.changed"], now)
        deliver(committed_engine, now)
        (headers, body), = receiver.received
        assert valid(headers, body, new_secret) and valid(headers, body, sub.secret)
        assert not valid(headers, body, "whsec_someone-else")


def test_admins_subscribe_and_replay_a_time_range_over_http(app_client, admin_headers, app_headers, session, now):
    created = app_client.post("/v1/admin/webhooks", headers=admin_headers, json={
        "name": "crm", "url": "http://127.0.0.1:9/hooks", "events": ["tier.changed", "complaint.opened"]})
    assert created.status_code == 201 and created.json()["secret"].startswith("whsec_")
    assert created.json()["events"] == ["complaint.opened", "tier.changed"]
    assert "secret" not in app_client.get("/v1/admin/webhooks", headers=admin_headers).json()[0]
    refused = app_client.post("/v1/admin/webhooks", headers=admin_headers, json={
        "name": "x", "url": "http://127.0.0.1:9/", "events": ["everything"]})
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "unknown_event"
    assert app_client.get("/v1/admin/webhooks", headers=app_headers).status_code == 403

    member = make_member(session, now=datetime(2025, 1, 1, tzinfo=UTC))
    for kind in ("tier.changed", "complaint.recorded", "points.earned"):
        record_event(session, kind=kind, member_id=member.id, payload={}, now=datetime(2026, 2, 1, tzinfo=UTC))
    session.flush()
    sub_id = created.json()["id"]
    replay = app_client.post(f"/v1/admin/webhooks/{sub_id}/replay", headers=admin_headers,
                             json={"start": "2026-01-31T00:00:00Z", "end": "2026-02-02T00:00:00Z"})
    assert replay.status_code == 200 and replay.json() == {"due": 2}  # the two subscribed kinds
    again = app_client.post(f"/v1/admin/webhooks/{sub_id}/replay", headers=admin_headers,
                            json={"start": "2026-01-31T00:00:00Z", "end": "2026-02-02T00:00:00Z"})
    assert again.json() == {"due": 2}  # the same deliveries, due again: no duplicates
    listed = app_client.get(f"/v1/admin/webhooks/{sub_id}/deliveries", headers=admin_headers).json()
    assert len(listed) == 2 and {d["status"] for d in listed} == {"pending"}
