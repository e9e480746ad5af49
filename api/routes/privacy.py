"""Privacy requests: a member's data as JSON, erasure (operators and an admin key; access-logged)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Response
from pydantic import BaseModel, Field

from api.deps import AdminCaller, NowDep, SessionDep, log_personal_read
from api.schemas.common import ERROR_RESPONSES, MemberId, StrictModel
from domain.access.service import record_access
from domain.privacy import service as privacy

router = APIRouter(prefix="/v1/admin/members", tags=["privacy"], responses=ERROR_RESPONSES)

ReasonHeader = Annotated[str, Header(alias="X-Access-Reason", min_length=1, max_length=200,
                                     description="Why the data is read (kept in the access log), e.g. a ticket")]


class PrivacyExportOut(BaseModel):
    member_id: int
    exported_at: datetime
    tables: dict[str, list[dict[str, Any]]] = Field(
        description="Every table holding something about the member → its rows (secrets such as token hashes "
                    "left out); tables with no row are omitted")


class ErasureIn(StrictModel):
    reason: str = Field(min_length=1, max_length=200, description="Why, e.g. the request's ticket number",
                        examples=["privacy request #4711"])


class ErasureOut(BaseModel):
    member_id: int
    erased_at: datetime
    actor: str
    reason: str
    replayed: bool = Field(description="True when the member had been erased before (nothing changed now)")


@router.get("/{member_id}/privacy-export", response_model=PrivacyExportOut,
            summary="Everything held about a member, as JSON (access-logged)")
def export_member(member_id: MemberId, caller: AdminCaller, session: SessionDep, now: NowDep,
                  reason: ReasonHeader) -> PrivacyExportOut:
    document = privacy.export_member(session, member_id=member_id, now=now)
    log_personal_read(session, caller, member_id=member_id, action="privacy.export", reason=reason, now=now)
    return PrivacyExportOut.model_validate(document)


@router.post("/{member_id}/erasure", response_model=ErasureOut, status_code=201,
             summary="Erase a member's personal data; points and orders stay (a repeat answers 200, replayed)")
def erase_member(member_id: MemberId, body: ErasureIn, caller: AdminCaller, session: SessionDep, now: NowDep,
                 response: Response) -> ErasureOut:
    tombstone, fresh = privacy.erase_member(session, member_id=member_id, actor=caller.actor, reason=body.reason,
                                            now=now)
    if fresh:
        record_access(session, api_key_name=caller.key_name, agent_id=caller.agent_id, staff_id=caller.staff_id,
                      member_id=member_id, action="privacy.erase", reason=body.reason, now=now)
    else:
        response.status_code = 200
    return ErasureOut(member_id=tombstone.member_id, erased_at=tombstone.erased_at, actor=tombstone.actor,
                      reason=tombstone.reason, replayed=not fresh)
