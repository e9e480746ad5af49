"""Pure rules of API access: key format and scope inclusion."""

from __future__ import annotations

import hashlib
import secrets

from domain.access.models import Scope

KEY_PREFIX = "lk"


def new_key() -> tuple[str, str, str]:
    """A fresh key: (the whole key to show once, its public prefix, its hash to store)."""
    prefix = secrets.token_hex(4)
    key = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    return key, prefix, hash_key(key)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def prefix_of(key: str) -> str | None:
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not parts[1]:
        return None
    return parts[1]


def scope_allows(held: Scope, allowed: frozenset[Scope]) -> bool:
    """Admin may do everything; other scopes only what the route names."""
    return held == Scope.ADMIN or held in allowed
