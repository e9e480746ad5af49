"""Call-center use cases: the member in one look, agents' notes, interest clues."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from domain.contact_policy import service as gate
from domain.crm.models import AgentNote, InterestEvent
from domain.members import service as members
from domain.members.models import Member
from domain.members.rules import mask_phone
from domain.orders import service as orders
from domain.points import service as points
from domain.rebates import service as rebates
from domain.tiers import service as tiers
from domain.touchpoints import service as touchpoints


def add_note(session: Session, *, member_id: int, agent_id: str, fields: dict[str, Any], text: str,
             now: datetime) -> AgentNote:
    """Record what an agent learned, with who and when."""
    members.get_member(session, member_id=member_id)
    note = AgentNote(member_id=member_id, agent_id=agent_id, fields=fields, text=text, created_at=now)
    session.add(note)
    session.flush()
    return note


def record_interest(session: Session, *, member_id: int, product: str, source: str, at: datetime) -> InterestEvent:
    """A clue that the member wants a product; call lists dial such members first."""
    members.get_member(session, member_id=member_id)
    event = InterestEvent(member_id=member_id, product=product, source=source, at=at)
    session.add(event)
    session.flush()
    return event


def notes_of(session: Session, *, member_id: int, limit: int = 10) -> list[AgentNote]:
    return list(session.exec(select(AgentNote).where(AgentNote.member_id == member_id)
                             .order_by(col(AgentNote.id).desc()).limit(limit)))


def member_picture(session: Session, *, member: Member, unmasked: bool, now: datetime) -> dict[str, Any]:
    """Everything an agent needs while the phone rings, in one answer."""
    assert member.id is not None
    mid = member.id
    tier = tiers.explain_tier(session, member_id=mid, now=now)
    balance = points.balance_of(session, member_id=mid, now=now)
    verdict = gate.evaluate_contact(session, member_id=mid, channel="phone", purpose="marketing", now=now)
    return {
        "member": {
            "id": mid, "member_code": member.member_code, "name": member.name,
            "phone": member.phone if unmasked else mask_phone(member.phone), "phone_masked": not unmasked,
            "email": member.email if unmasked else None, "wechat_linked": member.wechat_openid is not None,
            "birthday": member.birthday, "gender": member.gender, "city": member.city, "timezone": member.timezone,
            "status": member.status, "tags": member.tags, "source_channel": member.source_channel,
            "source_campaign": member.source_campaign, "joined_at": member.joined_at,
            "last_purchase_at": member.last_purchase_at, "assigned_rep": member.assigned_rep,
            "preferred_channel": member.preferred_channel,
        },
        "tier": {"tier": tier.tier, "spend_fen": tier.spend_fen, "next_tier": tier.next_tier,
                 "missing_fen": tier.missing_fen, "safe_until": tier.safe_until},
        "points": {k: v for k, v in asdict(balance).items() if k != "member_id"},
        "coupons": [{"code": c.code, "value_fen": c.value_fen, "expires_at": c.expires_at}
                    for c in rebates.coupons_of(session, member_id=mid) if c.redeemed_at is None][:10],
        "recent_orders": [{"order_id": o.order_id, "amount_fen": o.amount_fen, "refunded_fen": o.refunded_fen,
                           "channel": o.channel, "occurred_at": o.occurred_at}
                          for o in orders.recent_orders(session, member_id=mid, limit=5)],
        "recent_contacts": [{"id": t.id, "channel": t.channel, "purpose": t.purpose, "template": t.template,
                             "decision": t.decision, "status": t.status, "reasons": t.reasons,
                             "requested_at": t.requested_at, "sent_at": t.sent_at}
                            for t in touchpoints.touches_of(session, member_id=mid, limit=10)],
        "open_complaints": [{"id": c.id, "category": c.category, "opened_at": c.opened_at}
                            for c in gate.complaints_of(session, member_id=mid, open_only=True)],
        "consents": members.consents_of(session, member_id=mid),
        "unreachable_channels": members.unreachable_channels(session, member_id=mid),
        "notes": [{"agent_id": n.agent_id, "fields": n.fields, "text": n.text, "created_at": n.created_at}
                  for n in notes_of(session, member_id=mid)],
        "may_pitch_by_phone": {"verdict": verdict.verdict, "reasons": list(verdict.reasons),
                               "next_allowed_at": verdict.send_at if verdict.verdict == "deferred"
                               else verdict.next_allowed_at},
    }
