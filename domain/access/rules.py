"""Pure rules of API access: key format, credential kinds, and who may call a route."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from enum import StrEnum

from domain.access.models import Scope
from domain.staff.models import StaffRole

KEY_PREFIX = "lk"


class CredentialKind(StrEnum):
    API_KEY = "api_key"
    """A trusted system (POS, e-commerce, the app's server, an integration) with a key and scopes."""
    STAFF = "staff"
    """A named person of the back office, logged in (``POST /v1/staff/sessions``), with a role."""
    MEMBER = "member"
    """A member on their own phone, proved by WeChat OAuth or an SMS code: their own record only."""


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


def is_api_key(presented: str) -> bool:
    return presented.startswith(f"{KEY_PREFIX}_")


@dataclass(frozen=True)
class RouteAccess:
    """Who may call one route: API keys of some scopes, staff of some roles, a member for themselves.

    An ``admin`` key may call every route that admits API keys at all; a route that needs a person
    (four-eyes approval, an agent's own note) admits no key, not even admin."""

    scopes: frozenset[Scope] = frozenset()
    roles: frozenset[StaffRole] = frozenset()
    member: bool = False
    keys: bool = True
    """False: no API key at all — a named person must act."""

    def admits(self, kind: CredentialKind, *, scope: Scope | None = None, role: StaffRole | None = None) -> bool:
        if kind == CredentialKind.API_KEY:
            return self.keys and scope is not None and (scope == Scope.ADMIN or scope in self.scopes)
        if kind == CredentialKind.STAFF:
            return role in self.roles
        return self.member

    def describe(self) -> dict[str, list[str] | bool]:
        """The matrix row for the README, errors and the route-enumeration test."""
        scopes = sorted({s.value for s in self.scopes} | {Scope.ADMIN.value}) if self.keys else []
        return {"api_key_scopes": scopes, "staff_roles": sorted(r.value for r in self.roles), "member": self.member}


def sees_contact_details(kind: CredentialKind, *, scope: Scope | None, pii_access: bool) -> bool:
    """The PII right: who sees members' full phone numbers and emails. A member sees their own; an admin or
    app key (the app's server shows members their own data) sees them; a CRM key or a staff member only
    with the PII right granted to it. Everyone else gets them masked, on every route."""
    if kind == CredentialKind.MEMBER:
        return True
    if kind == CredentialKind.API_KEY and scope in (Scope.ADMIN, Scope.APP):
        return True
    return pii_access
