from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from domain.points.rules import (
    LotView,
    add_months,
    allocate_redemption_to_lots,
    earn_points,
    lot_dates,
    points_to_reverse,
)
from domain.rebates.rules import last_completed_quarter, rebate_for
from domain.tiers.rules import Ladder, downgrade_due, one_step_down, qualified_until

T = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(("fen", "mult", "points"), [
    (10_000, "1.0", 100), (9_999, "1.2", 119), (100, "1.5", 1), (99, "2.0", 1), (49, "2.0", 0), (12_345, "1.5", 185),
])
def test_earn_is_a_point_per_yuan_times_the_tier_rounded_down(fen, mult, points):
    assert earn_points(amount_fen=fen, multiplier=Decimal(mult)) == points


def test_partial_refunds_never_take_back_more_than_earned_and_a_full_refund_takes_all():
    earned, amount = 119, 9_999
    taken, refunded = 0, 0
    for part in (3_333, 3_333, 3_333):
        t = points_to_reverse(points_earned=earned, points_reversed=taken, amount_fen=amount,
                              refunded_before_fen=refunded, refund_fen=part)
        taken, refunded = taken + t, refunded + part
        assert taken <= earned
    assert taken == earned


@pytest.mark.parametrize(("lots", "points", "expected"), [
    ([(1, 50, 3), (2, 50, 1)], 60, [(2, 50), (1, 10)]),            # the lot expiring first goes first
    ([(1, 10, 1), (2, 10, 1)], 15, [(1, 10), (2, 5)]),             # same expiry: lower id first
    ([(1, 0, 1), (2, 30, 2)], 30, [(2, 30)]),                      # empty lots are skipped
])
def test_redemptions_consume_the_oldest_expiring_lots_first(lots, points, expected):
    views = [LotView(i, r, T + timedelta(days=d)) for i, r, d in lots]
    assert allocate_redemption_to_lots(views, points) == expected


def test_allocation_refuses_more_than_the_lots_hold():
    with pytest.raises(ValueError):
        allocate_redemption_to_lots([LotView(1, 5, T)], 6)


def test_lots_become_available_after_the_return_window_and_expire_12_months_later():
    available, expires = lot_dates(occurred_at=datetime(2026, 1, 24, 10, tzinfo=UTC), return_window_days=7,
                                   expiry_months=12)
    assert available == datetime(2026, 1, 31, 10, tzinfo=UTC)
    assert expires == datetime(2027, 1, 31, 10, tzinfo=UTC)
    assert add_months(datetime(2026, 1, 31, tzinfo=UTC), 1) == datetime(2026, 2, 28, tzinfo=UTC)


def test_the_ladder_gives_the_highest_tier_reached():
    ladder = Ladder.from_yuan({"D": 0, "C": 1000, "B": 5000, "A": 20000})
    spends = (0, 99_999, 100_000, 499_999, 500_000, 2_000_000)
    assert [ladder.tier_for(f) for f in spends] == ["D", "D", "C", "C", "B", "A"]
    assert one_step_down("A") == "B" and one_step_down("D") == "D"
    with pytest.raises(ValueError):
        Ladder.from_yuan({"D": 0, "C": 5000, "B": 1000, "A": 20000})


def test_qualified_until_is_when_the_last_needed_order_leaves_the_window():
    orders = [(T, 60_000), (T + timedelta(days=100), 50_000), (T + timedelta(days=200), 10_000)]
    # Newest first: 10,000 + 50,000 reaches 60,000 at the day-100 order.
    assert qualified_until(orders=orders, threshold_fen=60_000, window=timedelta(days=365)) == T + timedelta(days=465)
    assert qualified_until(orders=orders, threshold_fen=10**9, window=timedelta(days=365)) is None


def test_downgrade_only_once_the_grace_has_fully_passed():
    grace = timedelta(days=30)
    assert not downgrade_due(below_since=None, as_of=T, grace=grace)
    assert not downgrade_due(below_since=T, as_of=T + timedelta(days=29, hours=23), grace=grace)
    assert downgrade_due(below_since=T, as_of=T + timedelta(days=30), grace=grace)


def test_the_last_completed_quarter_is_counted_in_the_programs_timezone():
    # 1 April 01:00 in Shanghai is still 31 March in UTC: the first quarter has ended in Shanghai.
    assert last_completed_quarter(datetime(2026, 3, 31, 17, tzinfo=UTC), "Asia/Shanghai")[0].month == 1
    start, end = last_completed_quarter(datetime(2026, 1, 15, tzinfo=UTC), "Asia/Shanghai")
    assert (start.isoformat(), end.isoformat()) == ("2025-10-01", "2026-01-01")


@pytest.mark.parametrize(("spend", "expected"), [(99_999, (0, 0)), (100_000, (300, 3_000)), (499_999, (300, 14_999)),
                                                 (500_000, (500, 25_000))])
def test_rebate_brackets(spend, expected):
    assert rebate_for(spend, [[100_000, 300], [500_000, 500]]) == expected
