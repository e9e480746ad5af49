"""The order statement's SQL forms of the earn and tier rules agree with the Python rules, and the whole
statement agrees with the rules on generated members' order sequences."""

import random
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlmodel import select

from domain.access.models import AccessLogEntry
from domain.crm import service as crm
from domain.errors import NotFound
from domain.orders.models import Order
from domain.orders.service import NewOrder, record_order, record_refund
from domain.points import service as points
from domain.points.models import LedgerEntry, LotState, PointsLot
from domain.points.rules import LotView, allocate_redemption_to_lots, earn_points, lot_dates, points_to_reverse
from domain.settings import get_settings
from domain.tiers.models import TierEvent
from domain.tiers.rules import Ladder
from domain.tiers.service import ladder
from tests.factories import make_member, make_order

T0 = datetime(2026, 1, 5, 4, 0, tzinfo=UTC)


def test_the_sql_earn_rule_agrees_with_the_python_rule_on_generated_amounts(session):
    rng = random.Random(17)
    cases = [(rng.choice([1, 99, 100, 101, 9_999, 10_000]) if i < 30 else rng.randint(1, 10**9),
              Decimal(rng.choice(["1.0", "1.2", "1.5", "2.0", "0.7", "1.33", "3"]))) for i in range(2_000)]
    got = session.execute(sa.text(
        "SELECT loyalty_earn_points(a, m) FROM unnest(CAST(:a AS bigint[]), CAST(:m AS numeric[])) AS t(a, m)"),
        {"a": [a for a, _ in cases], "m": [m for _, m in cases]}).scalars().all()
    assert got == [earn_points(amount_fen=a, multiplier=m) for a, m in cases]


def test_the_sql_tier_rule_agrees_with_the_python_ladder_on_generated_spends(session):
    rng = random.Random(18)
    for thresholds in ({"D": 0, "C": 1_000, "B": 5_000, "A": 20_000}, {"D": 0, "C": 0, "B": 1, "A": 1},
                       {"D": 0, "C": 300, "B": 300, "A": 90_000}):
        lad = Ladder.from_yuan(thresholds)
        tiers, fen = lad.in_order()
        spends = [0, 1, *fen, *(f - 1 for f in fen if f), *(rng.randint(0, 3 * 10**7) for _ in range(500))]
        got = session.execute(sa.text(
            "SELECT loyalty_tier_for(s, CAST(:t AS text[]), CAST(:f AS bigint[])) FROM unnest(CAST(:s AS bigint[])) s"),
            {"s": spends, "t": tiers, "f": fen}).scalars().all()
        assert got == [lad.tier_for(s) for s in spends]


def test_the_statement_earns_and_upgrades_as_the_rules_say_on_generated_order_sequences(session):
    rng = random.Random(19)
    settings = get_settings()
    lad = ladder()
    for m in range(12):
        member = make_member(session)
        tier, history = "D", []  # the rules, replayed in Python beside the statement
        for n in range(rng.randint(1, 8)):
            at = T0 + timedelta(days=n, minutes=rng.randint(0, 600))
            amount = rng.choice([1, 99, 12_345, 99_999, 150_000, 600_000, 2_500_000])
            order, replayed = record_order(session, new=NewOrder(order_id=f"G-{m}-{n}", member_id=member.id,
                                                                 amount_fen=amount, channel="store", occurred_at=at,
                                                                 items=[{"n": n}]), now=at)
            expected = earn_points(amount_fen=amount, multiplier=Decimal(settings.tier_multipliers[tier]))
            assert (replayed, order.tier_at_order, order.points_earned) == (False, tier, expected)
            history.append(amount)
            reached = lad.tier_for(sum(history))
            tier = reached if lad.in_order()[0].index(reached) > lad.in_order()[0].index(tier) else tier
            lot = session.exec(select(PointsLot).where(PointsLot.source == "order",
                                                       PointsLot.source_ref == str(order.id))).first()
            if expected:
                assert lot is not None and (lot.available_at, lot.expires_at) == lot_dates(
                    occurred_at=at, return_window_days=settings.points_return_window_days,
                    expiry_months=settings.points_expiry_months)
            else:
                assert lot is None
        steps = session.exec(select(TierEvent.to_tier).where(TierEvent.member_id == member.id)
                             .order_by(TierEvent.id)).all()
        assert (steps[-1] if steps else "D") == tier
    assert points.verify_points(session) == []


def test_a_replay_and_a_conflict_write_nothing(session):
    member = make_member(session)
    new = NewOrder(order_id="ONE", member_id=member.id, amount_fen=50_000, channel="store", occurred_at=T0, items=[])
    record_order(session, new=new, now=T0)
    again, replayed = record_order(session, new=new, now=T0 + timedelta(hours=1))
    assert replayed and again.recorded_at == T0
    assert len(session.exec(select(LedgerEntry).where(LedgerEntry.member_id == member.id)).all()) == 1
    assert len(session.exec(select(Order).where(Order.member_id == member.id)).all()) == 1


def test_the_sql_reversal_rule_agrees_with_the_python_rule_on_generated_refund_sequences(session):
    rng = random.Random(20)
    cases = []
    for _ in range(400):
        amount, earned = rng.randint(1, 10**7), rng.randint(0, 10**5)
        refunded = reversed_ = 0
        while refunded < amount:
            refund = rng.randint(1, amount - refunded)
            take = points_to_reverse(points_earned=earned, points_reversed=reversed_, amount_fen=amount,
                                     refunded_before_fen=refunded, refund_fen=refund)
            cases.append((earned, reversed_, amount, refunded, refund, take))
            refunded, reversed_ = refunded + refund, reversed_ + take
        assert reversed_ == earned  # a full refund takes back exactly everything
    got = session.execute(sa.text(
        "SELECT loyalty_points_to_reverse(e, r, a, b, f) FROM unnest(CAST(:e AS integer[]), CAST(:r AS integer[]), "
        "CAST(:a AS bigint[]), CAST(:b AS bigint[]), CAST(:f AS bigint[])) AS t(e, r, a, b, f)"),
        {k: [c[i] for c in cases] for i, k in enumerate("erabf")}).scalars().all()
    assert got == [c[5] for c in cases]


def test_the_sql_fifo_allocation_agrees_with_the_python_rule_on_generated_lots(session):
    rng = random.Random(21)
    for _ in range(25):
        member = make_member(session)
        lots = []
        for _ in range(rng.randint(0, 6)):
            expires = T0 + timedelta(days=rng.choice([10, 20, 20, 40]))
            amount = rng.randint(1, 500)
            lot = PointsLot(member_id=member.id, amount=amount, remaining=rng.randint(0, amount),
                            state=rng.choice([LotState.AVAILABLE, LotState.AVAILABLE, LotState.PENDING]),
                            source="test", source_ref=f"{member.id}-{len(lots)}", available_at=T0, expires_at=expires,
                            created_at=T0)
            session.add(lot)
            session.flush()
            lots.append(lot)
        usable = [LotView(lot.id or 0, lot.remaining, lot.expires_at) for lot in lots
                  if lot.state == LotState.AVAILABLE]
        want = rng.randint(1, 1_500)
        expected = allocate_redemption_to_lots(usable, min(want, sum(v.remaining for v in usable)))
        got = session.execute(sa.text("SELECT loyalty_take_from_lots(:m, :p)"), {"m": member.id, "p": want}).scalar()
        assert [(a["lot_id"], a["points"]) for a in got] == expected


def test_the_one_statement_balance_is_the_balance_and_refuses_an_unknown_member(session):
    member, empty = make_member(session), make_member(session)
    make_order(session, member_id=member.id, amount_fen=80_000, occurred_at=T0 - timedelta(days=370))
    make_order(session, member_id=member.id, amount_fen=20_000, occurred_at=T0 - timedelta(days=20))
    points.release_due_points(session, as_of=T0, member_range=(0, 10**9), now=T0)
    for m in (member, empty):
        assert points.member_balance(session, member_id=m.id, now=T0) == points.balance_of(session, member_id=m.id,
                                                                                             now=T0)
    with pytest.raises(NotFound):
        points.member_balance(session, member_id=10**9, now=T0)


@contextmanager
def statements(session):
    """The statements the session sends while the block runs."""
    sent: list[str] = []
    conn = session.connection()

    def count(_conn, _cursor, statement, *_args):
        sent.append(statement)

    sa.event.listen(conn, "before_cursor_execute", count)
    try:
        yield sent
    finally:
        sa.event.remove(conn, "before_cursor_execute", count)


def test_an_order_a_refund_a_redemption_a_balance_and_a_lookup_are_one_statement_each(session):
    member = make_member(session)
    session.flush()
    with statements(session) as sent:
        record_order(session, new=NewOrder(order_id="ONE-1", member_id=member.id, amount_fen=500_000, channel="store",
                                           occurred_at=T0, items=[]), now=T0)
    assert len(sent) == 1
    with statements(session) as sent:
        record_refund(session, order_id="ONE-1", refund_id="ONE-1-R", amount_fen=1_000, occurred_at=T0, now=T0)
    assert len(sent) == 1
    points.release_due_points(session, as_of=T0 + timedelta(days=8), member_range=(0, 10**9), now=T0)
    with statements(session) as sent:
        points.redeem_points(session, member_id=member.id, redemption_id="ONE-RD", points=10, reason="gift", now=T0)
    assert len(sent) == 1
    with statements(session) as sent:
        points.member_balance(session, member_id=member.id, now=T0)
    assert len(sent) == 1
    with statements(session) as sent:
        picture = crm.lookup_picture(session, phone=member.phone, access=crm.AccessRecord(
            api_key_name="k", agent_id="a-1", reason="inbound call"), unmasked=False, now=T0)
    assert len(sent) == 1 and picture["member"]["id"] == member.id
    logged = session.exec(select(AccessLogEntry).where(AccessLogEntry.member_id == member.id)).all()
    assert [(e.api_key_name, e.agent_id, e.action, e.reason) for e in logged] == [("k", "a-1", "crm.lookup",
                                                                                   "inbound call")]
    with pytest.raises(NotFound):
        crm.lookup_picture(session, phone="+8613999999999", access=crm.AccessRecord(
            api_key_name="k", agent_id=None, reason="call"), unmasked=False, now=T0)
    assert points.verify_points(session) == []


def test_the_statements_answers_are_read_into_the_models_the_constructors_would_give(session, now):
    """The outcome readers fill the instance's dict as the ORM's loading does (``domain.db.from_table_row``),
    not through the models' constructors (80 µs an order): on the answers of an order, its replay, a refund and
    a redemption, every field equals what ``Model(**row)`` gives."""
    from domain.orders.models import Refund
    from domain.orders.service import (
        RECORD_ORDER_SQL,
        RECORD_REFUND_SQL,
        order_outcome,
        order_parameters,
        refund_outcome,
        refund_parameters,
    )
    from domain.points.models import Redemption

    def answer(sql, params):
        return session.connection().exec_driver_sql(sql, params).mappings().one()

    member = make_member(session, now=now - timedelta(days=30))
    new = NewOrder(order_id="read-1", member_id=member.id, amount_fen=123_456, channel="store",
                   occurred_at=now - timedelta(days=1), items=[{"sku": "x", "qty": 2}], sent_by="api:test")
    read = []
    for replay in (False, True):
        row = answer(RECORD_ORDER_SQL, order_parameters(new, now=now))
        order, replayed = order_outcome(row, new=new)
        assert replayed is replay
        read.append((order, Order, row))
    row = answer(RECORD_REFUND_SQL, refund_parameters(order_id="read-1", refund_id="r-1", amount_fen=1_000,
                                                      occurred_at=now, now=now, sent_by="api:test"))
    read.append((refund_outcome(row, order_id="read-1", refund_id="r-1", amount_fen=1_000)[0], Refund, row))
    points.adjust_points(session, member_id=member.id, adjustment_id="a-1", points=10, reason="test", actor="t",
                         now=now)  # the order's points are still pending: some available ones to spend
    row = answer(points.REDEEM_SQL, points.redemption_parameters(member_id=member.id, redemption_id="s-1", points=3,
                                                                 reason="test", now=now, sent_by="api:test"))
    read.append((points.redemption_outcome(row, member_id=member.id, redemption_id="s-1", points=3)[0],
                 Redemption, row))
    for built, model, row in read:
        constructed = model(**{f: row[f] for f in model.model_fields})
        assert type(built) is model
        assert {f: getattr(built, f) for f in model.model_fields} == dict(constructed)
        assert built.model_dump() == constructed.model_dump()


def _events_since(session, member_id, after_id):
    return [(kind, payload, occurred_at, key) for kind, payload, occurred_at, key in session.execute(sa.text(
        "SELECT kind, payload, occurred_at, dedupe_key FROM domain_events WHERE member_id = :m AND id > :after "
        "ORDER BY id"), {"m": member_id, "after": after_id})]


def test_an_order_writes_its_points_its_events_in_order_and_its_member(session):
    # What an order records, row by row: the statement was rewritten for speed (migration 1708) and must keep
    # every row and every event's content and order (consumers and webhooks read them).
    settings = get_settings()
    member = make_member(session)
    session.execute(sa.text("UPDATE members SET status = 'dormant' WHERE id = :m"), {"m": member.id})
    session.execute(sa.text("DELETE FROM points_accounts WHERE member_id = :m"), {"m": member.id})  # a first account
    before = session.execute(sa.text("SELECT coalesce(max(id), 0) FROM domain_events")).scalar()
    at, now = T0 - timedelta(hours=2), T0
    order, _ = record_order(session, new=NewOrder(order_id="ROW-1", member_id=member.id, amount_fen=1_200_000,
                                                  channel="store", occurred_at=at, items=[{"sku": "x"}]), now=now)
    available_at, expires_at = lot_dates(occurred_at=at, return_window_days=settings.points_return_window_days,
                                         expiry_months=settings.points_expiry_months)
    assert (order.tier_at_order, order.points_earned) == ("D", 12_000)
    assert _events_since(session, member.id, before) == [
        ("points.earned", {"order_id": "ROW-1", "points": 12_000, "available_at": available_at.isoformat()}, now, None),
        ("member.reactivated", {"from": "dormant"}, now, None),
        ("order.recorded", {"order_id": "ROW-1", "amount_fen": 1_200_000, "points": 12_000,
                            "occurred_at": at.isoformat()}, now, None),
        ("tier.changed", {"from": "D", "to": "B", "cause": "order:ROW-1", "spend_fen": 1_200_000}, now, None)]
    lot = session.execute(sa.text(
        "SELECT id, amount, remaining, state, source_ref, available_at, expires_at, created_at FROM points_lots "
        "WHERE member_id = :m"), {"m": member.id}).one()
    assert tuple(lot)[1:] == (12_000, 12_000, "pending", str(order.id), available_at, expires_at, now)
    ledger = session.execute(sa.text(
        "SELECT kind, pending_delta, available_delta, lot_id, source, source_ref, details, created_at "
        "FROM points_ledger WHERE member_id = :m"), {"m": member.id}).all()
    assert [tuple(r) for r in ledger] == [("earn", 12_000, 0, lot.id, "order", str(order.id), {"order_id": "ROW-1"},
                                           now)]
    account = session.execute(sa.text("SELECT available, pending, debt, updated_at FROM points_accounts "
                                      "WHERE member_id = :m"), {"m": member.id}).one()
    assert tuple(account) == (0, 12_000, 0, now)
    row = session.execute(sa.text("SELECT status, tier, last_purchase_at, updated_at FROM members WHERE id = :m"),
                          {"m": member.id}).one()
    assert tuple(row) == ("active", "B", at, now)
    steps = session.execute(sa.text("SELECT from_tier, to_tier, cause, spend_fen, at FROM tier_events "
                                    "WHERE member_id = :m"), {"m": member.id}).all()
    assert [tuple(s) for s in steps] == [("D", "B", "order:ROW-1", 1_200_000, now)]

    # An order too small for a point: its event only, and the account as it was; an earlier order keeps the
    # member's last purchase.
    before = session.execute(sa.text("SELECT max(id) FROM domain_events")).scalar()
    later = now + timedelta(minutes=5)
    small, _ = record_order(session, new=NewOrder(order_id="ROW-2", member_id=member.id, amount_fen=50,
                                                  channel="store", occurred_at=at - timedelta(days=1), items=[]),
                            now=later)
    assert (small.tier_at_order, small.points_earned) == ("B", 0)
    assert _events_since(session, member.id, before) == [
        ("order.recorded", {"order_id": "ROW-2", "amount_fen": 50, "points": 0,
                            "occurred_at": (at - timedelta(days=1)).isoformat()}, later, None)]
    assert session.execute(sa.text("SELECT count(*) FROM points_lots WHERE member_id = :m"),
                           {"m": member.id}).scalar() == 1
    assert tuple(session.execute(sa.text("SELECT available, pending, debt, updated_at FROM points_accounts "
                                         "WHERE member_id = :m"), {"m": member.id}).one()) == (0, 12_000, 0, now)
    assert tuple(session.execute(sa.text("SELECT status, tier, last_purchase_at, updated_at FROM members "
                                         "WHERE id = :m"), {"m": member.id}).one()) == ("active", "B", at, later)

    # An existing account is added to, not replaced.
    record_order(session, new=NewOrder(order_id="ROW-3", member_id=member.id, amount_fen=10_000, channel="store",
                                       occurred_at=at, items=[]), now=later)
    assert session.execute(sa.text("SELECT pending FROM points_accounts WHERE member_id = :m"),
                           {"m": member.id}).scalar() == 12_000 + 150
    assert points.verify_points(session) == []


def test_an_order_earns_at_a_changed_multiplier_setting_not_at_the_one_cached_before(session, now, monkeypatch):
    """The ladder's array parameters are kept per ladder (``ladder_literals``), keyed by the settings' values:
    an order after a multiplier changed earns at the new one."""
    member = make_member(session, now=now - timedelta(days=30))
    first = NewOrder(order_id="mult-1", member_id=member.id, amount_fen=10_000, channel="store",
                     occurred_at=now - timedelta(hours=1), items=[])
    order, _ = record_order(session, new=first, now=now)
    settings = get_settings()
    tier = order.tier_at_order
    assert order.points_earned == earn_points(amount_fen=10_000, multiplier=Decimal(settings.tier_multipliers[tier]))
    monkeypatch.setattr(settings, "tier_multipliers", {**settings.tier_multipliers, tier: "3.0"})
    second = NewOrder(order_id="mult-2", member_id=member.id, amount_fen=10_000, channel="store",
                      occurred_at=now - timedelta(hours=1), items=[])
    order, _ = record_order(session, new=second, now=now)
    assert order.tier_at_order == tier
    assert order.points_earned == earn_points(amount_fen=10_000, multiplier=Decimal("3.0")) != 0
