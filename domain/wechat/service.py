"""WeChat official-account use cases: follow, unfollow, scan, menu clicks, messages, delivery reports."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from domain.errors import Conflict, Forbidden, TooSoon
from domain.members import service as members
from domain.members.models import ContactChannel, Member, MemberStatus, SourceChannel
from domain.members.rules import normalise_phone
from domain.organisations import service as organisations
from domain.points.service import balance_of
from domain.rebates.service import coupons_of, state_of
from domain.settings import get_settings
from domain.tiers.service import explain_tier
from domain.touchpoints.service import record_delivery_receipt
from domain.wechat.models import Follower, OAuthState, ProcessedCallback
from domain.wechat.rules import dedupe_key, new_phone_code, phone_code_digest, phone_code_matches


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
    items: tuple[dict[str, str], ...] = ()
    """The entries of a subscribe-message event (template id, accept/reject, or a send's result)."""


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
        served = organisations.treatment_of(session, member_id=member.id, own_tier=t.tier)
        if served.treatment.grant is None:
            return f"You are a {t.tier} member.{nxt}"
        via = (f"as family of {served.via_name}" if served.treatment.source == "family"
               else f"through {served.organisation_name}")
        return f"You are served at tier {served.treatment.tier} {via}; your own tier is {t.tier}.{nxt}"
    if key == "MY_COUPONS":
        open_coupons = [c for c in coupons_of(session, member_id=member.id) if state_of(c, now=now) == "available"]
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
        if event in ("subscribe_msg_popup_event", "subscribe_msg_change_event"):
            _record_subscription_choices(session, inbound, now)
            return None
        if event == "subscribe_msg_sent_event":
            for item in inbound.items:
                record_delivery_receipt(session, channel="wechat", provider_ref=item.get("MsgID", ""),
                                        status=item.get("ErrorStatus", ""), detail=item.get("ErrorCode"), now=now)
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


# --- subscription messages: one send per grant ----------------------------------------------------

def _record_subscription_choices(session: Session, inbound: Inbound, now: datetime) -> None:
    """An accepted template in WeChat's popup is one grant; a reject (popup or later change) revokes the
    unused ones for that template."""
    for item in inbound.items:
        template_id, choice = item.get("TemplateId", ""), item.get("SubscribeStatusString", "").lower()
        if not template_id:
            continue
        if choice == "accept":
            session.execute(sa.text(
                "INSERT INTO wechat_subscription_grants (openid, template_id, granted_at, grant_key) "
                "VALUES (:o, :t, :now, :k) ON CONFLICT (grant_key) DO NOTHING"),
                {"o": inbound.openid, "t": template_id, "now": now,
                 "k": f"{inbound.openid}:{inbound.create_time}:{template_id}"[:160]})
        elif choice == "reject":
            session.execute(sa.text(
                "UPDATE wechat_subscription_grants SET revoked_at = :now WHERE openid = :o AND template_id = :t "
                "AND used_at IS NULL AND revoked_at IS NULL"), {"o": inbound.openid, "t": template_id, "now": now})


def reserve_subscription_grant(session: Session, *, openid: str, template_id: str, key: str, now: datetime) -> bool:
    """Spend one of the follower's grants for this template on the touch ``key`` (False: none left).
    A retried touch finds the grant it already holds; concurrent touches never share one (SKIP LOCKED)."""
    held = session.execute(sa.text("SELECT 1 FROM wechat_subscription_grants WHERE used_by = :k"), {"k": key}).first()
    if held:
        return True
    taken = session.execute(sa.text(
        "UPDATE wechat_subscription_grants SET used_at = :now, used_by = :k WHERE id = ("
        " SELECT id FROM wechat_subscription_grants WHERE openid = :o AND template_id = :t AND used_at IS NULL"
        " AND revoked_at IS NULL ORDER BY granted_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id"),
        {"o": openid, "t": template_id, "k": key, "now": now}).first()
    return taken is not None


def open_subscription_grants(session: Session, *, openid: str, template_id: str) -> int:
    return int(session.execute(sa.text(
        "SELECT count(*) FROM wechat_subscription_grants WHERE openid = :o AND template_id = :t "
        "AND used_at IS NULL AND revoked_at IS NULL"), {"o": openid, "t": template_id}).scalar_one())


# --- unionid linking (WeChat's user API, from a job) -------------------------------------------------

def followers_missing_unionid(session: Session, *, limit: int, now: datetime, recheck_after: timedelta) -> list[str]:
    """Following openids whose member has no unionid yet, least recently asked first."""
    rows = session.execute(sa.text(
        "SELECT f.openid FROM wechat_followers f JOIN members m ON m.id = f.member_id "
        "WHERE f.subscribed AND m.wechat_openid = f.openid AND m.wechat_unionid IS NULL "
        "AND (f.unionid_checked_at IS NULL OR f.unionid_checked_at < :since) "
        "ORDER BY f.unionid_checked_at NULLS FIRST, f.openid LIMIT :n"),
        {"since": now - recheck_after, "n": limit}).all()
    return [r[0] for r in rows]


@dataclass
class UnionidLinks:
    linked: int = 0
    merged: int = 0
    conflicts: int = 0
    without_unionid: int = 0


def link_unionids(session: Session, *, found: dict[str, str | None], now: datetime) -> UnionidLinks:
    """Record what WeChat's user API said (openid → unionid, None when the account has none).

    A unionid nobody holds goes onto the follower's member in one statement. One already held by another
    member (a customer known from another app of the same WeChat open platform) takes the follower over
    when the follower is only a prospect; two real members sharing one person is left for an agent."""
    result = UnionidLinks(without_unionid=sum(1 for u in found.values() if not u))
    session.execute(sa.text("UPDATE wechat_followers SET unionid_checked_at = :now WHERE openid = ANY(:o)"),
                    {"now": now, "o": list(found)})
    pairs = {o: u for o, u in found.items() if u}
    if not pairs:
        return result
    linked = session.execute(sa.text(
        "UPDATE members m SET wechat_unionid = v.unionid, updated_at = :now "
        "FROM unnest(CAST(:o AS text[]), CAST(:u AS text[])) AS v(openid, unionid) "
        "WHERE m.wechat_openid = v.openid AND m.wechat_unionid IS NULL "
        "AND NOT EXISTS (SELECT 1 FROM members h WHERE h.wechat_unionid = v.unionid) RETURNING v.openid"),
        {"o": list(pairs), "u": list(pairs.values()), "now": now}).scalars().all()
    result.linked = len(linked)
    for openid in set(pairs) - set(linked):
        holder = members.find_member(session, unionid=pairs[openid])
        follower_member = _member_of(session, openid)
        if holder is None or follower_member is None or holder.id == follower_member.id:
            continue
        if follower_member.phone is None and follower_member.status == MemberStatus.PROSPECT \
                and holder.wechat_openid in (None, openid):
            _merge_follower_into(session, prospect=follower_member, holder=holder, openid=openid,
                                 unionid=pairs[openid], reason="by unionid", actor="wechat:unionid", now=now)
            result.merged += 1
        else:
            result.conflicts += 1
    return result


def _merge_follower_into(session: Session, *, prospect: Member, holder: Member, openid: str, unionid: str | None,
                         reason: str, actor: str, now: datetime) -> Member:
    """The follower's prospect is the same person as ``holder``: the known member takes the WeChat identity."""
    members.detach_wechat(session, member_id=prospect.id or 0, now=now)
    members.close_member(session, member_id=prospect.id or 0, reason=f"merged into member {holder.id} {reason}",
                         actor=actor, now=now)
    member = members.attach_wechat(session, member_id=holder.id or 0, openid=openid, unionid=unionid, now=now)
    follower = session.get(Follower, openid)
    if follower is not None:
        follower.member_id = member.id or 0
        session.add(follower)
    return member


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


def issue_phone_code(session: Session, *, state: str, phone: str, now: datetime) -> tuple[str, str]:
    """A fresh SMS code for the phone the person typed on their verified WeChat session.
    Returns (the normalised phone, the code) for the edge to send; only a digest is stored."""
    settings = get_settings()
    row = _fresh_state(session, state, now)
    if row.openid is None or row.bound_at is not None:
        raise Forbidden("verify with WeChat first", code="invalid_state")
    normalised = normalise_phone(phone, settings.default_country)
    if row.code_sent_at is not None:
        wait = settings.wechat_bind_code_resend_seconds - int((now - row.code_sent_at).total_seconds())
        if wait > 0:
            raise TooSoon("a code was sent less than a minute ago", code="code_recently_sent",
                          details={"retry_after_seconds": wait})
    if row.codes_sent >= settings.wechat_bind_codes_per_state:
        raise TooSoon("too many codes for this binding; start again", code="too_many_codes")
    hour_ago = now - timedelta(hours=1)
    to_phone, for_openid = _recent_codes(session, phone=normalised, openid=row.openid, since=hour_ago)
    if to_phone >= settings.wechat_bind_codes_per_phone_hour:
        raise TooSoon("too many codes for this phone; try again later", code="too_many_codes_for_phone",
                      details={"retry_after_seconds": 3600})
    if for_openid >= settings.wechat_bind_codes_per_openid_hour:
        raise TooSoon("too many codes asked for; try again later", code="too_many_codes_for_client",
                      details={"retry_after_seconds": 3600})
    code = new_phone_code()
    if row.phone != normalised:
        row.code_attempts = 0  # wrong answers belong to the phone they were for (counted across bindings below)
    row.phone, row.code_hash = normalised, phone_code_digest(state=state, phone=normalised, code=code)
    row.code_sent_at, row.codes_sent = now, row.codes_sent + 1
    session.add(row)
    return normalised, code


def _recent_codes(session: Session, *, phone: str, openid: str | None, since: datetime) -> tuple[int, int]:
    """Codes sent to ``phone`` and codes asked for by ``openid`` since ``since``, over every binding attempt."""
    sent = col(OAuthState.codes_sent)
    row = session.execute(sa.select(
        sa.func.coalesce(sa.func.sum(sent).filter(col(OAuthState.phone) == phone), 0),
        sa.func.coalesce(sa.func.sum(sent).filter(col(OAuthState.openid) == openid), 0),
    ).where(col(OAuthState.code_sent_at) >= since)).one()
    return int(row[0]), int(row[1])


def _wrong_answers(session: Session, *, phone: str, since: datetime) -> int:
    """Wrong codes typed for ``phone`` since ``since``, over every binding attempt and resend."""
    return int(session.scalar(sa.select(sa.func.coalesce(sa.func.sum(col(OAuthState.code_attempts)), 0)).where(
        col(OAuthState.phone) == phone, col(OAuthState.code_sent_at) >= since)) or 0)


def prune_bindings_and_callbacks(session: Session, *, as_of: datetime) -> dict[str, int]:
    """Forget what unauthenticated callers left behind: binding attempts (with their code digests) and
    callback dedupe keys past their retention. Idempotent at any ``as_of``."""
    settings = get_settings()
    states = session.execute(sa.delete(OAuthState).where(
        col(OAuthState.created_at) < as_of - timedelta(hours=settings.wechat_binding_retention_hours)))
    callbacks = session.execute(sa.delete(ProcessedCallback).where(
        col(ProcessedCallback.received_at) < as_of - timedelta(hours=settings.wechat_callback_retention_hours)))
    return {"binding_states": int(getattr(states, "rowcount", 0) or 0),
            "processed_callbacks": int(getattr(callbacks, "rowcount", 0) or 0)}


def _check_phone_code(session: Session, row: OAuthState, *, phone: str, code: str, now: datetime) -> str:
    """The normalised phone, once the code proves it belongs to the person. A wrong code counts an attempt
    (raised as ``wrong_code``, which the edge commits so the count survives the refusal)."""
    settings = get_settings()
    if row.code_hash is None or row.phone is None or row.code_sent_at is None:
        raise Forbidden("ask for an SMS code first", code="code_required")
    wrong_for_phone = _wrong_answers(session, phone=row.phone, since=now - timedelta(hours=1))
    if row.code_attempts >= settings.wechat_bind_code_attempts \
            or wrong_for_phone >= settings.wechat_bind_wrong_codes_per_phone_hour:
        raise Forbidden("too many wrong codes for this phone; try again later", code="too_many_attempts")
    if now - row.code_sent_at > timedelta(minutes=settings.wechat_bind_code_minutes):
        raise Forbidden("the code has expired; ask for a new one", code="code_expired")
    normalised = normalise_phone(phone, settings.default_country)
    if normalised != row.phone or not phone_code_matches(stored_digest=row.code_hash, state=row.state,
                                                         phone=normalised, code=code):
        row.code_attempts += 1
        session.add(row)
        session.flush()
        raise Forbidden("the code does not match", code="wrong_code",
                        details={"attempts_left": max(settings.wechat_bind_code_attempts - row.code_attempts, 0)})
    return normalised


def bind_phone(session: Session, *, state: str, phone: str, code: str, now: datetime) -> Member:
    """Attach the proved openid/unionid to the member holding ``phone`` (or give the follower that phone),
    once the SMS code proves the phone. A phone already bound to another openid is a conflict, never an
    overwrite."""
    row = _fresh_state(session, state, now)
    if row.openid is None or row.bound_at is not None:
        raise Forbidden("verify with WeChat first", code="invalid_state")
    phone = _check_phone_code(session, row, phone=phone, code=code, now=now)
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
    elif follower_member is not None and follower_member.id != holder.id:
        # The follower was a prospect: the known member takes over the WeChat identity.
        member = _merge_follower_into(session, prospect=follower_member, holder=holder, openid=openid,
                                      unionid=row.unionid, reason="by phone binding", actor="wechat:oauth", now=now)
    else:
        member = members.attach_wechat(session, member_id=holder.id or 0, openid=openid, unionid=row.unionid, now=now)
    follower = session.get(Follower, openid)
    if follower is not None and follower.member_id != member.id:
        follower.member_id = member.id or 0
        session.add(follower)
    row.bound_at = now
    session.add(row)
    return member
