"""Query pieces of the call center for other concepts: calls answered, notes, interest clues."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import col

from domain.crm.models import AgentNote, CallOutcome, InterestEvent

ANSWERED = ("reached", "accepted", "declined", "callback")
"""Call outcomes in which the member picked up: they used the phone channel."""


def channel_use(start: datetime, end: datetime) -> sa.CompoundSelect:
    """(member_id, kind, at) in [start, end): answered calls and notes are phone use; an interest clue is use of
    the channel it came from (``ivr``, ``web``, ``store`` …)."""
    calls = sa.select(col(CallOutcome.member_id), sa.literal("phone"), col(CallOutcome.at)).where(
        col(CallOutcome.outcome).in_(ANSWERED), col(CallOutcome.at) >= start, col(CallOutcome.at) < end)
    notes = sa.select(col(AgentNote.member_id), sa.literal("phone"), col(AgentNote.created_at)).where(
        col(AgentNote.created_at) >= start, col(AgentNote.created_at) < end)
    interests = sa.select(col(InterestEvent.member_id), col(InterestEvent.source), col(InterestEvent.at)).where(
        col(InterestEvent.at) >= start, col(InterestEvent.at) < end)
    return sa.union_all(calls, notes, interests)


def contacts_answered(start: datetime, end: datetime) -> sa.Subquery:
    """(member_id, answered): calls the member picked up in [start, end)."""
    return (sa.select(col(CallOutcome.member_id).label("member_id"), sa.func.count().label("answered"))
            .where(col(CallOutcome.outcome).in_(ANSWERED), col(CallOutcome.at) >= start, col(CallOutcome.at) < end)
            .group_by(col(CallOutcome.member_id)).subquery("contacts_answered"))
