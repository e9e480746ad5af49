"""The tier staircase: upgrade at once, downgrade only by evaluation after grace, one step at a time."""

from datetime import UTC, datetime, timedelta

from sqlmodel import select

from domain.events.models import DomainEvent
from domain.members.models import Member
from domain.orders.service import record_refund
from domain.tiers import service as tiers
from domain.tiers.models import TierEvent
from jobs.runner import run_job
from tests.factories import make_member, make_order

T0 = datetime(2026, 1, 5, 4, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def evaluate(session, as_of):
    return tiers.evaluate_tiers(session, as_of=as_of, member_range=(0, 10**9), now=as_of)


def tier_of(session, member_id):
    session.expire_all()
    return session.get(Member, member_id).tier


def test_one_order_can_lift_a_member_several_steps_at_once(session):
    member = make_member(session)
    make_order(session, member_id=member.id, amount_fen=600_000, occurred_at=T0)  # 6,000 yuan: D -> B
    assert tier_of(session, member.id) == "B"
    events = session.exec(select(TierEvent).where(TierEvent.member_id == member.id)).all()
    assert [(e.from_tier, e.to_tier, e.cause.startswith("order:")) for e in events] == [("D", "B", True)]
    kinds = [e.kind for e in session.exec(select(DomainEvent).where(DomainEvent.member_id == member.id))]
    assert "tier.changed" in kinds


def test_points_of_the_upgrading_order_use_the_tier_held_when_it_was_placed(session):
    member = make_member(session)
    first = make_order(session, member_id=member.id, amount_fen=600_000, occurred_at=T0)
    second = make_order(session, member_id=member.id, amount_fen=10_000, occurred_at=T0 + DAY)
    assert (first.points_earned, second.points_earned) == (6_000, 150)  # D 1.0, then B 1.5


def test_a_refund_never_downgrades_on_the_spot(session):
    member = make_member(session)
    make_order(session, member_id=member.id, order_id="BIG", amount_fen=120_000, occurred_at=T0)
    assert tier_of(session, member.id) == "C"
    record_refund(session, order_id="BIG", refund_id="BIG-R", amount_fen=120_000, occurred_at=T0 + DAY, now=T0 + DAY)
    assert tier_of(session, member.id) == "C"


def test_downgrade_waits_for_the_grace_period_and_takes_one_step_per_evaluation(session):
    member = make_member(session)
    make_order(session, member_id=member.id, order_id="X", amount_fen=2_100_000, occurred_at=T0)  # A
    assert tier_of(session, member.id) == "A"
    record_refund(session, order_id="X", refund_id="X-R", amount_fen=2_100_000, occurred_at=T0 + DAY, now=T0 + DAY)
    assert evaluate(session, T0 + 2 * DAY)["in_grace"] == 1          # grace starts
    assert tier_of(session, member.id) == "A"
    assert evaluate(session, T0 + 31 * DAY)["downgrades"] == 0       # 29 days below: still A
    assert evaluate(session, T0 + 32 * DAY)["downgrades"] == 1       # 30 days: one step
    assert tier_of(session, member.id) == "B"
    assert evaluate(session, T0 + 33 * DAY)["downgrades"] == 0       # a new grace for B
    assert evaluate(session, T0 + 62 * DAY)["downgrades"] == 1
    assert tier_of(session, member.id) == "C"


def test_spend_exactly_twelve_months_old_no_longer_counts(session):
    member = make_member(session)
    make_order(session, member_id=member.id, amount_fen=100_000, occurred_at=T0)
    assert tiers.rolling_spend(session, member_id=member.id, now=T0 + 364 * DAY) == 100_000
    assert tiers.rolling_spend(session, member_id=member.id, now=datetime(2027, 1, 5, 4, 0, tzinfo=UTC)) == 0
    assert tiers.rolling_spend(session, member_id=member.id,
                               now=datetime(2027, 1, 5, 3, 59, 59, tzinfo=UTC)) == 100_000


def test_evaluation_run_twice_changes_nothing_the_second_time(committed_engine):
    from domain.db import unit_of_work

    with unit_of_work(committed_engine) as session:
        falling, steady = make_member(session), make_member(session)
        make_order(session, member_id=falling.id, amount_fen=600_000, occurred_at=T0)
        make_order(session, member_id=steady.id, amount_fen=600_000, occurred_at=T0 + 300 * DAY)
    as_of = T0 + 400 * DAY  # falling's spend has left the window; steady's has not
    runs = [run_job("tier-evaluation", engine=committed_engine, as_of=as_of + d * DAY) for d in (0, 0, 30, 30)]
    counts = [{k: v for k, v in run.counts.items() if not k.startswith("shared_")} for run in runs]
    assert counts[0] == {"upgrades": 0, "downgrades": 0, "in_grace": 1}
    assert counts[1] == counts[0]
    assert counts[2] == {"upgrades": 0, "downgrades": 1, "in_grace": 1}
    assert counts[3] == {"upgrades": 0, "downgrades": 0, "in_grace": 1}
    with unit_of_work(committed_engine) as session:
        assert [e.to_tier for e in session.exec(select(TierEvent).where(TierEvent.member_id == falling.id)
                                                .order_by(TierEvent.id))] == ["B", "C"]


def test_a_cheaper_ladder_lifts_members_at_the_next_evaluation_keeping_history(session, monkeypatch):
    from domain.settings import get_settings

    member = make_member(session)
    make_order(session, member_id=member.id, amount_fen=300_000, occurred_at=T0)
    assert tier_of(session, member.id) == "C"
    monkeypatch.setitem(get_settings().tier_thresholds_yuan, "B", 3_000)
    assert evaluate(session, T0 + DAY)["upgrades"] == 1
    assert tier_of(session, member.id) == "B"
    history = tiers.explain_tier(session, member_id=member.id, now=T0 + DAY).history
    assert [(h["from"], h["to"]) for h in history] == [("C", "B"), ("D", "C")]


def test_the_tier_view_explains_progress_and_how_long_the_tier_is_safe(session):
    member = make_member(session)
    make_order(session, member_id=member.id, amount_fen=150_000, occurred_at=T0)
    view = tiers.explain_tier(session, member_id=member.id, now=T0 + DAY)
    assert (view.tier, view.spend_fen, view.next_tier, view.missing_fen) == ("C", 150_000, "B", 350_000)
    assert view.safe_until == datetime(2027, 1, 5, 4, 0, tzinfo=UTC) + timedelta(days=30)
