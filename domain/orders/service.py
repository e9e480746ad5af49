"""Order use cases: record a purchase once, refund it, and measure qualifying spend."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from domain.db import advisory_xact_lock
from domain.errors import Conflict, NotFound, PolicyRefused
from domain.events.service import record_event
from domain.members.models import MemberStatus
from domain.members.service import get_member, record_purchase
from domain.orders.models import Order, Refund
from domain.paging import Page, keyset_page
from domain.points import service as points
from domain.points.rules import earn_points, points_to_reverse
from domain.settings import get_settings
from domain.tiers import service as tiers


@dataclass
class NewOrder:
    order_id: str
    member_id: int
    amount_fen: int
    channel: str
    occurred_at: datetime
    items: list[dict[str, Any]]


def record_order(session: Session, *, new: NewOrder, now: datetime) -> tuple[Order, bool]:
    """Record a purchase: credit points at the member's tier multiplier, count it as qualifying spend,
    lift the tier at once if a threshold is crossed. The same ``order_id`` again returns the first result
    (``replayed=True``); with another payload it is a conflict."""
    digest = points.payload_hash({"member_id": new.member_id, "amount_fen": new.amount_fen, "channel": new.channel,
                                  "occurred_at": new.occurred_at.isoformat(), "items": new.items})
    advisory_xact_lock(session, "order", new.order_id)  # concurrent sends of one order queue here
    existing = session.exec(select(Order).where(Order.order_id == new.order_id)).first()
    if existing is not None:
        if existing.payload_hash != digest:
            raise Conflict(f"order {new.order_id} was sent before with other values", code="order_conflict",
                           details={"order_id": new.order_id, "member_id": existing.member_id})
        return existing, True
    # Locked before the order's rows are inserted: orders of one member queue here, before any of them holds
    # key-share locks on the member row through its foreign keys.
    member = get_member(session, member_id=new.member_id, for_update=True)
    if member.status == MemberStatus.CLOSED:
        raise Conflict(f"member {member.id} is closed", code="member_closed", details={"member_id": member.id})
    multiplier = Decimal(get_settings().tier_multipliers.get(member.tier, "1.0"))
    earned = earn_points(amount_fen=new.amount_fen, multiplier=multiplier)
    order = Order(order_id=new.order_id, member_id=new.member_id, amount_fen=new.amount_fen, channel=new.channel,
                  occurred_at=new.occurred_at, items=new.items, payload_hash=digest, tier_at_order=member.tier,
                  points_earned=earned, recorded_at=now)
    session.add(order)
    session.flush()
    points.credit_order_points(session, member_id=new.member_id, order_ref=new.order_id, points=earned,
                               occurred_at=new.occurred_at, now=now)
    locked = record_purchase(session, member=member, at=new.occurred_at, now=now)
    record_event(session, kind="order.recorded", member_id=new.member_id,
                 payload={"order_id": new.order_id, "amount_fen": new.amount_fen, "points": earned,
                          "occurred_at": new.occurred_at.isoformat()}, now=now)
    tiers.upgrade_on_spend(session, member_id=new.member_id, cause=f"order:{new.order_id}", now=now,
                           locked_member=locked)
    return order, False


def record_refund(session: Session, *, order_id: str, refund_id: str, amount_fen: int, occurred_at: datetime,
                  now: datetime) -> tuple[Refund, bool]:
    """Refund part or all of an order: take back points and qualifying spend in proportion.
    Idempotent by ``refund_id``; a refund larger than what is left of the order is refused.
    A refund never downgrades a tier on the spot (only the scheduled evaluation does)."""
    order = session.exec(select(Order).where(Order.order_id == order_id).with_for_update()).first()
    if order is None:
        raise NotFound(f"order {order_id} not found", code="order_not_found", details={"order_id": order_id})
    digest = points.payload_hash({"order_id": order_id, "amount_fen": amount_fen})
    existing = session.exec(select(Refund).where(Refund.refund_id == refund_id)).first()
    if existing is not None:
        if existing.payload_hash != digest:
            raise Conflict(f"refund {refund_id} was sent before with other values", code="refund_conflict",
                           details={"refund_id": refund_id})
        return existing, True
    left = order.amount_fen - order.refunded_fen
    if amount_fen > left:
        raise PolicyRefused(f"refund of {amount_fen} fen exceeds the {left} fen left on order {order_id}",
                            code="refund_exceeds_order", details={"order_id": order_id, "refundable_fen": left})
    reverse = points_to_reverse(points_earned=order.points_earned, points_reversed=order.points_reversed,
                                amount_fen=order.amount_fen, refunded_before_fen=order.refunded_fen,
                                refund_fen=amount_fen)
    refund = Refund(refund_id=refund_id, order_pk=order.id or 0, amount_fen=amount_fen, points_reversed=reverse,
                    payload_hash=digest, occurred_at=occurred_at, recorded_at=now)
    session.add(refund)
    order.refunded_fen += amount_fen
    order.points_reversed += reverse
    session.add(order)
    try:
        with session.begin_nested():
            session.flush()
    except sa.exc.IntegrityError as exc:  # refund_id reused on another order
        raise Conflict(f"refund {refund_id} exists", code="refund_conflict", details={"refund_id": refund_id}) from exc
    points.reverse_order_points(session, member_id=order.member_id, order_ref=order_id, refund_ref=refund_id,
                                points=reverse, now=now)
    record_event(session, kind="order.refunded", member_id=order.member_id,
                 payload={"order_id": order_id, "refund_id": refund_id, "amount_fen": amount_fen,
                          "points_reversed": reverse}, now=now)
    return refund, False


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
