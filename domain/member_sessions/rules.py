"""Pure rules of member sessions: refresh-token format and what a presented refresh token means."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from enum import StrEnum


class Proof(StrEnum):
    WECHAT = "wechat"
    """WeChat OAuth proved the openid, which belongs to the member."""
    SMS = "sms"
    """A code sent to the member's phone came back."""
    EXCHANGE = "exchange"
    """An ``app``-key server authenticated the member itself and asked for a session for them."""


def new_refresh_token(session_id: str) -> tuple[str, str]:
    """(the refresh token to hand out once, its hash to store). The session id in front finds the row."""
    token = f"{session_id}.{secrets.token_urlsafe(32)}"
    return token, hash_refresh_token(token)


def hash_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def session_id_of(token: str) -> str | None:
    head, sep, tail = token.partition(".")
    return head if sep and head and tail and len(head) <= 32 else None


class RefreshVerdict(StrEnum):
    CURRENT = "current"
    """The live refresh token: rotate it."""
    REUSED = "reused"
    """The one before it, already exchanged: someone holds a copy — end the login."""
    UNKNOWN = "unknown"


def judge_refresh(presented_hash: str, *, current: str, previous: str | None) -> RefreshVerdict:
    if hmac.compare_digest(presented_hash, current):
        return RefreshVerdict.CURRENT
    if previous is not None and hmac.compare_digest(presented_hash, previous):
        return RefreshVerdict.REUSED
    return RefreshVerdict.UNKNOWN
