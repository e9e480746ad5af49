"""A job run ``--as-of`` a past time writes that time into everything it creates (issue #16): the ledger, the tier
history, coupons, pool transfers, derived usage facts and the built-in journeys carry the as-of time, not the
wall clock of the machine that ran the job. The run record itself keeps its real start and finish."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from domain.db import unit_of_work
from domain.organisations import service as orgs
from domain.organisations.models import FamilyRelation
from domain.points import service as points
from jobs.runner import run_job
from tests.factories import make_member, make_order

T0 = datetime(2025, 1, 10, 4, 0, tzinfo=UTC)  # long before the wall clock of any test run
DAY = timedelta(days=1)


def _scalars(engine, sql: str, **params) -> list:
    with engine.connect() as conn:
        return list(conn.execute(sa.text(sql), params).scalars())


def _run(engine, job: str, as_of: datetime) -> dict:
    outcome = run_job(job, engine=engine, as_of=as_of)
    assert outcome.status == "succeeded", (job, outcome)
    return outcome.counts


def test_points_jobs_write_their_as_of_into_the_ledger(committed_engine):
    with unit_of_work(committed_engine) as session:
        member = make_member(session, now=T0 - 10 * DAY)
        make_order(session, member_id=member.id, amount_fen=150_000, occurred_at=T0)
        session.commit()
    released_at = T0 + 8 * DAY
    assert _run(committed_engine, "release-points", released_at)["points_released"] == 1_500
    assert _scalars(committed_engine, "SELECT created_at FROM points_ledger WHERE kind = 'release'") == [released_at]
    assert _scalars(committed_engine, "SELECT updated_at FROM points_accounts") == [released_at]
    expired_at = T0 + 7 * DAY + 366 * DAY
    assert _run(committed_engine, "expire-points", expired_at)["points_expired"] == 1_500
    assert _scalars(committed_engine, "SELECT created_at FROM points_ledger WHERE kind = 'expire'") == [expired_at]


def test_tier_evaluation_dates_the_grace_clock_and_the_downgrade_by_its_as_of(committed_engine):
    with unit_of_work(committed_engine) as session:
        member = make_member(session, now=T0 - 10 * DAY)
        make_order(session, member_id=member.id, amount_fen=150_000, occurred_at=T0)
        session.commit()
    below = T0 + 367 * DAY  # the order has left the 12-month window
    assert _run(committed_engine, "tier-evaluation", below)["in_grace"] == 1
    assert _scalars(committed_engine, "SELECT below_since FROM member_tier_status") == [below]
    downgraded = below + 31 * DAY
    assert _run(committed_engine, "tier-evaluation", downgraded)["downgrades"] == 1
    assert _scalars(committed_engine, "SELECT at FROM tier_events WHERE cause = 'evaluation'") == [downgraded]
    assert _scalars(committed_engine, "SELECT updated_at FROM members") == [downgraded]


def test_settle_rebates_issues_coupons_dated_by_its_as_of(committed_engine):
    with unit_of_work(committed_engine) as session:
        member = make_member(session, now=T0 - 10 * DAY)
        make_order(session, member_id=member.id, amount_fen=150_000, occurred_at=T0)
        session.commit()
    settled = datetime(2025, 4, 2, 2, 0, tzinfo=UTC)  # Q1 2025 is complete in Shanghai
    assert _run(committed_engine, "settle-rebates", settled)["settled"] == 1
    with committed_engine.connect() as conn:
        issued, expires = conn.execute(sa.text("SELECT issued_at, expires_at FROM coupons")).one()
        settled_rows = conn.execute(sa.text("SELECT settled_at FROM rebate_settlements")).scalars().all()
    assert issued == settled and expires > settled and settled_rows == [settled]


def test_pool_points_dates_the_transfer_by_its_as_of(committed_engine):
    with unit_of_work(committed_engine) as session:
        owner, spouse = make_member(session, now=T0 - 10 * DAY), make_member(session, now=T0 - 10 * DAY)
        orgs.link_family(session, member_id=owner.id, relative_id=spouse.id, relation=FamilyRelation.SPOUSE,
                         consent_source="app", consented_at=T0, actor="t", now=T0)
        pool = orgs.create_pool(session, owner_member_id=owner.id, name="The Wangs", now=T0)
        orgs.join_pool(session, pool_id=pool.id, member_id=spouse.id, consent_source="app", now=T0)
        points.adjust_points(session, member_id=spouse.id, adjustment_id="seed", points=300, reason="r", actor="t",
                             now=T0)
        session.commit()
    swept = T0 + 2 * DAY
    assert _run(committed_engine, "pool-points", swept)["points_pooled"] == 300
    assert set(_scalars(committed_engine, "SELECT created_at FROM points_ledger WHERE source = 'pool'")) == {swept}


def test_usage_and_journey_jobs_write_their_as_of(committed_engine):
    with unit_of_work(committed_engine) as session:
        member = make_member(session, now=T0 - 10 * DAY)
        make_order(session, member_id=member.id, amount_fen=10_000, occurred_at=T0, channel="wechat")
        session.commit()
    derived = T0 + 2 * DAY
    assert _run(committed_engine, "derive-channel-usage", derived)["facts_written"] >= 1
    assert set(_scalars(committed_engine, "SELECT recorded_at FROM channel_usage_facts")) == {derived}
    enrolled = T0 + 3 * DAY
    _run(committed_engine, "enroll-journeys", enrolled)
    assert set(_scalars(committed_engine, "SELECT created_at FROM journeys")) == {enrolled}
