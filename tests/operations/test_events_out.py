"""Events out, end to end through the webhook receiver fake on loopback: ``points.expiring_soon`` from the expiry
job (once per member and expiry day, however often the job runs) and ``journey.converted``; the catalogue names
only events something records."""

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from domain.db import unit_of_work
from domain.members.models import ContactChannel
from domain.points.service import adjust_points
from domain.webhooks import service as webhooks
from domain.webhooks.rules import PUBLIC_EVENTS, verify_signature
from jobs.runner import run_job
from tests.factories import make_member, make_order
from tests.fakes.event_receiver import event_receiver

T = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def run(engine, job, at):
    outcome = run_job(job, engine=engine, as_of=at)
    assert outcome.status == "succeeded", outcome.error
    return outcome.counts


def subscribe(engine, url, events, at):
    with unit_of_work(engine) as session:
        sub = webhooks.create_subscription(session, name=f"sys-{events[0]}", url=url, events=events, actor="tests",
                                           now=at - timedelta(minutes=1))
        session.commit()
        return sub


def events_of(engine, kind):
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT member_id, payload FROM domain_events WHERE kind = :k ORDER BY id"),
                            {"k": kind}).tuples().all()


def valid(headers, body, secret):
    return verify_signature(headers["Loyalty-Signature"], body, secret, now=datetime.now(UTC))


def test_points_expiring_soon_is_announced_once_per_member_and_expiry_day(committed_engine):
    with unit_of_work(committed_engine) as session:
        member = make_member(session, now=T - 400 * DAY)
        other = make_member(session, now=T - 400 * DAY)
        for n, (who, at) in enumerate([(member, T - 350 * DAY), (member, T - 350 * DAY + timedelta(hours=1)),
                                       (member, T - 335 * DAY), (other, T - 100 * DAY)]):
            adjust_points(session, member_id=who.id, adjustment_id=f"adj-{n}", points=100 + n, reason="test",
                          actor="tests", now=at)
        session.commit()
        expiries = session.execute(sa.text("SELECT member_id, expires_at FROM points_lots ORDER BY id")).all()
    first_expiry = min(e for m, e in expiries if m == member.id)
    as_of = first_expiry - 20 * DAY  # the first two lots (same day) are within 30 days; the third 15 days later
    with event_receiver() as (url, receiver):
        sub = subscribe(committed_engine, url, ["points.expiring_soon"], as_of)
        assert run(committed_engine, "expire-points", as_of)["expiring_soon_notices"] == 1
        assert run(committed_engine, "expire-points", as_of)["expiring_soon_notices"] == 0  # a re-run: nothing new
        run(committed_engine, "deliver-webhooks", as_of + timedelta(minutes=1))  # every 30 s in production
        assert run(committed_engine, "expire-points", as_of + DAY)["expiring_soon_notices"] == 0
        assert run(committed_engine, "expire-points", as_of + 6 * DAY)["expiring_soon_notices"] == 1  # third lot
        recorded = events_of(committed_engine, "points.expiring_soon")
        assert [(m, p["points"], len(p["lot_ids"])) for m, p in recorded] == [(member.id, 201, 2), (member.id, 102, 1)]

        run(committed_engine, "deliver-webhooks", as_of + 6 * DAY + timedelta(minutes=1))
        bodies = receiver.bodies()
        assert [(b["type"], b["member_id"], b["data"]["points"]) for b in bodies] == [
            ("points.expiring_soon", member.id, 201), ("points.expiring_soon", member.id, 102)]
        assert len({b["id"] for b in bodies}) == 2  # each event id once
        assert all(valid(h, body, sub.secret) for h, body in receiver.received)
        assert all(h["Loyalty-Event-Id"] == json.loads(body)["id"] for h, body in receiver.received)


def test_a_journey_conversion_is_published_once(committed_engine):
    with unit_of_work(committed_engine) as session:
        from domain.journeys import service as journeys

        journeys.ensure_builtin_journeys(session, now=T)
        journey = journeys.journey_by_key(session, key="reactivation")
        steps = journeys._version(session, journey.id, journey.current_version).steps
        journeys.edit_journey(session, journey_id=journey.id, steps=steps, control_share=0.0, now=T)
        buyer = make_member(session, now=T - 400 * DAY, preferred_channel=ContactChannel.SMS,
                            consents={ContactChannel.SMS: True})
        make_order(session, member_id=buyer.id, amount_fen=10_000, occurred_at=T - 200 * DAY)
        session.commit()
    with event_receiver() as (url, receiver):
        sub = subscribe(committed_engine, url, ["journey.converted"], T)
        run(committed_engine, "mark-dormant", T)
        run(committed_engine, "run-journeys", T)
        with unit_of_work(committed_engine) as session:
            make_order(session, member_id=buyer.id, amount_fen=20_000, occurred_at=T + 3 * DAY)
        for day in (7, 8, 21):
            run(committed_engine, "run-journeys", T + day * DAY + timedelta(hours=1))
        recorded = events_of(committed_engine, "journey.converted")
        assert [(m, p["journey"], p["control"]) for m, p in recorded] == [(buyer.id, "reactivation", False)]
        run(committed_engine, "deliver-webhooks", T + 7 * DAY + timedelta(hours=2))
        (headers, body), = receiver.received
        assert json.loads(body)["type"] == "journey.converted" and valid(headers, body, sub.secret)


def test_every_public_event_is_recorded_by_something_in_the_domain():
    """The catalogue must not promise an event nothing writes (tier changed, coupon issued, complaint opened …)."""
    assert {"tier.changed", "points.earned", "points.expiring_soon", "coupon.issued", "complaint.opened",
            "journey.converted"} <= set(PUBLIC_EVENTS)
    files = [*Path("domain").rglob("*.py"), *Path("alembic/versions").glob("*.py")]  # SQL functions record some
    source = "\n".join(p.read_text() for p in files if p.parts[-2:] != ("webhooks", "rules.py"))
    for public, kind in PUBLIC_EVENTS.items():
        assert re.search(rf"""(kind=|SELECT |')["']?{re.escape(kind)}["']""", source), (public, kind)


def test_an_erasure_is_published_so_subscribers_erase_their_copies(committed_engine):
    from domain.privacy.service import erase_member

    now = datetime.now(UTC)
    with unit_of_work(committed_engine) as session:
        member = make_member(session, now=T)
        session.commit()
    with event_receiver() as (url, receiver):
        sub = subscribe(committed_engine, url, ["member.erased"], now)
        for _ in range(2):  # a repeated request erases (and announces) once
            with unit_of_work(committed_engine) as session:
                erase_member(session, member_id=member.id, actor="tests", reason="request #9", now=now)
                session.commit()
        run(committed_engine, "deliver-webhooks", now + timedelta(minutes=1))
        (headers, body), = receiver.received
        sent = json.loads(body)
        assert (sent["type"], sent["member_id"], sent["data"]) == ("member.erased", member.id, {"actor": "tests"})
        assert valid(headers, body, sub.secret)


def test_a_served_tier_granted_through_a_group_customer_is_published(committed_engine):
    """A spouse linked to a key account's leader is served at the account's level at once: a till showing the
    served tier hears ``treatment.changed`` (and the leader's own lift), each once."""
    from domain.organisations import service as orgs
    from domain.organisations.models import FamilyRelation, OrganisationRole, RevenueClass

    with event_receiver() as (url, receiver):
        sub = subscribe(committed_engine, url, ["treatment.changed"], T)
        with unit_of_work(committed_engine) as session:
            org = orgs.create_organisation(session, name="Acme Steel", revenue_class=RevenueClass.KEY, now=T)
            leader = make_member(session, name="Wang Wei", now=T)
            spouse = make_member(session, name="Zhang Min", now=T)
            orgs.link_member(session, organisation_id=org.id, member_id=leader.id, role=OrganisationRole.LEADER,
                             actor="tests", now=T)
            orgs.link_family(session, member_id=leader.id, relative_id=spouse.id, relation=FamilyRelation.SPOUSE,
                             consent_source="signed form 17", consented_at=T, actor="tests", now=T)
            session.commit()
        run(committed_engine, "deliver-webhooks", T + timedelta(minutes=5))
        run(committed_engine, "deliver-webhooks", T + timedelta(minutes=10))
        bodies = [json.loads(body) for _, body in receiver.received]
        assert sorted((b["member_id"], b["type"], b["data"]["from"], b["data"]["to"]) for b in bodies) == \
            sorted([(leader.id, "treatment.changed", "D", "A"), (spouse.id, "treatment.changed", "D", "A")])
        spouse_event, = [b for b in bodies if b["member_id"] == spouse.id]
        assert (spouse_event["data"]["via_member_id"], spouse_event["data"]["relation"]) == (leader.id, "spouse")
        assert all(valid(h, body, sub.secret) for h, body in receiver.received)
