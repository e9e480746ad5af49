"""The contact gate over HTTP: eligibility, touch requests and history, consents, complaints."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from api.deps import Caller, CrmCaller, MemberDataCaller, NowDep, SessionDep, TouchCaller
from api.schemas.common import ERROR_RESPONSES, MemberId, from_row
from api.schemas.contacts import (
    ComplaintIn,
    ComplaintOut,
    ComplaintResolve,
    ConsentIn,
    DecisionOut,
    TouchIn,
    TouchOut,
)
from domain.clock import ensure_aware
from domain.contact_policy import service as gate
from domain.contact_policy.rules import Purpose
from domain.members import service as members
from domain.members.models import ConsentStatus, ContactChannel
from domain.touchpoints import service as touchpoints

router = APIRouter(prefix="/v1/members/{member_id}", tags=["contacts"], responses=ERROR_RESPONSES)


@router.get("/contact-eligibility", response_model=DecisionOut,
            summary="Dry run: may this member be contacted now on this channel for this purpose, and if not, when")
def eligibility(member_id: MemberId, channel: ContactChannel, purpose: Purpose, session: SessionDep,
                caller: TouchCaller, now: NowDep) -> DecisionOut:
    decision = gate.evaluate_contact(session, member_id=member_id, channel=channel, purpose=purpose, now=now)
    return DecisionOut(verdict=decision.verdict, reasons=list(decision.reasons), send_at=decision.send_at,
                       next_allowed_at=decision.next_allowed_at)


def touch_source(caller: Caller, source: str | None) -> str:
    """The touch's source always starts with the caller's namespace (``api:<key name>``, ``staff:<username>``),
    optionally narrowed by the caller's own ``source``: a caller can neither replay nor pre-empt another's
    idempotency keys, nor a journey's or a campaign's (``journey:…``, ``campaign:…``)."""
    return f"{caller.namespace}/{source}" if source else caller.namespace


@router.post("/contacts", response_model=TouchOut, status_code=201,
             summary="Request a touch through the gate (idempotent by idempotency_key within the caller's source)")
def request_contact(member_id: MemberId, body: TouchIn, response: Response, session: SessionDep, caller: TouchCaller,
                    now: NowDep) -> TouchOut:
    touch, replayed = gate.request_templated_touch(
        session, member_id=member_id, channel=body.channel, purpose=body.purpose,
        source=touch_source(caller, body.source), idempotency_key=body.idempotency_key, template=body.template,
        variables=body.variables, now=now, not_before=ensure_aware(body.not_before) if body.not_before else None)
    if replayed:
        response.status_code = 200
    return from_row(TouchOut, touch, replayed=replayed)


@router.get("/contacts", response_model=list[TouchOut], summary="Touches with their decisions and reasons")
def contact_history(member_id: MemberId, session: SessionDep, caller: MemberDataCaller,
                    limit: Annotated[int, Query(ge=1, le=200)] = 50,
                    before_id: Annotated[int | None, Query(ge=1)] = None) -> list[TouchOut]:
    members.get_member(session, member_id=member_id)
    return [from_row(TouchOut, t) for t in touchpoints.touches_of(session, member_id=member_id, limit=limit,
                                                                  before_id=before_id)]


@router.put("/consents/{channel}", response_model=dict[ContactChannel, ConsentStatus],
            summary="Grant or withdraw consent for a channel; an opt-out holds from this moment")
def put_consent(member_id: MemberId, channel: ContactChannel, body: ConsentIn, session: SessionDep,
                caller: MemberDataCaller, now: NowDep) -> dict[ContactChannel, ConsentStatus]:
    members.get_member(session, member_id=member_id)
    members.set_consent(session, member_id=member_id, channel=channel, granted=body.granted, source=caller.actor,
                        now=now)
    return members.consents_of(session, member_id=member_id)


@router.post("/complaints", response_model=ComplaintOut, status_code=201,
             summary="Record a complaint: no marketing contact for the cool-down period")
def complain(member_id: MemberId, body: ComplaintIn, session: SessionDep, caller: CrmCaller,
             now: NowDep) -> ComplaintOut:
    complaint = gate.record_complaint(session, member_id=member_id, category=body.category, note=body.note,
                                      actor=caller.actor, now=now)
    return from_row(ComplaintOut, complaint)


@router.get("/complaints", response_model=list[ComplaintOut], summary="The member's complaints, newest first")
def list_complaints(member_id: MemberId, session: SessionDep, caller: CrmCaller) -> list[ComplaintOut]:
    members.get_member(session, member_id=member_id)
    return [from_row(ComplaintOut, c) for c in gate.complaints_of(session, member_id=member_id)]


@router.post("/complaints/{complaint_id}/resolve", response_model=ComplaintOut, summary="Resolve a complaint")
def resolve(member_id: MemberId, complaint_id: Annotated[int, Path(ge=1, le=2**31 - 1)], body: ComplaintResolve,
            session: SessionDep, caller: CrmCaller, now: NowDep) -> ComplaintOut:
    complaint = gate.resolve_complaint(session, member_id=member_id, complaint_id=complaint_id,
                                       resolution=body.resolution, actor=caller.actor, now=now)
    return from_row(ComplaintOut, complaint)
