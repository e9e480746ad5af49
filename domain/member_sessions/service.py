"""Member logins: start one from a proof, authenticate its access tokens, rotate its refresh token, end it."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from domain.access import tokens
from domain.errors import DomainError, Forbidden, Unauthorized
from domain.member_sessions import rules
from domain.member_sessions.models import MemberSession
from domain.member_sessions.rules import Proof, RefreshVerdict
from domain.members import service as members
from domain.members.models import MemberStatus
from domain.settings import get_settings

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
