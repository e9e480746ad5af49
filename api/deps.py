"""Request-scoped dependencies: the transaction, the caller, the clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlmodel import Session

from api.edge import database_permit
from domain.access.models import ApiKey, Scope
from domain.access.rules import CredentialKind, RouteAccess, is_api_key, sees_contact_details
from domain.access.service import authenticate, record_access
from domain.access.tokens import token_audience
from domain.clock import utcnow
from domain.db import get_engine, limit_lock_waits
from domain.errors import Forbidden, Unauthorized
from domain.member_sessions import service as member_sessions
from domain.members.rules import visible_contact_details
from domain.settings import get_settings
from domain.staff import service as staff
from domain.staff.models import StaffAccount, StaffRole


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


async def get_now() -> datetime:
    """The request's clock; the only place routes read time. ``async`` so that FastAPI calls it in the event
    loop instead of a threadpool hop (it never waits)."""
    return utcnow()


NowDep = Annotated[datetime, Depends(get_now)]


@dataclass(frozen=True)
class Caller:
    """Who is calling: the kind of credential, and who stands behind it.

    - ``api_key``: ``name`` is the key's name, ``scope`` its scope (a system, not a person);
    - ``staff``: ``name`` is the username, ``role`` and ``staff_id`` from the logged-in account;
    - ``member``: ``member_id`` is the member the session belongs to (their own record only).
    """

    kind: CredentialKind
    name: str
    scope: Scope | None = None
    role: StaffRole | None = None
    staff_id: int | None = None
    member_id: int | None = None
    pii_access: bool = False
    """The credential's own PII grant (a ``--pii`` key, a staff account with the PII right)."""
    session_id: str | None = None

    @property
    def key_name(self) -> str | None:
        return self.name if self.kind == CredentialKind.API_KEY else None

    @property
    def agent_id(self) -> str | None:
        """The staff member's username: the identity on notes, call outcomes, leads and the access log."""
        return self.name if self.kind == CredentialKind.STAFF else None

    @property
    def sees_contact_details(self) -> bool:
        return sees_contact_details(self.kind, scope=self.scope, pii_access=self.pii_access)

    @property
    def namespace(self) -> str:
        """The caller's own namespace of idempotency keys (orders, refunds, redemptions, touches): ``api:<key
        name>``, ``staff:<username>`` or ``member:<id>``. Key names and usernames are never reused, so one
        caller can neither replay nor pre-empt another's ids (migration 1503)."""
        if self.kind == CredentialKind.API_KEY:
            return f"api:{self.name}"
        return self.actor

    @property
    def actor(self) -> str:
        """How records name who acted: the key's name, ``staff:<username>`` or ``member:<id>``."""
        if self.kind == CredentialKind.STAFF:
            return f"staff:{self.name}"
        if self.kind == CredentialKind.MEMBER:
            return f"member:{self.member_id}"
        return self.name


def staff_caller_from_token(session: Session, *, token: str, now: datetime) -> Caller:
    """The logged-in person behind a staff access token (from a header here, from the console's cookie there)."""
    account, session_id = staff.authenticate_staff(session, token=token, now=now)
    return staff_caller(account, session_id=session_id)


def staff_caller(account: StaffAccount, *, session_id: str) -> Caller:
    """The caller behind a live staff session (``domain.staff.service.check_staff_session`` said it is live)."""
    return Caller(kind=CredentialKind.STAFF, name=account.username, role=StaffRole(account.role),
                  staff_id=account.id, pii_access=account.pii_access, session_id=session_id)


def presented_credential(authorization: str | None) -> str:
    """The bearer credential of an ``Authorization`` header, or Unauthorized."""
    if not authorization or not authorization.lower().startswith("bearer "):
        raise Unauthorized("send 'Authorization: Bearer <API key or session token>'", code="missing_api_key")
    return authorization[7:].strip()


def key_caller(key: ApiKey) -> Caller:
    """The caller behind a live API key (``domain.access.service.check_key`` said it is live)."""
    return Caller(kind=CredentialKind.API_KEY, name=key.name, scope=Scope(key.scope), pii_access=key.pii_access)


def token_caller(session: Session, *, presented: str, now: datetime) -> Caller:
    """The member or staff member behind a session token, or Unauthorized."""
    if (audience := token_audience(presented)) == member_sessions.MEMBER_AUDIENCE:
        member_id, session_id = member_sessions.authenticate_member(session, token=presented, now=now)
        return Caller(kind=CredentialKind.MEMBER, name=f"member:{member_id}", member_id=member_id,
                      session_id=session_id)
    if audience == staff.STAFF_AUDIENCE:
        return staff_caller_from_token(session, token=presented, now=now)
    raise Unauthorized("invalid or revoked API key or token", code="invalid_api_key")


def _authenticate(request: Request, session: SessionDep, now: NowDep,
                  authorization: Annotated[str | None, Header()] = None) -> Caller:
    presented = presented_credential(authorization)
    if is_api_key(presented):
        caller = key_caller(authenticate(session, presented=presented))
    else:
        caller = token_caller(session, presented=presented, now=now)
    request.state.caller = caller
    return caller


def admit(caller: Caller, access: RouteAccess) -> Caller:
    """``caller`` if ``access`` admits it, else Forbidden (shared by ``allow`` and the hot routes, api/hot.py)."""
    if not access.admits(caller.kind, scope=caller.scope, role=caller.role):
        held = caller.scope or caller.role or caller.kind
        raise Forbidden(f"a {caller.kind} credential ({held}) may not do this", code="scope_forbidden",
                        details={"credential": caller.kind, "scope": caller.scope, "role": caller.role,
                                 "allowed": access.describe()})
    return caller


def allow(access: RouteAccess) -> Callable[[Caller], Caller]:
    """A dependency admitting exactly the callers ``access`` names. Every route has one (the
    route-enumeration test reads ``.access``)."""

    def check(caller: Annotated[Caller, Depends(_authenticate)]) -> Caller:
        return admit(caller, access)

    check.access = access  # type: ignore[attr-defined]
    return check


def public(why: str) -> Callable[[], None]:
    """A dependency marking a route that needs no credential, with the reason (read by the route-enumeration
    test, so being public is a declared decision, not an omission)."""

    def no_credential() -> None:
        return None

    no_credential.public_because = why  # type: ignore[attr-defined]
    return no_credential


_R = StaffRole
CALL_CENTER = frozenset({_R.AGENT, _R.SUPERVISOR})
MARKETING = frozenset({_R.MARKETER, _R.SUPERVISOR})

MEMBER_DATA = RouteAccess(scopes=frozenset({Scope.CRM}), roles=CALL_CENTER)
"""A member's data by id (read, change, points, redemptions): the call center and a CRM integration. Not an
``app`` key: an app acts for one member only through that member's session (``/v1/me``)."""
ENROLMENT = RouteAccess(scopes=frozenset({Scope.APP, Scope.CRM}), roles=CALL_CENTER)
"""Enrolling a member: the app's server, a CRM integration, the call center."""
SALES = RouteAccess(scopes=frozenset({Scope.POS, Scope.APP}))
"""Orders and refunds: tills (``pos``) and the e-commerce/app server, each in its own idempotency namespace."""
TOUCH_REQUESTS = RouteAccess(scopes=frozenset({Scope.APP, Scope.CRM}), roles=CALL_CENTER)
"""Asking the contact gate for a touch (and its dry run), or reporting an interest clue: systems that serve
members, and the call center. Nothing personal is answered."""
CRM = RouteAccess(scopes=frozenset({Scope.CRM}), roles=CALL_CENTER)
"""Call-center work that a CRM integration may also do: lookups, complaints, list reports."""
AGENT_ACTION = RouteAccess(roles=CALL_CENTER, keys=False)
"""Recorded in a named agent's name (notes, pulling a lead, a call's outcome): a person, never a key."""
MARKETING_WORK = RouteAccess(roles=MARKETING)
"""Call lists, journeys, campaigns: marketers and supervisors (and an admin key for automation)."""
APPROVAL = RouteAccess(roles=MARKETING, keys=False)
"""Four-eyes approval: a second named person, never a key."""
OPERATIONS = RouteAccess(roles=frozenset({_R.OPERATOR}))
"""Jobs, keys, configuration: operators (and an admin key)."""
CORRECTIONS = RouteAccess(roles=frozenset({_R.SUPERVISOR, _R.OPERATOR}))
"""Points corrections with a reason: supervisors and operators."""
AUDIT = RouteAccess(roles=frozenset({_R.SUPERVISOR, _R.OPERATOR}))
"""Reading the access log (who read whose personal data): supervisors and operators (and an admin key)."""
ANY_STAFF = RouteAccess(roles=frozenset(StaffRole), keys=False)
"""A logged-in person's own session (who am I, refresh, log out)."""

MEMBER_SELF = RouteAccess(member=True, keys=False)
"""``/v1/me/…``: a member's own session, for their own record only."""
APP_SERVER = RouteAccess(scopes=frozenset({Scope.APP}))
"""An app server vouching for a member it authenticated itself (token exchange)."""

MemberDataCaller = Annotated[Caller, Depends(allow(MEMBER_DATA))]
EnrolmentCaller = Annotated[Caller, Depends(allow(ENROLMENT))]
SalesCaller = Annotated[Caller, Depends(allow(SALES))]
TouchCaller = Annotated[Caller, Depends(allow(TOUCH_REQUESTS))]
CrmCaller = Annotated[Caller, Depends(allow(CRM))]
AgentCaller = Annotated[Caller, Depends(allow(AGENT_ACTION))]
MarketingCaller = Annotated[Caller, Depends(allow(MARKETING_WORK))]
ApproverCaller = Annotated[Caller, Depends(allow(APPROVAL))]
AdminCaller = Annotated[Caller, Depends(allow(OPERATIONS))]
CorrectionCaller = Annotated[Caller, Depends(allow(CORRECTIONS))]
AuditCaller = Annotated[Caller, Depends(allow(AUDIT))]
MemberCaller = Annotated[Caller, Depends(allow(MEMBER_SELF))]
AppKeyCaller = Annotated[Caller, Depends(allow(APP_SERVER))]
StaffCaller = Annotated[Caller, Depends(allow(ANY_STAFF))]


def contact_details(caller: Caller, *, phone: str | None, email: str | None) -> tuple[str | None, str | None]:
    """Phone and email as this caller may see them (masked without the PII right)."""
    return visible_contact_details(phone=phone, email=email, unmasked=caller.sees_contact_details)


def log_personal_read(session: Session, caller: Caller, *, member_id: int, action: str, reason: str | None,
                      now: datetime) -> None:
    """Every read of a member's personal data by anyone but the member goes to the access log.
    Only for read routes: the entry is taken to be the transaction's only write."""
    if caller.kind == CredentialKind.MEMBER and caller.member_id == member_id:
        return
    record_access(session, api_key_name=caller.key_name, agent_id=caller.agent_id, staff_id=caller.staff_id,
                  member_id=member_id, action=action, reason=reason or "unspecified", now=now,
                  read_only_transaction=True)
