"""Members: join, read, update, look up, close."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query
from sqlmodel import Session

from api.deps import (
    Caller,
    CrmCaller,
    EnrolmentCaller,
    MemberDataCaller,
    NowDep,
    SessionDep,
    contact_details,
    log_personal_read,
)
from api.schemas.common import DEFAULT_PAGE_LIMIT, ERROR_RESPONSES, CursorQuery, LimitQuery, MemberId, Page, from_row
from api.schemas.members import MemberClose, MemberCreate, MemberOut, MemberSummary, MemberUpdate
from api.schemas.organisations import TreatmentOut
from api.schemas.points import OrderOut
from domain.lifecycle.rules import LifecycleStage
from domain.members import service
from domain.members.models import Member, MemberStatus
from domain.members.rules import visible_contact_details
from domain.orders.service import list_orders
from domain.organisations import service as organisations

router = APIRouter(prefix="/v1/members", tags=["members"], responses=ERROR_RESPONSES)

ReasonHeader = Annotated[str | None, Header(alias="X-Access-Reason", max_length=200,
                                            description="Why personal data is read (access log)")]


def member_out(session: Session, member: Member, caller: Caller) -> MemberOut:
    """The member as this caller may see them: phone and email masked without the PII right."""
    assert member.id is not None
    phone, email = contact_details(caller, phone=member.phone, email=member.email)
    served = organisations.treatment_of(session, member_id=member.id, own_tier=member.tier)
    return from_row(MemberOut, member, consents=service.consents_of(session, member_id=member.id),
                    external_ids=service.external_ids_of(session, member_id=member.id), phone=phone, email=email,
                    treatment=TreatmentOut.model_validate(served.as_dict()))


@router.post("", status_code=201, response_model=MemberOut, summary="Enrol a member")
def create_member(body: MemberCreate, session: SessionDep, caller: EnrolmentCaller, now: NowDep) -> MemberOut:
    new = service.NewMember(**body.model_dump())
    member = service.join_member(session, new=new, actor=caller.actor, now=now)
    return member_out(session, member, caller)


def member_summaries(session: Session, found: list[Member], *, unmasked: bool) -> list[MemberSummary]:
    """List rows, masked by right, each with the tier the member is served at (one read for the whole list)."""
    served = organisations.served_tiers(session, member_ids=[m.id for m in found if m.id is not None])
    return [from_row(MemberSummary, m, phone=visible_contact_details(phone=m.phone, email=None, unmasked=unmasked)[0],
                     phone_masked=not unmasked, served_tier=served.get(m.id or 0, m.tier)) for m in found]


def member_search(phone: Annotated[str | None, Query(max_length=32, description="Exact, any spelling")] = None,
                  name_prefix: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
                  member_code: Annotated[str | None, Query(min_length=2, max_length=40,
                                                           description="A whole code or its start")] = None,
                  tag: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
                  tier: Annotated[str | None, Query(pattern="^[A-Z]$")] = None,
                  status: Annotated[MemberStatus | None, Query()] = None,
                  lifecycle_stage: Annotated[LifecycleStage | None, Query(
                      description="The stage of the last daily refresh")] = None) -> service.MemberSearch:
    """The member-search filters as typed query parameters (shared by the list and its CSV export)."""
    return service.MemberSearch(phone=phone, name_prefix=name_prefix, member_code=member_code, tag=tag, tier=tier,
                                status=status, lifecycle_stage=lifecycle_stage.value if lifecycle_stage else None)


MemberSearchDep = Annotated[service.MemberSearch, Depends(member_search)]


@router.get("", response_model=Page[MemberSummary],
            summary="Search members (phone, name prefix, code, tag, tier, status, lifecycle stage); access-logged")
def search_members(session: SessionDep, caller: CrmCaller, now: NowDep, search: MemberSearchDep,
                   cursor: CursorQuery = None, limit: LimitQuery = DEFAULT_PAGE_LIMIT,
                   reason: ReasonHeader = None) -> Page[MemberSummary]:
    page = service.search_members(session, search=search, cursor=cursor, limit=limit)
    for member in page.items:
        assert member.id is not None
        log_personal_read(session, caller, member_id=member.id, action="member.search", reason=reason, now=now)
    return Page[MemberSummary](items=member_summaries(session, list(page.items), unmasked=caller.sees_contact_details),
                               next_cursor=page.next_cursor)


@router.get("/{member_id}/orders", response_model=Page[OrderOut], summary="A member's orders, latest first")
def member_orders(member_id: MemberId, session: SessionDep, caller: MemberDataCaller, cursor: CursorQuery = None,
                  limit: LimitQuery = DEFAULT_PAGE_LIMIT) -> Page[OrderOut]:
    page = list_orders(session, member_id=member_id, cursor=cursor, limit=limit)
    return Page[OrderOut].of(page, lambda o: from_row(OrderOut, o))


@router.get("/lookup", response_model=MemberOut, summary="Find a member by one identity key")
def lookup_member(session: SessionDep, caller: MemberDataCaller, now: NowDep, reason: ReasonHeader = None,
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
def read_member(member_id: MemberId, session: SessionDep, caller: MemberDataCaller, now: NowDep,
                reason: ReasonHeader = None) -> MemberOut:
    return _read(session, caller, service.get_member(session, member_id=member_id), now, reason)


def _read(session: Session, caller: Caller, member: Member, now: NowDep, reason: str | None) -> MemberOut:
    assert member.id is not None
    log_personal_read(session, caller, member_id=member.id, action="member.read", reason=reason, now=now)
    return member_out(session, member, caller)


@router.patch("/{member_id}", response_model=MemberOut, summary="Change a member's profile")
def update_member(member_id: MemberId, body: MemberUpdate, session: SessionDep, caller: MemberDataCaller,
                  now: NowDep) -> MemberOut:
    member = service.update_member(session, member_id=member_id, changes=body.model_dump(exclude_unset=True),
                                   now=now)
    return member_out(session, member, caller)


@router.post("/{member_id}/close", response_model=MemberOut, summary="Soft-close a member")
def close_member(member_id: MemberId, body: MemberClose, session: SessionDep, caller: MemberDataCaller,
                 now: NowDep) -> MemberOut:
    member = service.close_member(session, member_id=member_id, reason=body.reason, actor=caller.actor, now=now)
    return member_out(session, member, caller)
