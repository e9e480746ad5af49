"""WeChat official-account use cases: follow, unfollow, scan, menu clicks, messages, delivery reports."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, select

from domain.errors import Conflict, Forbidden
from domain.members import service as members
from domain.members.models import ContactChannel, Member, SourceChannel
from domain.points.service import balance_of
from domain.rebates.service import coupons_of
from domain.settings import get_settings
from domain.tiers.service import explain_tier
from domain.touchpoints.service import record_delivery_receipt
from domain.wechat.models import Follower, OAuthState
from domain.wechat.rules import dedupe_key


@dataclass(frozen=True)
class Inbound:
    """A callback as WeChat sent it, already verified and parsed by the edge."""

    msg_type: str
    event: str | None
    openid: str
    create_time: int
    msg_id: int | None = None
    scene: str | None = None
    key: str | None = None
    content: str | None = None
    status: str | None = None


def first_time(session: Session, *, inbound: Inbound, now: datetime) -> bool:
    """Claim the callback; False when WeChat is retrying one already handled (or being handled)."""
    key = dedupe_key(msg_id=inbound.msg_id, sender=inbound.openid, create_time=inbound.create_time,
                     event=inbound.event)
    result = session.execute(sa.text("INSERT INTO wechat_processed_callbacks (key, received_at) VALUES (:k, :now) "
                                     "ON CONFLICT DO NOTHING"), {"k": key, "now": now})
    return bool(getattr(result, "rowcount", 0))


def _member_of(session: Session, openid: str) -> Member | None:
    return members.find_member(session, openid=openid)


def _touch_follower(session: Session, *, openid: str, member_id: int, kind: str, now: datetime,
                    scene: str | None = None, subscribed: bool | None = None) -> Follower:
    follower = session.get(Follower, openid)
    if follower is None:
        follower = Follower(openid=openid, member_id=member_id, subscribed=True, qr_scene=scene, subscribed_at=now)
    if scene and not follower.qr_scene:
        follower.qr_scene = scene
    if subscribed is True and not follower.subscribed:
        follower.subscribed, follower.subscribed_at = True, now
    if subscribed is False:
        follower.subscribed, follower.unsubscribed_at = False, now
    follower.last_interaction_at, follower.last_interaction_kind = now, kind
    session.add(follower)
    return follower


def _follow(session: Session, inbound: Inbound, now: datetime) -> str:
    member = _member_of(session, inbound.openid)
    if member is None:
        # A new follower is a prospect member attributed to the QR scene that brought them; the welcome
        # journey starts from the member.joined event. Linking by unionid needs WeChat's user API: a job's work.
        member = members.join_member(session, new=members.NewMember(
            source_channel=SourceChannel.WECHAT, source_campaign=inbound.scene, wechat_openid=inbound.openid),
            actor="wechat:subscribe", now=now)
    assert member.id is not None
    _touch_follower(session, openid=inbound.openid, member_id=member.id, kind="follow", now=now,
                    scene=inbound.scene, subscribed=True)
    members.set_channel_reachability(session, member_id=member.id, channel=ContactChannel.WECHAT, reachable=True,
                                     reason="wechat_subscribed", now=now)
    return get_settings().wechat_welcome_text


def _bind_invite() -> str:
    return f"Bind your phone to see your membership: {get_settings().wechat_public_base_url}/wechat/oauth/start"


def _menu_answer(session: Session, member: Member | None, key: str, now: datetime) -> str:
    if member is None or member.phone is None or member.id is None:
        return _bind_invite()
    if key == "MY_POINTS":
        b = balance_of(session, member_id=member.id, now=now)
        soon = f"; {b.expiring_soon} expire on {b.expiring_soon_date}" if b.expiring_soon else ""
        return f"You have {b.available} points available and {b.pending} pending{soon}."
    if key == "MY_TIER":
        t = explain_tier(session, member_id=member.id, now=now)
        nxt = f" {t.missing_fen // 100} yuan more reaches {t.next_tier}." if t.next_tier and t.missing_fen else ""
        return f"You are a {t.tier} member.{nxt}"
    if key == "MY_COUPONS":
        open_coupons = [c for c in coupons_of(session, member_id=member.id) if c.redeemed_at is None
                        and c.expires_at > now]
        if not open_coupons:
            return "You have no coupons right now."
        return "Your coupons: " + "; ".join(f"{c.code} worth {c.value_fen / 100:.2f} yuan until {c.expires_at:%Y-%m-%d}"
                                            for c in open_coupons[:5])
    if key == "MY_REP":
        return f"Your dedicated adviser is {member.assigned_rep}." if member.assigned_rep else \
            "Call us any time; an adviser will be assigned to you soon."
    return "Sorry, this menu item is not available."


def handle_callback(session: Session, *, inbound: Inbound, now: datetime) -> str | None:
    """Handle one verified callback once; returns the text to reply, or None for WeChat's 'success'."""
    if not first_time(session, inbound=inbound, now=now):
        return None
    event = (inbound.event or "").lower()
    member = _member_of(session, inbound.openid)
    if inbound.msg_type == "event":
        if event in ("subscribe", "subscribe_scan"):
            return _follow(session, inbound, now)
        if event == "unsubscribe":
            if member is not None and member.id is not None:
                _touch_follower(session, openid=inbound.openid, member_id=member.id, kind="unfollow", now=now,
                                subscribed=False)
                members.set_channel_reachability(session, member_id=member.id, channel=ContactChannel.WECHAT,
                                                 reachable=False, reason="wechat_unsubscribed", now=now)
            return None
        if event == "scan":
            if member is not None and member.id is not None:
                _touch_follower(session, openid=inbound.openid, member_id=member.id, kind="scan", now=now,
                                scene=inbound.scene)
                members.set_attribution_if_missing(session, member_id=member.id, campaign=inbound.scene, now=now)
            return None
        if event == "click":
            if member is not None and member.id is not None:
                _touch_follower(session, openid=inbound.openid, member_id=member.id, kind="click", now=now)
            return _menu_answer(session, member, inbound.key or "", now)
        if event == "templatesendjobfinish":
            record_delivery_receipt(session, channel="wechat", provider_ref=str(inbound.msg_id),
                                    status=inbound.status or "", detail=None, now=now)
            return None
        return None
    if member is not None and member.id is not None:
        _touch_follower(session, openid=inbound.openid, member_id=member.id, kind="message", now=now)
    if inbound.msg_type == "text" and inbound.content:
        replies = get_settings().wechat_keyword_replies
        for keyword, reply in replies.items():
            if keyword.lower() in inbound.content.lower():
                return reply
    return get_settings().wechat_default_reply


# --- phone binding (OAuth web flow) ----------------------------------------------------------------

def start_binding(session: Session, *, now: datetime) -> str:
    """A fresh single-use ``state`` for WeChat's OAuth redirect."""
    import secrets

    state = secrets.token_urlsafe(24)
    session.add(OAuthState(state=state, created_at=now))
    return state


def _fresh_state(session: Session, state: str, now: datetime) -> OAuthState:
    row = session.exec(select(OAuthState).where(OAuthState.state == state).with_for_update()).first()
    limit = timedelta(minutes=get_settings().wechat_oauth_state_minutes)
    if row is None or now - row.created_at > limit:
        raise Forbidden("unknown or expired state", code="invalid_state")
    return row


def verify_oauth(session: Session, *, state: str, openid: str, unionid: str | None, now: datetime) -> OAuthState:
    """Record the identity WeChat proved for this state; a state is used once."""
    row = _fresh_state(session, state, now)
    if row.verified_at is not None:
        raise Forbidden("this state was already used", code="invalid_state")
    row.openid, row.unionid, row.verified_at = openid, unionid, now
    session.add(row)
    return row


def bind_phone(session: Session, *, state: str, phone: str, now: datetime) -> Member:
    """Attach the proved openid/unionid to the member holding ``phone`` (or give the follower that phone).
    A phone already bound to another openid is a conflict, never an overwrite."""
    row = _fresh_state(session, state, now)
    if row.openid is None or row.bound_at is not None:
        raise Forbidden("verify with WeChat first", code="invalid_state")
    openid = row.openid
    holder = members.find_member(session, phone=phone)
    follower_member = _member_of(session, openid)
    if holder is not None and holder.wechat_openid and holder.wechat_openid != openid:
        raise Conflict("this phone is bound to another WeChat account", code="phone_bound_elsewhere",
                       details={"member_id": holder.id})
    if holder is None:
        if follower_member is not None:
            member = members.update_member(session, member_id=follower_member.id or 0, changes={"phone": phone},
                                           now=now)
        else:
            member = members.join_member(session, new=members.NewMember(
                source_channel=SourceChannel.WECHAT, phone=phone, wechat_openid=openid, wechat_unionid=row.unionid),
                actor="wechat:oauth", now=now)
    else:
        if follower_member is not None and follower_member.id != holder.id:
            # The follower was a prospect: the known member takes over the WeChat identity.
            members.detach_wechat(session, member_id=follower_member.id or 0, now=now)
            members.close_member(session, member_id=follower_member.id or 0,
                                 reason=f"merged into member {holder.id} by phone binding", actor="wechat:oauth",
                                 now=now)
        member = members.attach_wechat(session, member_id=holder.id or 0, openid=openid, unionid=row.unionid, now=now)
    follower = session.get(Follower, openid)
    if follower is not None:
        follower.member_id = member.id or 0
        session.add(follower)
    row.bound_at = now
    session.add(row)
    return member
