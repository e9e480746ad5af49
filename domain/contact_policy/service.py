"""The contact gate: decide, record and queue every touch; complaints."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from domain.contact_policy.models import Complaint
from domain.contact_policy.rules import Decision, Facts, Purpose, Verdict, decide, policy_from_settings
from domain.db import advisory_xact_lock
from domain.errors import Conflict, InvalidInput, NotFound
from domain.events.service import record_event
from domain.members.models import ContactChannel, Member
from domain.members.service import consents_of, get_member, unreachable_channels
from domain.settings import get_settings
from domain.touchpoints import service as touchpoints
from domain.touchpoints.models import Touch


def _address(member: Member, channel: ContactChannel) -> dict[str, str]:
    value = {ContactChannel.PHONE: member.phone, ContactChannel.SMS: member.phone,
             ContactChannel.EMAIL: member.email, ContactChannel.WECHAT: member.wechat_openid,
             ContactChannel.APP: str(member.id)}[channel]
    key = {ContactChannel.WECHAT: "openid", ContactChannel.EMAIL: "email", ContactChannel.APP: "member_id"}.get(
        channel, "phone")
    return {key: value} if value else {}


def last_complaint_at(session: Session, *, member_id: int) -> datetime | None:
    return session.scalar(sa.select(sa.func.max(Complaint.opened_at)).where(col(Complaint.member_id) == member_id))


def cap_window(member: Member, channel: ContactChannel, purpose: Purpose) -> tuple[timedelta, timedelta] | None:
    """How far back and ahead the member's touches count against this channel and purpose's caps."""
    policy = policy_from_settings(get_settings())
    longest = max((c.window for c in policy.caps_for(member.tier, channel, purpose)), default=None)
    return (longest, longest + policy.max_deferral) if longest is not None else None


def compose_facts(member: Member, channel: ContactChannel, purpose: Purpose, *,
                  counted: list[tuple[str, str, datetime]], consent: str | None, unreachable: str | None,
                  last_complaint: datetime | None) -> Facts:
    """The gate's facts from what was read (shared by the gate and the CRM lookup's one statement)."""
    caps = policy_from_settings(get_settings()).caps_for(member.tier, channel, purpose)
    planned = {cap.name: [t for ch, pu, t in counted if ch in cap.channels and pu in cap.purposes] for cap in caps}
    return Facts(member_status=member.status, tier=member.tier, timezone=member.timezone, joined_at=member.joined_at,
                 consent=consent, unreachable=unreachable, has_address=bool(_address(member, channel)),
                 last_complaint_at=last_complaint, planned=planned)


def _facts(session: Session, member: Member, channel: ContactChannel, purpose: Purpose, now: datetime) -> Facts:
    assert member.id is not None
    window = cap_window(member, channel, purpose)
    counted = touchpoints.counted_touches(session, member_id=member.id, since=now - window[0],
                                          until=now + window[1]) if window else []
    consent = consents_of(session, member_id=member.id).get(channel)
    return compose_facts(member, channel, purpose, counted=counted, consent=consent.value if consent else None,
                         unreachable=unreachable_channels(session, member_id=member.id).get(channel),
                         last_complaint=last_complaint_at(session, member_id=member.id))


def _parse(channel: str, purpose: str) -> tuple[ContactChannel, Purpose]:
    try:
        return ContactChannel(channel), Purpose(purpose)
    except ValueError as exc:
        raise InvalidInput(f"unknown channel {channel!r} or purpose {purpose!r}", code="invalid_touch",
                           details={"channels": [c.value for c in ContactChannel],
                                    "purposes": [p.value for p in Purpose]}) from exc


def evaluate_contact(session: Session, *, member_id: int, channel: str, purpose: str, now: datetime) -> Decision:
    """Would a touch be allowed now, why not, and when next? Writes nothing."""
    ch, pu = _parse(channel, purpose)
    member = get_member(session, member_id=member_id)
    return decide(facts=_facts(session, member, ch, pu, now), channel=ch, purpose=pu,
                  policy=policy_from_settings(get_settings()), now=now)


def request_touch(session: Session, *, member_id: int, channel: str, purpose: str, source: str,
                  idempotency_key: str, template: str, variables: dict[str, Any], now: datetime,
                  not_before: datetime | None = None) -> tuple[Touch, bool]:
    """Ask the gate for a touch: the decision and its reasons are recorded, and an approved or deferred
    touch enters the outbox. Idempotent by (source, idempotency_key): a replay returns the first decision.
    Decisions for one member are serialised, so concurrent requests can never both take a cap's last slot."""
    ch, pu = _parse(channel, purpose)
    advisory_xact_lock(session, "contact", member_id)
    existing = touchpoints.find_touch(session, source=source, idempotency_key=idempotency_key)
    if existing is not None:
        if (existing.member_id, existing.channel, existing.purpose) != (member_id, ch.value, pu.value):
            raise Conflict(f"touch {source}/{idempotency_key} was requested before for another member or channel",
                           code="touch_conflict", details={"touch_id": existing.id})
        return existing, True
    member = get_member(session, member_id=member_id)
    decision = decide(facts=_facts(session, member, ch, pu, now), channel=ch, purpose=pu,
                      policy=policy_from_settings(get_settings()), now=now, not_before=not_before)
    touch = touchpoints.record_touch(session, member_id=member_id, channel=ch.value, purpose=pu.value, source=source,
                                     idempotency_key=idempotency_key, template=template, variables=variables,
                                     decision=decision, now=now)
    return touch, False


def recheck_before_send(session: Session, *, touch: Touch, now: datetime) -> tuple[str, ...]:
    """At send time, the reasons a queued touch must not go out any more (empty: send it).

    Caps were reserved when the touch was decided, so only what may have changed since is checked:
    closure, reachability, opt-out, and, for marketing, a new complaint.
    """
    member = get_member(session, member_id=touch.member_id)
    ch, pu = ContactChannel(touch.channel), Purpose(touch.purpose)
    reasons: list[str] = []
    if member.status == "closed":
        reasons.append("member_closed")
    consent = consents_of(session, member_id=touch.member_id).get(ch)
    if consent is not None and consent.value == "opted_out":
        reasons.append("consent_opted_out")
    if unreachable_channels(session, member_id=touch.member_id).get(ch):
        reasons.append("channel_unreachable")
    if pu == Purpose.MARKETING:
        complained = last_complaint_at(session, member_id=touch.member_id)
        policy = policy_from_settings(get_settings())
        if complained and now - complained < policy.complaint_cooldown:
            reasons.append("complaint_cooldown")
    return tuple(reasons)


def address_of(session: Session, *, member_id: int, channel: str) -> dict[str, str]:
    """Where a channel reaches the member (phone, email, openid)."""
    return _address(get_member(session, member_id=member_id), ContactChannel(channel))


def record_complaint(session: Session, *, member_id: int, category: str, note: str, actor: str,
                     now: datetime) -> Complaint:
    """A complaint stops all marketing to the member for the cool-down period, at once."""
    get_member(session, member_id=member_id)
    complaint = Complaint(member_id=member_id, category=category, note=note, actor=actor, opened_at=now)
    session.add(complaint)
    session.flush()
    record_event(session, kind="complaint.recorded", member_id=member_id,
                 payload={"complaint_id": complaint.id, "category": category, "actor": actor}, now=now)
    return complaint


def resolve_complaint(session: Session, *, member_id: int, complaint_id: int, resolution: str, actor: str,
                      now: datetime) -> Complaint:
    """Close a complaint (the cool-down still runs from when it was opened)."""
    complaint = session.get(Complaint, complaint_id)
    if complaint is None or complaint.member_id != member_id:
        raise NotFound(f"complaint {complaint_id} not found", code="complaint_not_found")
    if complaint.resolved_at is None:
        complaint.resolved_at, complaint.resolution = now, resolution
        session.add(complaint)
        record_event(session, kind="complaint.resolved", member_id=member_id,
                     payload={"complaint_id": complaint_id, "actor": actor}, now=now)
    return complaint


def has_recent_complaint(session: Session, *, member_id: int, now: datetime, days: int | None = None) -> bool:
    """Did the member complain within the cool-down (default 90 days)?"""
    window = days if days is not None else get_settings().complaint_cooldown_days
    last = last_complaint_at(session, member_id=member_id)
    return last is not None and (now - last).days < window


def complaints_of(session: Session, *, member_id: int, open_only: bool = False) -> list[Complaint]:
    query = select(Complaint).where(Complaint.member_id == member_id)
    if open_only:
        query = query.where(col(Complaint.resolved_at).is_(None))
    return list(session.exec(query.order_by(col(Complaint.id).desc())))


__all__ = ["Verdict", "evaluate_contact", "request_touch", "record_complaint", "resolve_complaint",
           "has_recent_complaint", "complaints_of", "recheck_before_send", "address_of"]
