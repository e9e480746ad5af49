"""CSV exports, streamed from PostgreSQL: a call list for a dialer, a campaign's audience, a member search.

The route checks the caller, writes the access log and commits like any other route; the file itself is
then streamed by ``COPY … TO STDOUT`` on a connection of its own (domain/exports), never held in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Path
from fastapi.responses import StreamingResponse

from api.deps import Caller, CrmCaller, MarketingCaller, NowDep, SessionDep
from api.routes.members import MemberSearchDep
from api.schemas.common import ERROR_RESPONSES
from domain.access.rules import CredentialKind
from domain.access.service import record_bulk_access
from domain.campaigns import service as campaigns
from domain.crm import service as crm
from domain.db import get_engine
from domain.exports.service import stream_csv
from domain.members import service as members

router = APIRouter(tags=["exports"], responses=ERROR_RESPONSES)
CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}}},
          "description": "UTF-8 CSV with a header row (and a byte-order mark for spreadsheets)"}}
ReasonHeader = Annotated[str | None, Header(alias="X-Access-Reason", max_length=200,
                                            description="Why personal data is exported (access log)")]
Id = Annotated[int, Path(ge=1, le=2**31 - 1)]


def csv_response(chunks: Iterator[bytes], filename: str) -> StreamingResponse:
    return StreamingResponse(chunks, media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{filename}"',
                                      "Cache-Control": "no-store"})


def log_export(session: SessionDep, caller: Caller, member_ids: Any, *, action: str, reason: str | None,
               now: datetime) -> None:
    """Every member in an export of personal data is in the access log, under the exporting key or person."""
    if caller.kind != CredentialKind.MEMBER:  # every non-member read of personal data is logged
        record_bulk_access(session, api_key_name=caller.key_name, agent_id=caller.agent_id, staff_id=caller.staff_id,
                           member_ids=member_ids, action=action, reason=reason or "export", now=now)


@router.get("/v1/crm/call-lists/{call_list_id}/leads.csv", responses=CSV_RESPONSE, response_class=StreamingResponse,
            summary="A call list's leads for a dialer, in dialling order (phones masked without the PII right)")
def export_leads(call_list_id: Id, session: SessionDep, caller: CrmCaller, now: NowDep,
                 reason: ReasonHeader = None) -> StreamingResponse:
    crm.get_call_list(session, call_list_id=call_list_id)
    log_export(session, caller, crm.lead_member_ids(call_list_id=call_list_id), action="export.call_list",
               reason=reason, now=now)
    query = crm.leads_export_query(call_list_id=call_list_id, unmasked=caller.sees_contact_details)
    return csv_response(stream_csv(get_engine(), query), f"call-list-{call_list_id}-leads.csv")


@router.get("/v1/campaigns/{campaign_id}/audience.csv", responses=CSV_RESPONSE, response_class=StreamingResponse,
            summary="A launched campaign's audience with treatment/control and the gate's decision")
def export_audience(campaign_id: Id, session: SessionDep, caller: MarketingCaller) -> StreamingResponse:
    campaigns.get_campaign(session, campaign_id=campaign_id)
    query = campaigns.audience_export_query(campaign_id=campaign_id)
    return csv_response(stream_csv(get_engine(), query), f"campaign-{campaign_id}-audience.csv")


@router.get("/v1/members.csv", responses=CSV_RESPONSE, response_class=StreamingResponse,
            summary="A member search as CSV (same filters as GET /v1/members); access-logged")
def export_members(session: SessionDep, caller: CrmCaller, now: NowDep, search: MemberSearchDep,
                   reason: ReasonHeader = None) -> StreamingResponse:
    log_export(session, caller, members.search_member_ids(search), action="export.members", reason=reason, now=now)
    query = members.search_export_query(search, unmasked=caller.sees_contact_details)
    return csv_response(stream_csv(get_engine(), query), "members.csv")
