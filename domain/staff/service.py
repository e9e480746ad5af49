"""Staff accounts, logins and their sessions."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from domain.access import tokens
from domain.errors import Conflict, DomainError, InvalidInput, NotFound, TooSoon, Unauthorized
from domain.settings import get_settings
from domain.staff import rules
from domain.staff.models import StaffAccount, StaffRole, StaffSession

STAFF_AUDIENCE = "staff"


def create_staff(session: Session, *, username: str, display_name: str, role: StaffRole, password: str,
                 now: datetime, pii_access: bool = False) -> StaffAccount:
    """Open an account for a named person."""
    username = username.strip().lower()
    if not rules.USERNAME.match(username):
        raise InvalidInput("a username is 2-64 lower-case letters, digits, '.', '_' or '-'", code="invalid_username")
    _check_password(password)
    if session.exec(select(StaffAccount).where(StaffAccount.username == username)).first() is not None:
        raise Conflict(f"a staff account named {username!r} exists", code="staff_exists",
                       details={"username": username})
    account = StaffAccount(username=username, display_name=display_name.strip() or username, role=role,
                           pii_access=pii_access, password_hash=rules.hash_password(password), created_at=now)
    session.add(account)
    session.flush()
    return account


def _check_password(password: str) -> None:
    problem = rules.password_problem(password, min_length=get_settings().staff_password_min_length)
    if problem:
        raise InvalidInput(problem, code="weak_password")


def get_staff(session: Session, *, username: str, for_update: bool = False) -> StaffAccount:
    query = select(StaffAccount).where(StaffAccount.username == username.strip().lower())
    account = session.exec(query.with_for_update() if for_update else query).first()
    if account is None:
        raise NotFound(f"no staff account {username!r}", code="staff_not_found")
    return account


def require_staff(session: Session, *, staff_ids: list[int]) -> None:
    """Refuse ids that name no staff account, or a disabled one (work is not given to someone who left)."""
    wanted = sorted(set(staff_ids))
    found = set(session.scalars(sa.select(StaffAccount.id).where(  # type: ignore[call-overload]
        col(StaffAccount.id).in_(wanted), col(StaffAccount.disabled_at).is_(None))))
    missing = [i for i in wanted if i not in found]
    if missing:
        raise NotFound(f"no active staff account {missing[0]}", code="staff_not_found",
                       details={"staff_ids": missing})


def list_staff(session: Session) -> list[StaffAccount]:
    return list(session.exec(select(StaffAccount).order_by(StaffAccount.id)))  # type: ignore[arg-type]


def _end_sessions(session: Session, *, staff_id: int, now: datetime) -> None:
    session.execute(sa.update(StaffSession).where(StaffSession.staff_id == staff_id,  # type: ignore[arg-type]
                                                  StaffSession.revoked_at.is_(None))  # type: ignore[union-attr]
                    .values(revoked_at=now))


def disable_staff(session: Session, *, username: str, now: datetime) -> StaffAccount:
    """A person leaves or is suspended: their account stops working and every session of theirs ends at once."""
    account = get_staff(session, username=username, for_update=True)
    assert account.id is not None
    account.disabled_at = account.disabled_at or now
    session.add(account)
    _end_sessions(session, staff_id=account.id, now=now)
    return account


def set_password(session: Session, *, username: str, password: str, now: datetime) -> StaffAccount:
    """A new password; every existing session ends (whoever knew the old one is logged out) and the
    throttle is cleared."""
    _check_password(password)
    account = get_staff(session, username=username, for_update=True)
    assert account.id is not None
    account.password_hash = rules.hash_password(password)
    account.failed_logins, account.last_failed_login_at = 0, None
    session.add(account)
    _end_sessions(session, staff_id=account.id, now=now)
    return account


@dataclass(frozen=True)
class IssuedSession:
    access_token: str
    session_id: str
    expires_at: datetime
    """When this access token ends (refresh it before then while the session lives)."""
    session_expires_at: datetime
    account: StaffAccount


@dataclass(frozen=True)
class LoginOutcome:
    """A login either issues a session or is refused; a refusal is returned, not raised, because the count of
    wrong passwords it wrote must be committed with the answer."""

    issued: IssuedSession | None = None
    refusal: DomainError | None = None


def log_in(session: Session, *, username: str, password: str, now: datetime) -> LoginOutcome:
    """Check a username and password; count wrong passwords and refuse logins for a while after too many."""
    settings = get_settings()
    wrong = LoginOutcome(refusal=Unauthorized("wrong username or password", code="invalid_login"))
    account = session.exec(select(StaffAccount).where(StaffAccount.username == username.strip().lower())
                           .with_for_update()).first()
    if account is None:
        rules.burn_verification(password)
        return wrong
    wait = rules.login_retry_after(failed_logins=account.failed_logins, last_failed_at=account.last_failed_login_at,
                                   now=now, max_failures=settings.staff_login_max_failures,
                                   lock=timedelta(minutes=settings.staff_login_lock_minutes))
    if wait is not None:
        seconds = int(wait.total_seconds()) + 1
        return LoginOutcome(refusal=TooSoon(f"too many wrong passwords; try again in {seconds} s",
                                            code="login_throttled", details={"retry_after_seconds": seconds}))
    if not rules.verify_password(account.password_hash, password):
        account.failed_logins += 1
        account.last_failed_login_at = now
        session.add(account)
        return wrong
    if account.disabled_at is not None:
        return wrong  # the same answer: a disabled account's password tells an attacker nothing new
    account.failed_logins, account.last_failed_login_at = 0, None
    session.add(account)
    return LoginOutcome(issued=start_session(session, account=account, now=now))


def start_session(session: Session, *, account: StaffAccount, now: datetime) -> IssuedSession:
    """A new login session for a (password-checked) account and its first access token."""
    record = StaffSession(id=secrets.token_hex(16), staff_id=account.id,  # type: ignore[arg-type]
                          created_at=now, expires_at=now + timedelta(hours=get_settings().staff_session_hours))
    session.add(record)
    session.flush()
    return _token_for(record, account, now)


def _token_for(record: StaffSession, account: StaffAccount, now: datetime) -> IssuedSession:
    expires = min(now + timedelta(minutes=get_settings().staff_token_minutes), record.expires_at)
    token = tokens.issue_token(audience=STAFF_AUDIENCE, subject=f"staff:{account.id}", session_id=record.id,
                               issued_at=now, expires_at=expires)
    return IssuedSession(access_token=token, session_id=record.id, expires_at=expires,
                         session_expires_at=record.expires_at, account=account)


def authenticate_staff(session: Session, *, token: str, now: datetime) -> tuple[StaffAccount, str]:
    """The account and session id behind a staff access token that is valid, live and not revoked."""
    claims = tokens.verify_token(token, audience=STAFF_AUDIENCE, now=now)
    return check_staff_session(claims, read_staff_session(session, session_id=claims["sid"]), now=now)


def read_staff_session(session: Session, *, session_id: str) -> tuple[StaffAccount, StaffSession] | None:
    """The session row a token names and its account, as read (the hot routes keep it until either changes)."""
    row = session.execute(
        sa.select(StaffAccount, StaffSession).join(StaffSession, StaffSession.staff_id == StaffAccount.id)  # type: ignore[arg-type]
        .where(col(StaffSession.id) == session_id)).first()
    return (row[0], row[1]) if row is not None else None


def check_staff_session(claims: dict[str, Any], found: tuple[StaffAccount, StaffSession] | None, *,
                        now: datetime) -> tuple[StaffAccount, str]:
    """The account and session id if the session a verified token names (``found``) is live at ``now``."""
    if found is None or f"staff:{found[0].id}" != claims["sub"]:
        raise Unauthorized("unknown session", code="invalid_token")
    account, record = found
    if record.revoked_at is not None or account.disabled_at is not None:
        raise Unauthorized("this session has ended; log in again", code="session_revoked")
    if record.expires_at <= now:
        raise Unauthorized("this session has expired; log in again", code="token_expired")
    return account, record.id


def refresh_session(session: Session, *, session_id: str, now: datetime) -> IssuedSession:
    """A fresh access token for a live session (up to the session's own end)."""
    row = session.execute(
        sa.select(StaffSession, StaffAccount).join(StaffAccount, StaffSession.staff_id == StaffAccount.id)  # type: ignore[arg-type]
        .where(col(StaffSession.id) == session_id)).first()  # type: ignore[arg-type]
    if row is None:
        raise Unauthorized("unknown session", code="invalid_token")
    return _token_for(row[0], row[1], now)


def end_session(session: Session, *, session_id: str, now: datetime) -> None:
    """Log out: the session's tokens stop working at once."""
    session.execute(sa.update(StaffSession).where(StaffSession.id == session_id,  # type: ignore[arg-type]
                                                  StaffSession.revoked_at.is_(None))  # type: ignore[union-attr]
                    .values(revoked_at=now))
