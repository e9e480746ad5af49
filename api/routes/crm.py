"""The call center: the member in one look, agents' notes, interest clues."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from pydantic import BaseModel, Field

from api.deps import AppCaller, CrmCaller, NowDep, SessionDep, log_personal_read
from api.schemas.common import ERROR_RESPONSES, MemberId, StrictModel
from domain.clock import ensure_aware
from domain.crm import service as crm
from domain.errors import InvalidInput
from domain.members import service as members

router = APIRouter(tags=["crm"], responses=ERROR_RESPONSES)


class NoteIn(StrictModel):
    fields: dict[str, Any] = Field(default_factory=dict, description="Structured facts, e.g. {'has_children': true}")
    text: str = Field(default="", max_length=4000)


class NoteOut(BaseModel):
    id: int
    member_id: int
    agent_id: str
    fields: dict[str, Any]
    text: str
    created_at: datetime


class InterestIn(StrictModel):
    product: str = Field(min_length=1, max_length=64)
    source: str = Field(pattern="^(ivr|web|call_center|app|wechat|store)$")
    at: datetime | None = None


@router.get("/v1/crm/members/lookup", summary="The member's whole picture in one answer (access-logged)")
def crm_lookup(session: SessionDep, caller: CrmCaller, now: NowDep,
               phone: Annotated[str | None, Query(max_length=32)] = None,
               openid: Annotated[str | None, Query(max_length=64)] = None,
               code: Annotated[str | None, Query(max_length=40)] = None,
               reason: Annotated[str | None, Header(alias="X-Access-Reason", max_length=200)] = None
               ) -> dict[str, Any]:
    member = members.lookup_member(session, phone=phone, openid=openid, code=code)
    assert member.id is not None
    log_personal_read(session, caller, member_id=member.id, action="crm.lookup", reason=reason or "call", now=now)
    return crm.member_picture(session, member=member, unmasked=caller.sees_contact_details, now=now)


@router.post("/v1/crm/members/{member_id}/notes", response_model=NoteOut, status_code=201,
             summary="Record what the agent learned (structured fields and free text)")
def add_note(member_id: MemberId, body: NoteIn, session: SessionDep, caller: CrmCaller, now: NowDep) -> NoteOut:
    if not caller.agent_id:
        raise InvalidInput("send X-Agent-Id: notes are recorded with the agent's identity", code="agent_required")
    note = crm.add_note(session, member_id=member_id, agent_id=caller.agent_id, fields=body.fields, text=body.text,
                        now=now)
    return NoteOut.model_validate(note, from_attributes=True)


@router.post("/v1/members/{member_id}/interests", status_code=201,
             summary="Record that the member asked about a product (a warm-lead clue)")
def add_interest(member_id: MemberId, body: InterestIn, session: SessionDep, caller: AppCaller,
                 now: NowDep) -> dict[str, Any]:
    event = crm.record_interest(session, member_id=member_id, product=body.product, source=body.source,
                                at=ensure_aware(body.at) if body.at else now)
    return {"id": event.id, "member_id": member_id, "product": event.product, "source": event.source, "at": event.at}
