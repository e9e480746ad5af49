"""Pure rules of staff accounts: passwords, login throttling, what each role may do to leads and campaigns."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from domain.staff.models import StaffRole

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")


@lru_cache
def _hasher() -> PasswordHasher:
    # argon2-cffi's defaults are RFC 9106's "low memory" profile (argon2id, 64 MiB, t=3): a well-kept library's
    # judgement, not ours to tune down.
    return PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher().hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


_DUMMY_HASH: list[str] = []


def burn_verification(password: str) -> None:
    """Spend the time of a real verification, so a wrong username answers as slowly as a wrong password and
    the timing does not tell which usernames exist."""
    if not _DUMMY_HASH:
        _DUMMY_HASH.append(hash_password("not-a-real-password"))
    verify_password(_DUMMY_HASH[0], password)


def password_problem(password: str, *, min_length: int) -> str | None:
    """Why a new password is refused, or None."""
    if len(password) < min_length:
        return f"a password needs at least {min_length} characters"
    if len(password) > 256:
        return "a password may have at most 256 characters"
    return None


def login_retry_after(*, failed_logins: int, last_failed_at: datetime | None, now: datetime, max_failures: int,
                      lock: timedelta) -> timedelta | None:
    """How long an account refuses logins after ``max_failures`` wrong passwords in a row (None: it accepts).
    The lock ends ``lock`` after the last failure, so guessing on keeps it closed."""
    if failed_logins < max_failures or last_failed_at is None:
        return None
    remaining = last_failed_at + lock - now
    return remaining if remaining > timedelta(0) else None


def may_work_any_lead(role: StaffRole) -> bool:
    """An agent records outcomes only on the leads they hold; a supervisor on any lead."""
    return role == StaffRole.SUPERVISOR
