"""Request-scoped dependencies: the transaction, the caller, the clock."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlmodel import Session

from api.edge import database_permit
from domain.access.models import Scope
from domain.access.rules import scope_allows
from domain.access.service import authenticate, record_access
from domain.clock import utcnow
from domain.db import get_engine, limit_lock_waits
from domain.errors import Forbidden, Unauthorized
from domain.settings import get_settings


def get_session(_: Annotated[None, Depends(database_permit, scope="function")]) -> Iterator[Session]:
    """The request's transaction. It commits before the response is sent (``scope="function"`` below), so a
    failed commit answers an error instead of a success that was never stored. It starts only once a pooled
    connection is free (``database_permit``), and its lock waits are short (``limit_lock_waits``)."""
    session = Session(get_engine(), expire_on_commit=False)
    try:
        limit_lock_waits(session, ms=get_settings().lock_timeout_ms)
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def get_now() -> datetime:
    """The request's clock; the only place routes read time."""
    return utcnow()


NowDep = Annotated[datetime, Depends(get_now)]


@dataclass(frozen=True)
class Caller:
    key_name: str
    scope: Scope
    agent_id: str | None
    """The agent behind a CRM key (``X-Agent-Id``), for the access log and action records."""
    pii_access: bool = False

    @property
    def sees_contact_details(self) -> bool:
        """Admins and PII-enabled CRM keys see full phone numbers; other agents see them masked."""
        return self.scope == Scope.ADMIN or self.pii_access

    @property
    def actor(self) -> str:
        return f"{self.key_name}/{self.agent_id}" if self.agent_id else self.key_name


def _authenticate(request: Request, session: SessionDep,
                  authorization: Annotated[str | None, Header()] = None,
                  x_agent_id: Annotated[str | None, Header(max_length=64)] = None) -> Caller:
    if not authorization or not authorization.lower().startswith("bearer "):
        raise Unauthorized("send 'Authorization: Bearer <API key>'", code="missing_api_key")
    key = authenticate(session, presented=authorization[7:].strip())
    caller = Caller(key_name=key.name, scope=Scope(key.scope), agent_id=x_agent_id, pii_access=key.pii_access)
    request.state.caller = caller
    return caller


def require(*scopes: Scope):  # type: ignore[no-untyped-def]
    """A dependency admitting callers whose key has one of ``scopes`` (admin always)."""
    allowed = frozenset(scopes)

    def check(caller: Annotated[Caller, Depends(_authenticate)]) -> Caller:
        if not scope_allows(caller.scope, allowed):
            permitted = sorted(s.value for s in allowed | {Scope.ADMIN})
            raise Forbidden(f"a {caller.scope} key may not do this", code="scope_forbidden",
                            details={"scope": caller.scope, "allowed": permitted})
        return caller

    check.required_scopes = allowed  # type: ignore[attr-defined]  # read by the route-enumeration test
    return check


AppCaller = Annotated[Caller, Depends(require(Scope.APP, Scope.CRM))]
"""Member self-service and everything above it."""
CrmCaller = Annotated[Caller, Depends(require(Scope.CRM))]
AdminCaller = Annotated[Caller, Depends(require())]


def log_personal_read(session: Session, caller: Caller, *, member_id: int, action: str, reason: str | None,
                      now: datetime) -> None:
    """CRM reads of personal data go to the access log; app keys read on the member's own behalf.
    Only for read routes: the entry is taken to be the transaction's only write."""
    if caller.scope in (Scope.CRM, Scope.ADMIN):
        record_access(session, api_key_name=caller.key_name, agent_id=caller.agent_id, member_id=member_id,
                      action=action, reason=reason or "unspecified", now=now, read_only_transaction=True)
