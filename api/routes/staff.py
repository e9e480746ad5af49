"""Staff sessions: log in with a username and password, refresh, log out."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api.deps import NowDep, SessionDep, StaffCaller, public
from api.errors import domain_error_response
from api.schemas.common import ERROR_RESPONSES, StrictModel
from domain.staff import service as staff
from domain.staff.models import StaffAccount, StaffRole

router = APIRouter(prefix="/v1/staff", tags=["staff"], responses=ERROR_RESPONSES)


class LoginIn(StrictModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class StaffOut(BaseModel):
    id: int
    username: str
    display_name: str
    role: StaffRole
    pii_access: bool


class SessionOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_at: datetime
    """When this access token ends; refresh before then (``POST /v1/staff/sessions/current/refresh``)."""
    session_expires_at: datetime
    """When the login itself ends and the password is needed again."""
    staff: StaffOut


def _staff_out(account: StaffAccount) -> StaffOut:
    return StaffOut.model_validate(account, from_attributes=True)


def _session_out(issued: staff.IssuedSession) -> SessionOut:
    return SessionOut(access_token=issued.access_token, expires_at=issued.expires_at,
                      session_expires_at=issued.session_expires_at, staff=_staff_out(issued.account))


@router.post("/sessions", status_code=201, response_model=SessionOut,
             dependencies=[Depends(public("logging in is how a person gets a credential"))],
             summary="Log in: a short-lived access token for 'Authorization: Bearer'",
             responses={429: {"description": "Too many wrong passwords: wait Retry-After seconds"}})
def log_in(body: LoginIn, session: SessionDep, now: NowDep) -> SessionOut | JSONResponse:
    outcome = staff.log_in(session, username=body.username, password=body.password, now=now)
    if outcome.refusal is not None:
        return domain_error_response(outcome.refusal)  # returned, not raised: the failure count commits
    assert outcome.issued is not None
    return _session_out(outcome.issued)


@router.get("/sessions/current", response_model=StaffOut, summary="Who is logged in")
def who_am_i(session: SessionDep, caller: StaffCaller) -> StaffOut:
    assert caller.agent_id is not None
    return _staff_out(staff.get_staff(session, username=caller.agent_id))


@router.post("/sessions/current/refresh", response_model=SessionOut,
             summary="A fresh access token for the same login (until the login itself ends)")
def refresh(session: SessionDep, caller: StaffCaller, now: NowDep) -> SessionOut:
    assert caller.session_id is not None
    return _session_out(staff.refresh_session(session, session_id=caller.session_id, now=now))


@router.delete("/sessions/current", status_code=204, summary="Log out: this login's tokens stop working at once")
def log_out(session: SessionDep, caller: StaffCaller, now: NowDep) -> Response:
    assert caller.session_id is not None
    staff.end_session(session, session_id=caller.session_id, now=now)
    return Response(status_code=204)
