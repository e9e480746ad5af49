"""Points ledger: idempotent orders, refunds, FIFO, release and expiry, redemptions under races."""

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from threading import Barrier

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from domain.db import unit_of_work
from domain.errors import Conflict, PolicyRefused
from domain.orders.models import Order
from domain.orders.service import NewOrder, record_order, record_refund
from domain.points import service as points
from domain.points.models import EntryKind, LedgerEntry
from domain.rebates.models import Coupon, RebateSettlement
from jobs.runner import run_job
from tests.factories import make_member, make_order

T0 = datetime(2026, 1, 5, 4, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def consistent(session: Session) -> None:
    assert points.verify_points(session) == []


def balance(session, member):
    return points.balance_of(session, member_id=member.id, now=T0)


def release(session, as_of):
    return points.release_due_points(session, as_of=as_of, member_range=(0, 10**9), now=as_of)


def expire(session, as_of):
    return points.expire_due_points(session, as_of=as_of, member_range=(0, 10**9), now=as_of)


def test_an_order_earns_pending_points_at_the_tier_multiplier(session):
    member = make_member(session)
    order = make_order(session, member_id=member.id, amount_fen=12_345)
    assert order.points_earned == 123
    b = balance(session, member)
    assert (b.available, b.pending) == (0, 123)
    consistent(session)


def test_the_same_order_sent_again_is_credited_once(session):
    member = make_member(session)
    new = NewOrder(order_id="POS-1", member_id=member.id, amount_fen=50_000, channel="store", occurred_at=T0, items=[])
    first, replayed1 = record_order(session, new=new, now=T0)
    second, replayed2 = record_order(session, new=new, now=T0 + DAY)
    assert (replayed1, replayed2) == (False, True) and first.id == second.id
    assert balance(session, member).pending == 500
    assert len(session.exec(select(LedgerEntry).where(LedgerEntry.member_id == member.id)).all()) == 1
    consistent(session)


def test_the_same_order_id_with_another_amount_is_a_conflict(session):
    member = make_member(session)
    make_order(session, member_id=member.id, order_id="POS-2", amount_fen=50_000, occurred_at=T0)
    with pytest.raises(Conflict) as err:
        record_order(session, new=NewOrder(order_id="POS-2", member_id=member.id, amount_fen=60_000, channel="store",
                                           occurred_at=T0, items=[]), now=T0)
    assert err.value.code == "order_conflict"
    consistent(session)


def test_points_become_available_when_the_return_window_closes(session):
    member = make_member(session)
    make_order(session, member_id=member.id, amount_fen=10_000, occurred_at=T0)
    assert release(session, T0 + 6 * DAY) == (0, 0)
    assert release(session, T0 + 7 * DAY) == (1, 100)
    assert release(session, T0 + 8 * DAY) == (0, 0)  # released once
    b = balance(session, member)
    assert (b.available, b.pending) == (100, 0)
    consistent(session)


def test_a_refund_takes_back_points_in_proportion_and_a_full_refund_all_of_them(session):
    member = make_member(session)
    make_order(session, member_id=member.id, order_id="O-R", amount_fen=9_999, occurred_at=T0)
    refund, _ = record_refund(session, order_id="O-R", refund_id="R-1", amount_fen=3_333, occurred_at=T0, now=T0)
    assert refund.points_reversed == 33
    record_refund(session, order_id="O-R", refund_id="R-2", amount_fen=6_666, occurred_at=T0, now=T0)
    assert balance(session, member).pending == 0
    with pytest.raises(PolicyRefused) as err:
        record_refund(session, order_id="O-R", refund_id="R-3", amount_fen=1, occurred_at=T0, now=T0)
    assert err.value.code == "refund_exceeds_order"
    _, replayed = record_refund(session, order_id="O-R", refund_id="R-1", amount_fen=3_333, occurred_at=T0, now=T0)
    assert replayed
    consistent(session)


def test_a_refund_after_the_points_were_spent_leaves_a_debt_that_later_points_pay_first(session):
    member = make_member(session)
    make_order(session, member_id=member.id, order_id="O-1", amount_fen=10_000, occurred_at=T0)
    release(session, T0 + 7 * DAY)
    points.redeem_points(session, member_id=member.id, redemption_id="RD-1", points=80, reason="gift", now=T0 + 8 * DAY)
    record_refund(session, order_id="O-1", refund_id="RF-1", amount_fen=10_000, occurred_at=T0 + 9 * DAY,
                  now=T0 + 9 * DAY)
    b = balance(session, member)
    assert b.available == -80
    consistent(session)
    make_order(session, member_id=member.id, order_id="O-2", amount_fen=30_000, occurred_at=T0 + 10 * DAY)
    release(session, T0 + 17 * DAY)
    assert balance(session, member).available == 220  # 300 earned, 80 paid the debt
    consistent(session)
    with pytest.raises(PolicyRefused):
        points.redeem_points(session, member_id=member.id, redemption_id="RD-2", points=221, reason="x",
                             now=T0 + 18 * DAY)


def test_expiry_takes_the_oldest_lots_first_and_only_what_is_left_of_them(session):
    member = make_member(session)
    make_order(session, member_id=member.id, order_id="A", amount_fen=10_000, occurred_at=T0)          # 100
    make_order(session, member_id=member.id, order_id="B", amount_fen=20_000, occurred_at=T0 + 60 * DAY)  # 200
    release(session, T0 + 70 * DAY)
    # 150 redeemed: all 100 of lot A (oldest) and 50 of lot B.
    points.redeem_points(session, member_id=member.id, redemption_id="X", points=150, reason="r", now=T0 + 71 * DAY)
    a_expires = datetime(2027, 1, 12, 4, tzinfo=UTC)
    assert expire(session, a_expires) == (0, 0)  # lot A was fully spent: nothing of it is left to expire
    assert balance(session, member).available == 150
    b_expires = datetime(2027, 3, 13, 4, tzinfo=UTC)
    assert expire(session, b_expires) == (1, 150)
    assert expire(session, b_expires + DAY) == (0, 0)  # expired once
    assert balance(session, member).available == 0
    kinds = [e.kind for e in session.exec(select(LedgerEntry).where(LedgerEntry.member_id == member.id)
                                          .order_by(LedgerEntry.id))]
    assert kinds.count(EntryKind.EXPIRE) == 1
    consistent(session)


def test_what_expires_in_the_next_30_days_is_shown_with_its_date(session):
    member = make_member(session)
    make_order(session, member_id=member.id, amount_fen=10_000, occurred_at=T0)
    release(session, T0 + 7 * DAY)
    soon = points.balance_of(session, member_id=member.id, now=datetime(2026, 12, 20, tzinfo=UTC))
    assert (soon.expiring_soon, soon.expiring_soon_date.isoformat()) == (100, "2027-01-12")
    later = points.balance_of(session, member_id=member.id, now=datetime(2026, 6, 1, tzinfo=UTC))
    assert later.expiring_soon == 0 and later.expiring_soon_date is None


def test_a_redemption_is_idempotent_and_refused_when_short(session):
    member = make_member(session)
    make_order(session, member_id=member.id, amount_fen=10_000, occurred_at=T0)
    release(session, T0 + 7 * DAY)
    first, r1 = points.redeem_points(session, member_id=member.id, redemption_id="Q", points=60, reason="cup", now=T0)
    again, r2 = points.redeem_points(session, member_id=member.id, redemption_id="Q", points=60, reason="cup", now=T0)
    assert (r1, r2) == (False, True) and first.id == again.id and balance(session, member).available == 40
    with pytest.raises(PolicyRefused) as err:
        points.redeem_points(session, member_id=member.id, redemption_id="Q2", points=41, reason="cup", now=T0)
    assert err.value.code == "insufficient_points" and err.value.details["available"] == 40
    with pytest.raises(Conflict):
        points.redeem_points(session, member_id=member.id, redemption_id="Q", points=10, reason="cup", now=T0)
    consistent(session)


def test_an_admin_adjustment_is_in_the_ledger_with_who_and_why(session):
    member = make_member(session)
    entry, _ = points.adjust_points(session, member_id=member.id, adjustment_id="ADJ-1", points=50,
                                    reason="goodwill after complaint", actor="admin/ops-1", now=T0)
    assert (entry.kind, entry.actor, entry.reason) == (EntryKind.ADJUST, "admin/ops-1", "goodwill after complaint")
    assert balance(session, member).available == 50
    with pytest.raises(PolicyRefused):
        points.adjust_points(session, member_id=member.id, adjustment_id="ADJ-2", points=-51, reason="fix",
                             actor="a", now=T0)
    consistent(session)


def _funded_member(engine, points_available: int) -> int:
    with unit_of_work(engine) as session:
        member = make_member(session)
        points.adjust_points(session, member_id=member.id, adjustment_id="fund", points=points_available,
                             reason="race test", actor="tests", now=T0)
        session.commit()
        return member.id


def _wide_engine(engine):
    """40 real connections shared by 100 concurrent callers, as API workers share their pools."""
    return sa.create_engine(engine.url, pool_size=40, max_overflow=0, pool_timeout=120)


def test_a_hundred_concurrent_redemptions_succeed_exactly_as_far_as_the_balance_goes(committed_engine):
    member_id = _funded_member(committed_engine, 1_000)
    attempts = 100
    wide = _wide_engine(committed_engine)
    barrier = Barrier(attempts, timeout=60)

    def redeem(i: int) -> str:
        barrier.wait()
        with unit_of_work(wide) as session:
            try:
                points.redeem_points(session, member_id=member_id, redemption_id=f"race-{i}", points=30, reason="r",
                                     now=T0)
                session.commit()
                return "ok"
            except PolicyRefused:
                return "short"

    with ThreadPoolExecutor(attempts) as pool:
        outcomes = list(pool.map(redeem, range(attempts)))
    wide.dispose()
    assert outcomes.count("ok") == 1_000 // 30 and outcomes.count("short") == attempts - 33
    with unit_of_work(committed_engine) as session:
        assert points.balance_of(session, member_id=member_id, now=T0).available == 1_000 - 33 * 30
        consistent(session)


def _orders_at_once(engine, member_id: int, order_ids: list[str]) -> list[bool]:
    """Record each order (100 yuan) from its own thread, all released at once; whether each was a replay."""
    wide = _wide_engine(engine)
    barrier = Barrier(len(order_ids))

    def send(order_id: str) -> bool:
        barrier.wait()
        with unit_of_work(wide) as session:
            _, replayed = record_order(session, new=NewOrder(order_id=order_id, member_id=member_id, amount_fen=10_000,
                                                             channel="app", occurred_at=T0, items=[]), now=T0)
            session.commit()
            return replayed

    with ThreadPoolExecutor(len(order_ids)) as pool:
        replays = list(pool.map(send, order_ids))
    wide.dispose()
    return replays


def test_the_same_order_sent_many_times_at_once_is_credited_once(committed_engine):
    with unit_of_work(committed_engine) as session:
        member_id = make_member(session).id
        session.commit()
    replays = _orders_at_once(committed_engine, member_id, ["HOT-1"] * 100)
    assert replays.count(False) == 1
    with unit_of_work(committed_engine) as session:
        assert points.balance_of(session, member_id=member_id, now=T0).pending == 100
        consistent(session)


def test_different_orders_of_one_member_at_once_neither_deadlock_nor_get_lost(committed_engine):
    # Each order's foreign keys take a key-share lock on the member row; the member lock an order takes later
    # must not conflict with it, or two orders holding one lock each would deadlock (found by the benchmark).
    with unit_of_work(committed_engine) as session:
        member_id = make_member(session).id
        session.commit()
    replays = _orders_at_once(committed_engine, member_id, [f"BUSY-{i}" for i in range(24)])
    assert replays == [False] * 24  # each one recorded, none lost to a deadlock
    with unit_of_work(committed_engine) as session:
        # Serialised on the member, each order sees the tier the ones before it reached: the first ten earn at
        # D (1 point a yuan), the eleventh crosses 1,000 yuan, and the rest earn at C (1.2).
        tiers = session.exec(select(Order.tier_at_order).where(Order.member_id == member_id)).all()
        assert sorted(tiers) == ["C"] * 14 + ["D"] * 10
        assert points.balance_of(session, member_id=member_id, now=T0).pending == 10 * 100 + 14 * 120
        consistent(session)


def test_release_and_expiry_jobs_run_twice_change_nothing_the_second_time(committed_engine):
    with unit_of_work(committed_engine) as session:
        member = make_member(session)
        make_order(session, member_id=member.id, amount_fen=10_000, occurred_at=T0)
    first = run_job("release-points", engine=committed_engine, as_of=T0 + 7 * DAY)
    second = run_job("release-points", engine=committed_engine, as_of=T0 + 7 * DAY)
    assert first.counts == {"lots_released": 1, "points_released": 100}
    assert second.counts == {"lots_released": 0, "points_released": 0}
    far = T0 + 500 * DAY
    assert run_job("expire-points", engine=committed_engine, as_of=far).counts["points_expired"] == 100
    assert run_job("expire-points", engine=committed_engine, as_of=far).counts["points_expired"] == 0
    with unit_of_work(committed_engine) as session:
        consistent(session)


def test_a_quarterly_rebate_is_settled_once_however_often_the_job_runs(committed_engine):
    q1 = datetime(2026, 2, 10, 4, tzinfo=UTC)
    with unit_of_work(committed_engine) as session:
        big, small, refunded = make_member(session), make_member(session), make_member(session)
        make_order(session, member_id=big.id, amount_fen=600_000, occurred_at=q1)            # 5% -> 30,000 fen
        make_order(session, member_id=small.id, amount_fen=150_000, occurred_at=q1)          # 3% -> 4,500 fen
        make_order(session, member_id=refunded.id, order_id="RF-Q", amount_fen=120_000, occurred_at=q1)
        record_refund(session, order_id="RF-Q", refund_id="RF-Q-1", amount_fen=30_000, occurred_at=q1, now=q1)
        make_order(session, member_id=small.id, amount_fen=900_000, occurred_at=datetime(2026, 4, 2, tzinfo=UTC))
        session.commit()
    after_q1 = datetime(2026, 4, 3, tzinfo=UTC)
    first = run_job("settle-rebates", engine=committed_engine, as_of=after_q1)
    second = run_job("settle-rebates", engine=committed_engine, as_of=after_q1)
    assert first.counts == {"settled": 2, "coupon_value_fen": 34_500}
    assert second.counts == {"settled": 0, "coupon_value_fen": 0}
    with unit_of_work(committed_engine) as session:
        coupons = {c.member_id: c.value_fen for c in session.exec(select(Coupon))}
        assert coupons == {big.id: 30_000, small.id: 4_500}  # the refund left 900 yuan: below the threshold
        assert len(session.exec(select(RebateSettlement)).all()) == 2
        consistent(session)
