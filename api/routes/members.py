"""Members: join, read, update, look up, close."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query
from sqlmodel import Session

from api.deps import AppCaller, Caller, NowDep, SessionDep, log_personal_read
from api.schemas.common import ERROR_RESPONSES, MemberId, from_row
from api.schemas.members import MemberClose, MemberCreate, MemberOut, MemberUpdate
from domain.members import service
from domain.members.models import Member

router = APIRouter(prefix="/v1/members", tags=["members"], responses=ERROR_RESPONSES)

ReasonHeader = Annotated[str | None, Header(alias="X-Access-Reason", max_length=200,
                                            description="Why personal data is read (access log)")]


def member_out(session: Session, member: Member) -> MemberOut:
    assert member.id is not None
    return from_row(MemberOut, member, consents=service.consents_of(session, member_id=member.id),
                    external_ids=service.external_ids_of(session, member_id=member.id))


@router.post("", status_code=201, response_model=MemberOut, summary="Enrol a member")
def create_member(body: MemberCreate, session: SessionDep, caller: AppCaller, now: NowDep) -> MemberOut:
    new = service.NewMember(**body.model_dump())
    member = service.join_member(session, new=new, actor=caller.actor, now=now)
    return member_out(session, member)


@router.get("/lookup", response_model=MemberOut, summary="Find a member by one identity key")
def lookup_member(session: SessionDep, caller: AppCaller, now: NowDep, reason: ReasonHeader = None,
                  phone: Annotated[str | None, Query(max_length=32)] = None,
                  openid: Annotated[str | None, Query(max_length=64)] = None,
                  unionid: Annotated[str | None, Query(max_length=64)] = None,
                  code: Annotated[str | None, Query(max_length=40)] = None,
                  external_system: Annotated[str | None, Query(max_length=32)] = None,
                  external_id: Annotated[str | None, Query(max_length=128)] = None) -> MemberOut:
    external = (external_system, external_id) if external_system and external_id else None
    member = service.lookup_member(session, phone=phone, openid=openid, unionid=unionid, code=code,
                                   external=external)
    return _read(session, caller, member, now, reason)


@router.get("/{member_id}", response_model=MemberOut, summary="Read a member")
def read_member(member_id: MemberId, session: SessionDep, caller: AppCaller, now: NowDep,
                reason: ReasonHeader = None) -> MemberOut:
    return _read(session, caller, service.get_member(session, member_id=member_id), now, reason)


def _read(session: Session, caller: Caller, member: Member, now: NowDep, reason: str | None) -> MemberOut:
    assert member.id is not None
    log_personal_read(session, caller, member_id=member.id, action="member.read", reason=reason, now=now)
    return member_out(session, member)


@router.patch("/{member_id}", response_model=MemberOut, summary="Change a member's profile")
def update_member(member_id: MemberId, body: MemberUpdate, session: SessionDep, caller: AppCaller,
                  now: NowDep) -> MemberOut:
    member = service.update_member(session, member_id=member_id, changes=body.model_dump(exclude_unset=True),
                                   now=now)
    return member_out(session, member)


@router.post("/{member_id}/close", response_model=MemberOut, summary="Soft-close a member")
def close_member(member_id: MemberId, body: MemberClose, session: SessionDep, caller: AppCaller,
                 now: NowDep) -> MemberOut:
    member = service.close_member(session, member_id=member_id, reason=body.reason, actor=caller.actor, now=now)
    return member_out(session, member)
