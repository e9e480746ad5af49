"""Signed session tokens (JWT through PyJWT), with key ids so signing keys rotate without logging anyone out.

A token carries who (``sub``), which session (``sid``), for whom it is meant (``aud``: ``staff`` or
``member``) and when it ends (``exp``). Expiry is checked against the caller's ``now`` so that time stays a
parameter; the session row behind ``sid`` is what a logout revokes.
"""

from __future__ import annotations

import json
import os
import secrets
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import jwt

from domain.errors import Unauthorized
from domain.settings import get_settings

ALGORITHM = "HS256"
MIN_SECRET_LENGTH = 32


def signing_keys() -> tuple[dict[str, str], str]:
    """(every verifying key by id, the id that signs) from settings, or the machine-local development key."""
    settings = get_settings()
    keys = dict(settings.token_keys) or _local_keys(settings.data_dir / "token-keys.json")
    short = [kid for kid, secret in keys.items() if len(secret) < MIN_SECRET_LENGTH]
    if short:
        raise ValueError(f"LOYALTY_TOKEN_KEYS: keys {short} are shorter than {MIN_SECRET_LENGTH} characters")
    kid = settings.token_signing_kid or list(keys)[-1]
    if kid not in keys:
        raise ValueError(f"LOYALTY_TOKEN_SIGNING_KID {kid!r} is not in LOYALTY_TOKEN_KEYS")
    return keys, kid


def _local_keys(path: Path) -> dict[str, str]:
    """A random key created once per data directory (never a published default), readable by its owner only."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        content = json.dumps({f"local-{secrets.token_hex(4)}": secrets.token_urlsafe(48)})
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process created it first: use theirs
        else:
            with os.fdopen(fd, "w") as out:
                out.write(content)
    keys: dict[str, str] = json.loads(path.read_text())
    return keys


def issue_token(*, audience: str, subject: str, session_id: str, issued_at: datetime, expires_at: datetime,
                extra: dict[str, Any] | None = None) -> str:
    keys, kid = signing_keys()
    claims = {"aud": audience, "sub": subject, "sid": session_id, "iat": int(issued_at.timestamp()),
              "exp": int(expires_at.timestamp()), **(extra or {})}
    return jwt.encode(claims, keys[kid], algorithm=ALGORITHM, headers={"kid": kid})


@lru_cache(maxsize=4096)
def token_audience(token: str) -> str | None:
    """For whom a token says it is (unverified: only to pick the verifier), or None if it is no token. A pure
    function of the token, remembered: the same tokens come back on every request of a shift."""
    try:
        aud = jwt.decode(token, options={"verify_signature": False}).get("aud")
    except jwt.PyJWTError:
        return None
    return aud if isinstance(aud, str) else None


def verify_token(token: str, *, audience: str, now: datetime) -> dict[str, Any]:
    """The claims of a token signed by one of our keys, meant for ``audience`` and not expired at ``now``."""
    keys, _ = signing_keys()
    claims = dict(_signed_claims(token, audience, tuple(sorted(keys.items()))))
    if not isinstance(claims["exp"], int) or claims["exp"] <= now.timestamp():
        raise Unauthorized("the token has expired; log in again or refresh", code="token_expired")
    return claims


@lru_cache(maxsize=4096)
def _signed_claims(token: str, audience: str, keys: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """The claims of ``token`` if one of ``keys`` signed it for ``audience`` (expiry aside: it depends on the
    time). Remembered per token, audience and keys, so an agent's token is not re-verified on each request;
    a refused token is not remembered (an exception is never cached)."""
    try:
        kid = jwt.get_unverified_header(token).get("kid")
        key = dict(keys).get(kid) if isinstance(kid, str) else None
        if key is None:
            raise Unauthorized("the token was signed by an unknown key", code="invalid_token")
        claims: dict[str, Any] = jwt.decode(token, key, algorithms=[ALGORITHM], audience=audience,
                                            options={"verify_exp": False, "require": ["exp", "sub", "sid"]})
    except jwt.PyJWTError as exc:
        raise Unauthorized("invalid token", code="invalid_token") from exc
    return claims
