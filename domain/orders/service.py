"""Order use cases: record a purchase once, refund it, and measure qualifying spend."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from psycopg.types.json import Jsonb
from sqlmodel import Session, col, select

from domain.db import array_literal, forget_loaded, from_table_row
from domain.errors import Conflict, NotFound, PolicyRefused
from domain.members.models import Member
from domain.members.service import get_member
from domain.orders.models import Order, Refund
from domain.orders.rules import check_event_time
from domain.paging import Page, keyset_page
from domain.points import service as points
from domain.points.models import PointsAccount
from domain.points.rules import lot_dates
from domain.settings import get_settings
from domain.tiers import service as tiers
from domain.tiers.models import TierStatus


@dataclass
class NewOrder:
    order_id: str
    member_id: int
    amount_fen: int
    channel: str
    occurred_at: datetime
    items: list[dict[str, Any]]
    sent_by: str = ""
    """The caller's namespace of order ids (``api:<key name>`` …; migration 1503). Empty for work that no
    credential sends (the CLI, seeds, tests of the domain)."""


# One round trip: the whole order is ``loyalty_record_order`` (migrations 1700, 1503, 1703), parameterised here
# from the rule modules and the settings. The same text serves the sync session and the async hot route.
RECORD_ORDER_SQL = """
SELECT r.outcome, (r.order_row).* FROM loyalty_record_order(
    %(sent_by)s, %(order_id)s, %(member_id)s::integer, %(amount_fen)s::bigint, %(channel)s,
    %(occurred_at)s::timestamptz,
    %(items)s::jsonb, %(payload_hash)s, %(now)s::timestamptz, %(tiers)s::text[], %(multipliers)s::numeric[],
    %(thresholds)s::bigint[], %(window_start)s::timestamptz, %(available_at)s::timestamptz,
    %(expires_at)s::timestamptz, %(occurred_at_text)s, %(available_at_text)s) r
"""


def event_time(at: datetime, *, now: datetime, what: str, imported: bool = False,
               field: str = "occurred_at") -> datetime:
    """The one check of when an outside event may say it happened (``rules.check_event_time``) with the
    configured limits; ``imported`` is the operators' import path, which may back-date without limit."""
    settings = get_settings()
    return check_event_time(at, now=now, what=what, field=field, future_minutes=settings.event_future_minutes,
                            backdating_days=None if imported else settings.event_backdating_days)


def order_digest(new: NewOrder) -> str:
    """The order's fingerprint: the same ``order_id`` with another fingerprint is a conflict."""
    return points.payload_hash({"member_id": new.member_id, "amount_fen": new.amount_fen, "channel": new.channel,
                                "occurred_at": new.occurred_at.isoformat(), "items": new.items})


@functools.lru_cache(maxsize=8)
def ladder_literals(tier_names: tuple[str, ...], thresholds: tuple[int, ...],
                    multipliers: tuple[str, ...]) -> dict[str, str]:
    """The ladder's three arrays (``tiers``, ``multipliers``, ``thresholds`` of ``RECORD_ORDER_SQL``) as array
    literals, which the statement casts (``::text[]``, ``::numeric[]``, ``::bigint[]``). psycopg adapts a list
    element by element (the statement's parameters took 16 µs to adapt with lists, 7 µs with literals, timeit),
    and building the literals was itself most of ``order_parameters``' time, so they are kept per ladder: keyed
    by the values, a changed setting gets its own."""
    return {"tiers": array_literal(tier_names),
            "multipliers": array_literal([str(Decimal(m)) for m in multipliers]),
            "thresholds": array_literal(thresholds)}


def order_parameters(new: NewOrder, *, now: datetime, imported: bool = False) -> dict[str, Any]:
    """The parameters of ``RECORD_ORDER_SQL``: the earn multipliers and the ladder in tier order, the rolling
    window and the lot's dates, all from the rule modules and the settings. The order's time is checked here,
    so the sync path and the hot route both pass it (``event_time``)."""
    event_time(new.occurred_at, now=now, what="order", imported=imported)
    # A till whose clock runs a minute or two ahead is within the allowance: the order is counted as of its own
    # time, or the spend window (which ends at ``now``) would leave it out and the upgrade would not happen at once.
    now = max(now, new.occurred_at)
    settings = get_settings()
    tier_names, thresholds = tiers.ladder().in_order()
    window = tiers.window_params(now)
    assert window["spend_until"] == now  # the statement counts the spend up to the order's ``now``
    available_at, expires_at = lot_dates(occurred_at=new.occurred_at,
                                         return_window_days=settings.points_return_window_days,
                                         expiry_months=settings.points_expiry_months)
    return {"sent_by": new.sent_by, "order_id": new.order_id, "member_id": new.member_id, "amount_fen": new.amount_fen,
            "channel": new.channel, "occurred_at": new.occurred_at, "items": Jsonb(new.items),
            "payload_hash": order_digest(new), "now": now,
            **ladder_literals(tuple(tier_names), tuple(thresholds),
                              tuple(settings.tier_multipliers.get(t, "1.0") for t in tier_names)),
            "window_start": window["spend_since"],
            "available_at": available_at, "expires_at": expires_at,
            "occurred_at_text": new.occurred_at.isoformat(), "available_at_text": available_at.isoformat()}


def order_outcome(row: Mapping[Any, Any], *, new: NewOrder) -> tuple[Order, bool]:
    """Turn the statement's answer into the order and whether it was a replay, or the refusal."""
    outcome = row["outcome"]
    if outcome == "member_not_found":
        raise NotFound(f"member {new.member_id} not found", code="member_not_found",
                       details={"member_id": new.member_id})
    if outcome == "member_closed":
        raise Conflict(f"member {new.member_id} is closed", code="member_closed",
                       details={"member_id": new.member_id})
    if outcome == "conflict":
        raise Conflict(f"order {new.order_id} was sent before with other values", code="order_conflict",
                       details={"order_id": new.order_id, "member_id": row["member_id"]})
    order = from_table_row(Order, row)
    return order, outcome == "replayed"


def record_order(session: Session, *, new: NewOrder, now: datetime, imported: bool = False) -> tuple[Order, bool]:
    """Record a purchase: credit points at the member's tier multiplier, count it as qualifying spend,
    lift the tier at once if a threshold is crossed. The same ``order_id`` again returns the first result
    (``replayed=True``); with another payload it is a conflict. One statement (``RECORD_ORDER_SQL``).
    The order's time is checked first (``event_time``): not in the future, not older than the back-dating
    window unless ``imported`` (an old imported order's points are dated by the order, so they may already
    be available, or due to expire at the next expiry run)."""
    session.flush()
    params = order_parameters(new, now=now, imported=imported)
    row = session.connection().exec_driver_sql(RECORD_ORDER_SQL, params).mappings().one()
    order, replayed = order_outcome(row, new=new)
    if not replayed:
        # What the statement changed behind the ORM's back, in case this session had loaded it.
        forget_loaded(session, Member, new.member_id, ("tier", "status", "last_purchase_at", "updated_at"))
        forget_loaded(session, PointsAccount, new.member_id, ("pending", "updated_at"))
        forget_loaded(session, TierStatus, new.member_id, ("below_since",))
    return order, replayed


RECORD_REFUND_SQL = """
SELECT r.outcome, r.refund_member_id, r.refundable_fen, (r.refund_row).* FROM loyalty_record_refund(
    %(sent_by)s, %(order_id)s, %(refund_id)s, %(amount_fen)s::bigint, %(occurred_at)s::timestamptz, %(payload_hash)s,
    %(now)s::timestamptz) r
"""


def refund_parameters(*, order_id: str, refund_id: str, amount_fen: int, occurred_at: datetime,
                      now: datetime, sent_by: str = "", imported: bool = False) -> dict[str, Any]:
    """The parameters of ``RECORD_REFUND_SQL`` (migrations 1701, 1503): the order and the refund are both
    looked for in ``sent_by``'s namespace, so a caller refunds only the orders it recorded. The refund's time is
    checked here like an order's (``event_time``), so the sync path and the hot route both pass it."""
    event_time(occurred_at, now=now, what="refund", imported=imported)
    return {"sent_by": sent_by, "order_id": order_id, "refund_id": refund_id, "amount_fen": amount_fen,
            "occurred_at": occurred_at,
            "payload_hash": points.payload_hash({"order_id": order_id, "amount_fen": amount_fen}), "now": now}


def refund_clash(refund_id: str) -> Conflict:
    """What a unique violation of ``RECORD_REFUND_SQL`` means: the caller used ``refund_id`` at this moment on
    another order, and the statement undid itself."""
    return Conflict(f"refund {refund_id} exists", code="refund_conflict", details={"refund_id": refund_id})


def refund_outcome(row: Mapping[Any, Any], *, order_id: str, refund_id: str, amount_fen: int) -> tuple[Refund, bool]:
    """Turn the statement's answer into the refund and whether it was a replay, or the refusal."""
    outcome = row["outcome"]
    if outcome == "order_not_found":
        raise NotFound(f"order {order_id} not found", code="order_not_found", details={"order_id": order_id})
    if outcome == "conflict":
        raise Conflict(f"refund {refund_id} was sent before with other values", code="refund_conflict",
                       details={"refund_id": refund_id})
    if outcome == "refund_exceeds_order":
        left = row["refundable_fen"]
        raise PolicyRefused(f"refund of {amount_fen} fen exceeds the {left} fen left on order {order_id}",
                            code="refund_exceeds_order", details={"order_id": order_id, "refundable_fen": left})
    refund = from_table_row(Refund, row)
    return refund, outcome == "replayed"


def record_refund(session: Session, *, order_id: str, refund_id: str, amount_fen: int, occurred_at: datetime,
                  now: datetime, imported: bool = False, sent_by: str = "") -> tuple[Refund, bool]:
    """Refund part or all of an order: take back points and qualifying spend in proportion.
    Idempotent by ``refund_id`` within ``sent_by``; a refund larger than what is left of the order is refused.
    A refund never downgrades a tier on the spot (only the scheduled evaluation does).
    One statement (``RECORD_REFUND_SQL``). Its time is checked like an order's (``event_time``)."""
    params = refund_parameters(order_id=order_id, refund_id=refund_id, amount_fen=amount_fen,
                               occurred_at=occurred_at, now=now, sent_by=sent_by, imported=imported)
    session.flush()
    try:
        row = session.connection().exec_driver_sql(RECORD_REFUND_SQL, params).mappings().one()
    except sa.exc.IntegrityError as exc:
        raise refund_clash(refund_id) from exc
    refund, replayed = refund_outcome(row, order_id=order_id, refund_id=refund_id, amount_fen=amount_fen)
    if not replayed:
        forget_loaded(session, Order, row["order_pk"], ("refunded_fen", "points_reversed"))
        forget_loaded(session, PointsAccount, row["refund_member_id"], ("available", "pending", "debt", "updated_at"))
    return refund, replayed


def recent_orders(session: Session, *, member_id: int, limit: int = 10) -> list[Order]:
    """The member's latest orders, newest first."""
    return list(session.exec(select(Order).where(Order.member_id == member_id)
                             .order_by(col(Order.occurred_at).desc()).limit(limit)))


def list_orders(session: Session, *, member_id: int, cursor: str | None, limit: int) -> Page[Order]:
    """A member's orders, latest purchase first, one page at a time."""
    get_member(session, member_id=member_id)
    orders = Order.__table__.c  # type: ignore[attr-defined]
    return keyset_page(session, sa.select(Order).where(orders.member_id == member_id),
                       order_by=[orders.occurred_at, orders.id], cursor=cursor, limit=limit)
