"""``points.expiring_soon``: tell a member (through subscribers) that points will expire within the window.

Derived from the lots by the expiry job, set-based over a range of members, once per member and expiry day:
the event's ``dedupe_key`` is ``points.expiring_soon:<member>:<expiry date>``, so a lot is announced once
(when its expiry day first enters the window) however often the job runs, and a later lot expiring on another
day gets its own event. The window is ``points_expiring_soon_days``, the same horizon as the balance's
``expiring_soon`` (``service.expiring_horizon``).
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session

from domain.points.service import expiring_horizon
from domain.settings import get_settings

EXPIRING_SOON_SQL = """
WITH due AS (
    SELECT l.member_id, (l.expires_at AT TIME ZONE :tz)::date AS expires_on, min(l.expires_at) AS expires_at,
           sum(l.remaining) AS points, array_agg(l.id ORDER BY l.id) AS lots
    FROM points_lots l
    WHERE l.state = 'available' AND l.remaining > 0 AND l.expires_at > :as_of AND l.expires_at <= :horizon
      AND l.member_id BETWEEN :lo AND :hi
    GROUP BY l.member_id, (l.expires_at AT TIME ZONE :tz)::date
), inserted AS (
    INSERT INTO domain_events (kind, member_id, payload, occurred_at, dedupe_key)
    SELECT 'points.expiring_soon', member_id,
           jsonb_build_object('points', points, 'expires_at', expires_at, 'expires_on', expires_on,
                              'lot_ids', to_jsonb(lots), 'window_days', CAST(:window_days AS integer)),
           :as_of, 'points.expiring_soon:' || member_id || ':' || expires_on
    FROM due ORDER BY member_id, expires_on
    ON CONFLICT (dedupe_key) WHERE dedupe_key IS NOT NULL DO NOTHING
    RETURNING (payload->>'points')::bigint AS points
)
SELECT count(*) AS events, coalesce(sum(points), 0) AS points FROM inserted
"""


def record_expiring_soon(session: Session, *, as_of: datetime, member_range: tuple[int, int], now: datetime
                         ) -> tuple[int, int]:
    """Record ``points.expiring_soon`` for members in the range whose available lots expire within the window
    after ``as_of``; returns (events recorded now, points they announce). Idempotent by ``dedupe_key``."""
    del now  # the event happens at ``as_of``: a re-run at the same instant finds every key already there
    settings = get_settings()
    lo, hi = member_range
    row = session.execute(sa.text(EXPIRING_SOON_SQL), {
        "as_of": as_of, "horizon": expiring_horizon(as_of), "lo": lo, "hi": hi, "tz": settings.program_timezone,
        "window_days": settings.points_expiring_soon_days}).one()
    return int(row.events), int(row.points)
