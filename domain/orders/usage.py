"""Query pieces of orders for other concepts (channel usage, member value), so they never read this table."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import col

from domain.orders.models import Order


def channel_use(start: datetime, end: datetime) -> sa.Select:  # type: ignore[type-arg]
    """(member_id, kind, at): every order placed in [start, end), ``kind`` being the order's channel."""
    return sa.select(col(Order.member_id).label("member_id"), col(Order.channel).label("kind"),
                     col(Order.occurred_at).label("at")).where(col(Order.occurred_at) >= start,
                                                               col(Order.occurred_at) < end)


def spend_and_orders(start: datetime, end: datetime) -> sa.Subquery:
    """(member_id, spend_fen, orders): net spend and number of orders in [start, end)."""
    return (sa.select(col(Order.member_id).label("member_id"),
                      sa.func.sum(col(Order.amount_fen) - col(Order.refunded_fen)).label("spend_fen"),
                      sa.func.count().label("orders"))
            .where(col(Order.occurred_at) >= start, col(Order.occurred_at) < end)
            .group_by(col(Order.member_id)).subquery("spend_and_orders"))
