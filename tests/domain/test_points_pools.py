"""A family's pooled points: earning stays with the buyer, available points move to the named owner through the
points ledger, and `loyalty points verify` still finds every balance equal to its ledger and lots."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from threading import Barrier

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from domain.db import unit_of_work
from domain.errors import PolicyRefused
from domain.orders.service import NewOrder, record_order
from domain.organisations import service as orgs
from domain.organisations.models import FamilyRelation
from domain.points import service as points
from tests.factories import make_member

T0 = datetime(2026, 1, 5, 4, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def _family(session):
    owner, spouse, child = make_member(session), make_member(session), make_member(session)
    for relative, relation in ((spouse, FamilyRelation.SPOUSE), (child, FamilyRelation.CHILD)):
        orgs.link_family(session, member_id=owner.id, relative_id=relative.id, relation=relation,
                         consent_source="app", consented_at=T0, actor="t", now=T0)
    pool = orgs.create_pool(session, owner_member_id=owner.id, name="The Wangs", now=T0)
    for relative in (spouse, child):
        orgs.join_pool(session, pool_id=pool.id, member_id=relative.id, consent_source="app", now=T0)
    return pool, owner, spouse, child


def test_a_sweep_moves_available_points_to_the_owner_keeping_expiry_and_is_not_repeated(session):
    pool, owner, spouse, child = _family(session)
    points.adjust_points(session, member_id=spouse.id, adjustment_id="seed-s", points=300, reason="r", actor="t",
                         now=T0)
    order, _ = record_order(session, new=NewOrder(order_id="POOL-1", member_id=child.id, amount_fen=10_000,
                                                  channel="app", occurred_at=T0, items=[]), now=T0)
    assert order.member_id == child.id and order.points_earned == 100  # earning stays with the buyer
    first = orgs.sweep_pool(session, pool_id=pool.id, sweep_key="d1", now=T0)
    assert first == {"points_pooled": 300, "contributors": 1}  # the child's points are still pending
    assert orgs.sweep_pool(session, pool_id=pool.id, sweep_key="d1", now=T0)["points_pooled"] == 0
    balances = points.balances_of(session, member_ids=[owner.id, spouse.id, child.id], now=T0)
    assert (balances[owner.id].available, balances[spouse.id].available, balances[child.id].pending) == (300, 0, 100)
    expiries = session.execute(sa.text("SELECT DISTINCT expires_at FROM points_lots WHERE member_id IN (:a, :b)"),
                               {"a": owner.id, "b": spouse.id}).scalars().all()
    assert len(expiries) == 1
    assert points.verify_points(session) == []


def test_only_family_of_the_owner_may_join_a_pool(session):
    pool, owner, spouse, child = _family(session)
    stranger = make_member(session)
    with pytest.raises(PolicyRefused):
        orgs.join_pool(session, pool_id=pool.id, member_id=stranger.id, consent_source="app", now=T0)


def test_pooled_points_keep_points_verify_passing_under_concurrent_orders_of_two_family_members(committed_engine):
    with unit_of_work(committed_engine) as session:
        pool, owner, spouse, child = _family(session)
        for member in (owner, spouse, child):
            points.adjust_points(session, member_id=member.id, adjustment_id=f"seed-{member.id}", points=1_000,
                                 reason="r", actor="t", now=T0)
        session.commit()
        pool_id, ids = pool.id, (owner.id, spouse.id, child.id)
    # Few connections on purpose: the PostgreSQL server is shared, and callers queue for them as API workers do.
    wide = sa.create_engine(committed_engine.url, pool_size=6, max_overflow=0, pool_timeout=120)
    work = ([("order", ids[1], i) for i in range(12)] + [("order", ids[2], i) for i in range(12)]
            + [("order", ids[0], i) for i in range(3)] + [("sweep", 0, i) for i in range(6)]
            + [("redeem", ids[0], i) for i in range(3)])
    barrier = Barrier(len(work))

    def run(item) -> str:
        kind, member_id, i = item
        barrier.wait()
        with unit_of_work(wide) as session:
            if kind == "order":
                record_order(session, new=NewOrder(order_id=f"FAM-{member_id}-{i}", member_id=member_id,
                                                   amount_fen=10_000, channel="app", occurred_at=T0, items=[]),
                             now=T0)
            elif kind == "sweep":
                orgs.sweep_pool(session, pool_id=pool_id, sweep_key=f"s{i}", now=T0)
            else:
                try:
                    points.redeem_points(session, member_id=member_id, redemption_id=f"R-{i}", points=100,
                                         reason="gift", now=T0)
                except PolicyRefused:
                    return "short"
            session.commit()
        return kind

    with ThreadPoolExecutor(len(work)) as executor:
        outcomes = list(executor.map(run, work))
    wide.dispose()
    assert outcomes.count("order") == 27
    with unit_of_work(committed_engine) as session:
        points.release_due_points(session, as_of=T0 + 8 * DAY, member_range=(0, 10**9), now=T0 + 8 * DAY)
        orgs.sweep_pool(session, pool_id=pool_id, sweep_key="after-release", now=T0 + 8 * DAY)
        session.commit()
        balances = points.balances_of(session, member_ids=list(ids), now=T0 + 8 * DAY)
        redeemed = 100 * outcomes.count("redeem")
        earned = session.scalar(sa.text("SELECT sum(points_earned) FROM orders"))
        assert earned >= 2_700  # 27 orders of 100 yuan, some at a higher tier's multiplier
        # Nothing lost or counted twice: 3 × 1,000 seeded + what the orders earned − what the owner redeemed.
        assert sum(b.available + b.pending for b in balances.values()) == 3_000 + earned - redeemed
        assert balances[ids[1]].available == balances[ids[2]].available == 0
    from cli.main import main

    result = CliRunner().invoke(main, ["points", "verify"])
    assert result.exit_code == 0, result.output
    assert "consistent" in result.output
