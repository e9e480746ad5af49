"""The call center: the member in one look, agents' notes, interest clues."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field, StrictFloat

from api.deps import (
    AgentCaller,
    Caller,
    CrmCaller,
    MarketingCaller,
    NowDep,
    SessionDep,
    TouchCaller,
)
from api.schemas.common import (
    DEFAULT_PAGE_LIMIT,
    ERROR_RESPONSES,
    CursorQuery,
    Instant,
    Integer,
    LimitQuery,
    MemberId,
    Page,
    StrictModel,
    from_row,
)
from api.schemas.contacts import ComplaintOut
from domain.clock import ensure_aware
from domain.contact_policy import service as gate
from domain.crm import service as crm
from domain.crm.models import CallListStrategy
from domain.staff.rules import may_work_any_lead

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
    at: Instant | None = None


# GET /v1/crm/members/lookup is a hot route: api/hot.py.


@router.post("/v1/crm/members/{member_id}/notes", response_model=NoteOut, status_code=201,
             summary="Record what the agent learned (structured fields and free text)")
def add_note(member_id: MemberId, body: NoteIn, session: SessionDep, caller: AgentCaller, now: NowDep) -> NoteOut:
    note = crm.add_note(session, member_id=member_id, agent_id=_agent(caller), fields=body.fields, text=body.text,
                        now=now)
    return NoteOut.model_validate(note, from_attributes=True)


class InterestOut(BaseModel):
    id: int
    member_id: int
    product: str
    source: str
    at: datetime


@router.post("/v1/members/{member_id}/interests", status_code=201, response_model=InterestOut,
             summary="Record that the member asked about a product (a warm-lead clue)")
def add_interest(member_id: MemberId, body: InterestIn, session: SessionDep, caller: TouchCaller,
                 now: NowDep) -> InterestOut:
    event = crm.record_interest(session, member_id=member_id, product=body.product, source=body.source,
                                at=ensure_aware(body.at) if body.at else now)
    return InterestOut.model_validate(event, from_attributes=True)


class CallListIn(StrictModel):
    name: str = Field(min_length=1, max_length=100)
    product: str = Field(min_length=1, max_length=64)
    purpose: str = Field(default="marketing", pattern="^(marketing|care|service)$")
    audience: dict[str, Any] = Field(default_factory=dict,
                                     description="tiers, cities, statuses, lifecycle_stages (lists); min_age, "
                                                 "max_age (years); organisations (ids), organisation_roles; "
                                                 "at_risk (true/false)")
    strategy: CallListStrategy = Field(default=CallListStrategy.WEIGHTED,
                                       description="weighted (the weights below), or churn: the at-risk list, "
                                                   "highest churn risk first")
    weights: dict[str, StrictFloat] = Field(default_factory=dict, description="value, churn, loyalty, lookalike")
    interest_days: Integer = Field(default=30, ge=1, le=365)
    recall_hours: Integer = Field(default=48, ge=1, le=24 * 30)
    agent_capacity: Integer = Field(default=20, ge=1, le=1000)


class LeadOut(BaseModel):
    id: int
    call_list_id: int
    member_id: int
    priority: float
    band: int
    reason: str
    state: str
    agent_id: str | None
    assigned_at: datetime | None


class OutcomeIn(StrictModel):
    outcome: str = Field(pattern="^(reached|no_answer|wrong_number|accepted|declined|callback|do_not_call)$")
    callback_at: Instant | None = None
    note: str = Field(default="", max_length=2000)
    lead_id: Integer | None = Field(default=None, ge=1, le=2**31 - 1)


def _agent(caller: Caller) -> str:
    """The logged-in staff member's username (AgentCaller admits only staff, so it is always there)."""
    assert caller.agent_id is not None
    return caller.agent_id


ListId = Annotated[int, Path(ge=1, le=2**31 - 1)]


class CallListOut(BaseModel):
    id: int
    name: str
    product: str
    purpose: str
    audience: dict[str, Any]
    strategy: CallListStrategy
    weights: dict[str, float]
    interest_days: int
    recall_hours: int
    agent_capacity: int
    exclusions: dict[str, int]
    extracted_at: datetime | None
    created_at: datetime


@router.get("/v1/crm/call-lists", response_model=Page[CallListOut], summary="Call lists, newest first")
def list_call_lists(session: SessionDep, caller: CrmCaller,
                    purpose: Annotated[str | None, Query(pattern="^(marketing|care|service)$")] = None,
                    cursor: CursorQuery = None, limit: LimitQuery = DEFAULT_PAGE_LIMIT) -> Page[CallListOut]:
    page = crm.list_call_lists(session, purpose=purpose, cursor=cursor, limit=limit)
    return Page[CallListOut].of(page, lambda c: from_row(CallListOut, c))


@router.get("/v1/crm/call-lists/{call_list_id}", response_model=CallListOut, summary="One call list")
def get_call_list(call_list_id: ListId, session: SessionDep, caller: CrmCaller) -> CallListOut:
    return from_row(CallListOut, crm.get_call_list(session, call_list_id=call_list_id))


@router.get("/v1/crm/call-lists/{call_list_id}/leads", response_model=Page[LeadOut],
            summary="A call list's leads in dialling order (highest priority first)")
def list_leads(call_list_id: ListId, session: SessionDep, caller: CrmCaller,
               state: Annotated[str | None, Query(pattern="^(pooled|assigned|worked)$")] = None,
               band: Annotated[int | None, Query(ge=1, le=3)] = None,
               agent_id: Annotated[str | None, Query(min_length=1, max_length=64)] = None,
               cursor: CursorQuery = None, limit: LimitQuery = DEFAULT_PAGE_LIMIT) -> Page[LeadOut]:
    page = crm.list_leads(session, call_list_id=call_list_id, state=state, band=band, agent_id=agent_id,
                          cursor=cursor, limit=limit)
    return Page[LeadOut].of(page, lambda lead: from_row(LeadOut, lead))


@router.post("/v1/crm/call-lists", status_code=201, response_model=CallListOut,
             summary="Define an outbound call list (marketers, supervisors)")
def create_call_list(body: CallListIn, session: SessionDep, caller: MarketingCaller, now: NowDep) -> CallListOut:
    return from_row(CallListOut, crm.create_call_list(session, now=now, **body.model_dump()))


class ExtractionOut(BaseModel):
    leads_by_band: dict[str, int] = Field(description="Leads in the list after this extraction, by priority band")
    excluded: dict[str, int] = Field(description="Audience members left out, by reason (each member counted once)")


@router.post("/v1/crm/call-lists/{call_list_id}/extract", response_model=ExtractionOut,
             summary="Extract prioritised leads, with exclusions by reason")
def extract(call_list_id: ListId, session: SessionDep, caller: MarketingCaller, now: NowDep) -> ExtractionOut:
    return ExtractionOut(**crm.extract_leads(session, call_list_id=call_list_id, now=now))


class LeadPullOut(BaseModel):
    lead: LeadOut | None
    """The lead handed out, or null when none may be called now."""
    skipped: int
    """Leads passed over because the contact gate would not let a call through now."""
    skipped_by_reason: dict[str, int]
    """The gate's reasons (``quiet_hours``, ``cap:marketing_calls``, ``complaint_cooldown`` …), one count per reason."""
    next_callable_at: datetime | None
    """When the earliest skipped lead becomes callable (null: none becomes callable by waiting)."""


@router.post("/v1/crm/call-lists/{call_list_id}/next-lead", response_model=LeadPullOut,
             summary="The calling agent's next lead that may be called now (own members first, then by priority), "
                     "with the leads the contact gate held back by reason and when the next becomes callable")
def pull_lead(call_list_id: ListId, session: SessionDep, caller: AgentCaller, now: NowDep) -> LeadPullOut:
    pulled = crm.pull_next_lead(session, call_list_id=call_list_id, agent_id=_agent(caller), now=now)
    return LeadPullOut(lead=LeadOut.model_validate(pulled.lead, from_attributes=True) if pulled.lead else None,
                       skipped=pulled.skipped, skipped_by_reason=pulled.skipped_by_reason,
                       next_callable_at=pulled.next_callable_at)


class BandReportOut(BaseModel):
    band: int
    leads: int
    dialled: int
    reached: int
    accepted: int
    conversion: float | None = Field(description="Accepted per dialled; null before the first call")


class CallListReportOut(BaseModel):
    call_list_id: int
    name: str
    product: str
    leads: int
    dialled: int
    reached: int
    accepted: int
    excluded: dict[str, int]
    by_band: list[BandReportOut]


@router.get("/v1/crm/call-lists/{call_list_id}/report", response_model=CallListReportOut,
            summary="Dialled, reached, accepted, conversion by band")
def report(call_list_id: ListId, session: SessionDep, caller: CrmCaller) -> CallListReportOut:
    return CallListReportOut.model_validate(crm.call_list_report(session, call_list_id=call_list_id))


class CallOutcomeOut(BaseModel):
    id: int
    member_id: int
    outcome: str
    agent_id: str
    callback_at: datetime | None
    at: datetime


@router.post("/v1/crm/members/{member_id}/call-outcomes", status_code=201, response_model=CallOutcomeOut,
             summary="Record a call's outcome; do_not_call opts out at once, callback books a gated phone touch")
def call_outcome(member_id: MemberId, body: OutcomeIn, session: SessionDep, caller: AgentCaller,
                 now: NowDep) -> CallOutcomeOut:
    assert caller.role is not None
    record = crm.record_call_outcome(session, member_id=member_id, agent_id=_agent(caller), outcome=body.outcome,
                                     any_lead=may_work_any_lead(caller.role),
                                     note=body.note, lead_id=body.lead_id, now=now,
                                     callback_at=ensure_aware(body.callback_at) if body.callback_at else None)
    return CallOutcomeOut.model_validate(record, from_attributes=True)


@router.get("/v1/complaints", response_model=Page[ComplaintOut], tags=["contacts"],
            summary="Complaints across members, latest first (open ones: the supervisor's queue)")
def list_complaints(session: SessionDep, caller: CrmCaller,
                    open_only: Annotated[bool, Query(description="Only unresolved complaints")] = False,
                    category: Annotated[str | None, Query(min_length=1, max_length=40)] = None,
                    member_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
                    cursor: CursorQuery = None, limit: LimitQuery = DEFAULT_PAGE_LIMIT) -> Page[ComplaintOut]:
    page = gate.list_complaints(session, open_only=open_only, category=category, member_id=member_id,
                                cursor=cursor, limit=limit)
    return Page[ComplaintOut].of(page, lambda c: from_row(ComplaintOut, c))
