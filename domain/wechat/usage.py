"""Query pieces of the official account for other concepts: followers' interactions."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import col

from domain.wechat.models import Follower


def channel_use(start: datetime, end: datetime) -> sa.CompoundSelect:
    """(member_id, kind, at) in [start, end): following the account and the latest message or menu tap (the
    follower row keeps only the latest; older interactions were counted by earlier derivation runs)."""
    follows = sa.select(col(Follower.member_id), sa.literal("wechat"), col(Follower.subscribed_at)).where(
        col(Follower.subscribed_at) >= start, col(Follower.subscribed_at) < end)
    talks = sa.select(col(Follower.member_id), sa.literal("wechat"), col(Follower.last_interaction_at)).where(
        col(Follower.last_interaction_at) >= start, col(Follower.last_interaction_at) < end)
    return sa.union_all(follows, talks)
