"""Query pieces of touches for other concepts: touches the member answered, opened or clicked."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import col

from domain.touchpoints.models import Touch

ENGAGED = ("answered", "read", "opened", "clicked")
"""Provider reports (``delivery_status``) that show the member acted on a touch, not merely received it."""


def channel_use(start: datetime, end: datetime) -> sa.Select:  # type: ignore[type-arg]
    """(member_id, kind, at): touches sent in [start, end) that the member answered, opened or clicked."""
    return sa.select(col(Touch.member_id), col(Touch.channel), col(Touch.sent_at)).where(
        col(Touch.delivery_status).in_(ENGAGED), col(Touch.sent_at) >= start, col(Touch.sent_at) < end)
