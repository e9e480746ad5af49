"""Who is looking at a console page: the staff session behind the page cookie, and what their role opens."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Request, Response

from api.deps import Caller, NowDep, SessionDep, staff_caller_from_token
from domain.access.rules import CredentialKind, RouteAccess
from domain.errors import DomainError, Forbidden
from domain.staff import service as staff
from domain.staff.models import StaffRole

_R = StaffRole
CALL_CENTER_PAGES = RouteAccess(roles=frozenset({_R.AGENT, _R.SUPERVISOR}), keys=False)
SUPERVISION_PAGES = RouteAccess(roles=frozenset({_R.SUPERVISOR}), keys=False)
AUDIT_PAGES = RouteAccess(roles=frozenset({_R.SUPERVISOR, _R.OPERATOR}), keys=False)
"""The access log: supervisors and operators, as on the API."""
MARKETING_PAGES = RouteAccess(roles=frozenset({_R.MARKETER, _R.SUPERVISOR}), keys=False)
OPERATIONS_PAGES = RouteAccess(roles=frozenset({_R.OPERATOR}), keys=False)
ANY_STAFF_PAGES = RouteAccess(roles=frozenset(StaffRole), keys=False)

COOKIE = "loyalty_console"
REFRESH_WITHIN_SECONDS = 5 * 60


class LoginRequired(Exception):  # noqa: N818 - a control-flow signal, turned into a redirect to the login page
    def __init__(self, next_path: str, *, clear_cookie: bool = False) -> None:
        super().__init__(next_path)
        self.next_path = quote(next_path, safe="/")
        self.clear_cookie = clear_cookie
        self.cookie = COOKIE


def _page_caller(request: Request, response: Response, session: SessionDep, now: NowDep) -> Caller:
    token = request.cookies.get(COOKIE)
    if not token:
        raise LoginRequired(request.url.path)
    try:
        caller = staff_caller_from_token(session, token=token, now=now)
    except DomainError as exc:  # expired, revoked, disabled account: log in again
        raise LoginRequired(request.url.path, clear_cookie=True) from exc
    if caller.session_id is not None:
        # Access tokens are short-lived; a person working in the console keeps theirs fresh by using it, up to
        # the login session's own end (an idle console lapses like an idle API client).
        issued = staff.refresh_session(session, session_id=caller.session_id, now=now)
        response.set_cookie(value=issued.access_token, **cookie_settings(
            secure=request.url.scheme == "https", expires_at=issued.expires_at, now=now))  # type: ignore[arg-type]
    request.state.caller = caller
    return caller


def page(access: RouteAccess) -> Callable[..., Caller]:
    """A page dependency admitting the staff roles ``access`` names (``.access`` is read by the enumeration
    test, as on API routes). API keys never open pages: the console is for named people."""

    def check(caller: Annotated[Caller, Depends(_page_caller)]) -> Caller:
        if caller.kind != CredentialKind.STAFF or not access.admits(caller.kind, role=caller.role):
            raise Forbidden(f"a {caller.role} may not open this page", code="role_forbidden",
                            details={"allowed": access.describe()["staff_roles"]})
        return caller

    check.access = access  # type: ignore[attr-defined]
    return check


def cookie_settings(*, secure: bool, expires_at: datetime, now: datetime) -> dict[str, object]:
    """The page cookie: unreadable by scripts, never sent by another site's forms, only to /console."""
    return {"key": COOKIE, "httponly": True, "samesite": "strict", "secure": secure, "path": "/console",
            "max_age": max(1, int((expires_at - now).total_seconds()))}
