"""Member logins: start one from a proof, authenticate its access tokens, rotate its refresh token, end it."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from domain.access import tokens
from domain.db import advisory_xact_lock
from domain.errors import DomainError, Forbidden, TooSoon, Unauthorized
from domain.member_sessions import rules
from domain.member_sessions.models import MemberSession, SignInCode
from domain.member_sessions.rules import Proof, RefreshVerdict
from domain.members import service as members
from domain.members.models import MemberStatus, SourceChannel
from domain.members.rules import normalise_phone
from domain.settings import get_settings
from domain.wechat.rules import new_phone_code, phone_code_digest, phone_code_matches

MEMBER_AUDIENCE = "member"


@dataclass(frozen=True)
class IssuedMemberSession:
    member_id: int
    access_token: str
    expires_at: datetime
    refresh_token: str
    refresh_expires_at: datetime


def _access_token(record: MemberSession, now: datetime) -> tuple[str, datetime]:
    expires = min(now + timedelta(minutes=get_settings().member_token_minutes), record.expires_at)
    token = tokens.issue_token(audience=MEMBER_AUDIENCE, subject=f"member:{record.member_id}",
                               session_id=record.id, issued_at=now, expires_at=expires)
    return token, expires


def start_member_session(session: Session, *, member_id: int, proof: Proof, now: datetime,
                         client: str | None = None) -> IssuedMemberSession:
    """A login for a member who has just proved who they are (or whom a trusted app server vouched for)."""
    member = members.get_member(session, member_id=member_id)
    if member.status == MemberStatus.CLOSED:
        raise Forbidden("this membership is closed", code="member_closed")
    sid = secrets.token_hex(16)
    refresh, refresh_hash = rules.new_refresh_token(sid)
    record = MemberSession(id=sid, member_id=member_id, proof=proof, client=client, refresh_hash=refresh_hash,
                           created_at=now, expires_at=now + timedelta(days=get_settings().member_session_days))
    session.add(record)
    session.flush()
    access, expires = _access_token(record, now)
    return IssuedMemberSession(member_id=member_id, access_token=access, expires_at=expires, refresh_token=refresh,
                               refresh_expires_at=record.expires_at)


def authenticate_member(session: Session, *, token: str, now: datetime) -> tuple[int, str]:
    """(member id, session id) behind a member access token that is valid, live and not revoked."""
    claims = tokens.verify_token(token, audience=MEMBER_AUDIENCE, now=now)
    record = session.get(MemberSession, claims["sid"])
    if record is None or f"member:{record.member_id}" != claims["sub"]:
        raise Unauthorized("unknown session", code="invalid_token")
    if record.revoked_at is not None:
        raise Unauthorized("this session has ended; sign in again", code="session_revoked")
    if record.expires_at <= now:
        raise Unauthorized("this session has expired; sign in again", code="token_expired")
    return record.member_id, record.id


@dataclass(frozen=True)
class RefreshOutcome:
    """Refused refreshes are returned, not raised: ending a login whose old refresh token came back is a
    write that must commit with the refusal."""

    issued: IssuedMemberSession | None = None
    refusal: DomainError | None = None


def refresh_member_session(session: Session, *, refresh_token: str, now: datetime) -> RefreshOutcome:
    """Exchange the live refresh token for a new pair (rotation). An already-used refresh token ends the
    login: either the member or a thief holds a copy, and the thief must not keep it."""
    invalid = RefreshOutcome(refusal=Unauthorized("invalid refresh token", code="invalid_refresh_token"))
    sid = rules.session_id_of(refresh_token)
    record = session.exec(select(MemberSession).where(col(MemberSession.id) == sid).with_for_update()).first() \
        if sid else None
    if record is None:
        return invalid
    if record.revoked_at is not None:
        return RefreshOutcome(refusal=Unauthorized("this session has ended; sign in again", code="session_revoked"))
    if record.expires_at <= now:
        return RefreshOutcome(refusal=Unauthorized("this session has expired; sign in again", code="token_expired"))
    verdict = rules.judge_refresh(rules.hash_refresh_token(refresh_token), current=record.refresh_hash,
                                  previous=record.previous_refresh_hash)
    if verdict == RefreshVerdict.REUSED:
        record.revoked_at, record.revoked_reason = now, "refresh_reused"
        session.add(record)
        return RefreshOutcome(refusal=Unauthorized("this refresh token was already used; the session has ended",
                                                   code="refresh_reused"))
    if verdict == RefreshVerdict.UNKNOWN:
        return invalid
    refresh, refresh_hash = rules.new_refresh_token(record.id)
    record.previous_refresh_hash, record.refresh_hash, record.refreshed_at = record.refresh_hash, refresh_hash, now
    session.add(record)
    access, expires = _access_token(record, now)
    return RefreshOutcome(issued=IssuedMemberSession(
        member_id=record.member_id, access_token=access, expires_at=expires, refresh_token=refresh,
        refresh_expires_at=record.expires_at))


def end_member_session(session: Session, *, session_id: str, now: datetime, reason: str = "logout") -> None:
    """Sign out: the login's access and refresh tokens stop working at once."""
    session.execute(sa.update(MemberSession).where(col(MemberSession.id) == session_id,
                                                   col(MemberSession.revoked_at).is_(None))
                    .values(revoked_at=now, revoked_reason=reason))


def end_member_sessions(session: Session, *, member_id: int, now: datetime, reason: str) -> int:
    """Every login of a member ends (their phone changed hands, their membership closed)."""
    result = session.execute(sa.update(MemberSession).where(col(MemberSession.member_id) == member_id,
                                                            col(MemberSession.revoked_at).is_(None))
                             .values(revoked_at=now, revoked_reason=reason))
    return int(getattr(result, "rowcount", 0) or 0)


# --- phone + SMS code sign-in ------------------------------------------------------------------------

def _sent_since(session: Session, column: Any, value: str, since: datetime) -> int:
    return int(session.scalar(sa.select(sa.func.count()).select_from(SignInCode).where(
        column == value, col(SignInCode.sent_at) >= since)) or 0)


def issue_sign_in_code(session: Session, *, phone: str, client: str, now: datetime) -> tuple[str, str]:
    """A fresh six-digit code for signing in with ``phone``, asked for by ``client`` (the requesting address).
    Returns (the phone in E.164, the code) for the edge to send; only a salted digest is stored. Refused
    (``TooSoon``) within a minute of the last code to this phone, past five codes to it in an hour, and past
    twenty codes asked for by this client in an hour. Answers the same for every phone, member or not, so
    it tells nobody who is a member."""
    settings = get_settings()
    normalised = normalise_phone(phone, settings.default_country)
    # Concurrent asks for one phone or from one client queue here, so no limit is passed by a burst
    # (always phone first, then client: two requests never wait for each other in opposite orders).
    advisory_xact_lock(session, "sign-in-code", "phone", normalised)
    advisory_xact_lock(session, "sign-in-code", "client", client)
    last = session.scalar(sa.select(sa.func.max(col(SignInCode.sent_at))).where(col(SignInCode.phone) == normalised))
    if last is not None:
        wait = settings.member_sms_resend_seconds - int((now - last).total_seconds())
        if wait > 0:
            raise TooSoon("a code was sent to this phone less than a minute ago", code="code_recently_sent",
                          details={"retry_after_seconds": wait})
    hour_ago = now - timedelta(hours=1)
    if _sent_since(session, col(SignInCode.phone), normalised, hour_ago) >= settings.member_sms_codes_per_phone_hour:
        raise TooSoon("too many codes for this phone; try again later", code="too_many_codes_for_phone",
                      details={"retry_after_seconds": 3600})
    if _sent_since(session, col(SignInCode.client), client, hour_ago) >= settings.member_sms_codes_per_client_hour:
        raise TooSoon("too many codes asked for; try again later", code="too_many_codes_for_client",
                      details={"retry_after_seconds": 3600})
    code, salt = new_phone_code(), secrets.token_hex(16)
    session.add(SignInCode(phone=normalised, client=client[:64], salt=salt,
                           code_hash=phone_code_digest(state=salt, phone=normalised, code=code), sent_at=now,
                           expires_at=now + timedelta(minutes=settings.member_sms_code_minutes)))
    session.flush()
    return normalised, code


@dataclass(frozen=True)
class SignInOutcome:
    """A wrong code is returned, not raised: the attempt it counts is a write that must commit with the
    refusal (as ``RefreshOutcome``)."""

    issued: IssuedMemberSession | None = None
    refusal: DomainError | None = None
    enrolled: bool = False


def sign_in_with_code(session: Session, *, phone: str, code: str, now: datetime) -> SignInOutcome:
    """A member session for whoever holds ``phone``, proved by the newest code sent to it. A phone that no
    member holds is enrolled on the spot (source channel ``app``): the code proves the person holds it, as
    an enrolment form would. Five wrong codes for a phone in an hour, over every resend, refuse even the right
    one until the hour has passed; a code works once and only within its minutes."""
    settings = get_settings()
    normalised = normalise_phone(phone, settings.default_country)
    advisory_xact_lock(session, "sign-in-code", "phone", normalised)
    wrong = int(session.scalar(sa.select(sa.func.coalesce(sa.func.sum(col(SignInCode.attempts)), 0)).where(
        col(SignInCode.phone) == normalised, col(SignInCode.sent_at) >= now - timedelta(hours=1))) or 0)
    if wrong >= settings.member_sms_wrong_codes_per_phone_hour:
        raise TooSoon("too many wrong codes for this phone; try again later", code="too_many_attempts",
                      details={"retry_after_seconds": 3600})
    row = session.exec(select(SignInCode).where(col(SignInCode.phone) == normalised)
                       .order_by(col(SignInCode.sent_at).desc(), col(SignInCode.id).desc()).limit(1)).first()
    if row is None or row.used_at is not None:
        raise Forbidden("ask for an SMS code first", code="code_required")
    if row.expires_at <= now:
        raise Forbidden("the code has expired; ask for a new one", code="code_expired")
    if not phone_code_matches(stored_digest=row.code_hash, state=row.salt, phone=normalised, code=code):
        row.attempts += 1
        session.add(row)
        left = max(settings.member_sms_wrong_codes_per_phone_hour - wrong - 1, 0)
        return SignInOutcome(refusal=Forbidden("the code does not match", code="wrong_code",
                                               details={"attempts_left": left}))
    row.used_at = now
    session.add(row)
    member = members.find_member(session, phone=normalised)
    enrolled = member is None
    if member is None:
        member = members.join_member(session, new=members.NewMember(source_channel=SourceChannel.APP,
                                                                    phone=normalised),
                                     actor="member:sms-sign-in", now=now)
    assert member.id is not None
    return SignInOutcome(issued=start_member_session(session, member_id=member.id, proof=Proof.SMS, now=now),
                         enrolled=enrolled)


def prune_sign_in_codes(session: Session, *, as_of: datetime) -> int:
    """Forget sign-in codes (their digests) past retention; the limits only look back one hour."""
    cutoff = as_of - timedelta(hours=get_settings().wechat_binding_retention_hours)
    result = session.execute(sa.delete(SignInCode).where(col(SignInCode.sent_at) < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)
