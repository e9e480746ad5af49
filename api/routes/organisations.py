"""Group customers: accounts, contracts, the account team, people in roles, families, shared treatment."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response

from api.deps import AdminCaller, Caller, CrmCaller, MemberDataCaller, NowDep, SessionDep, allow
from api.schemas.common import ERROR_RESPONSES, MAX_ID, MemberId, from_row
from api.schemas.organisations import (
    AccountComplaintIn,
    AccountComplaintOut,
    AllocationIn,
    AllocationOut,
    ComplaintResponseIn,
    ContractIn,
    ContractOut,
    FamilyLinkIn,
    FamilyLinkOut,
    ImportantDateIn,
    ImportantDateOut,
    ManagerIn,
    OrganisationCreate,
    OrganisationDetailOut,
    OrganisationMemberIn,
    OrganisationMemberOut,
    OrganisationOut,
    OrganisationUpdate,
    PoolIn,
    PoolMemberIn,
    PoolOut,
    SweepOut,
    TeamRoleOut,
    TreatmentOut,
    VisitIn,
    VisitOut,
    VisitPlanOut,
    VisitReportLine,
)
from domain.access.rules import RouteAccess
from domain.clock import ensure_aware
from domain.errors import InvalidInput
from domain.members.service import get_member
from domain.organisations import service as orgs
from domain.staff.models import StaffRole

router = APIRouter(tags=["organisations"], responses=ERROR_RESPONSES)

ACCOUNT_WORK = RouteAccess(roles=frozenset({StaffRole.SUPERVISOR, StaffRole.OPERATOR}))
"""Opening and changing accounts, contracts, the account team and managers' allocation: supervisors lead the
account managers (and operators, and an admin key for automation)."""
AccountCaller = Annotated[Caller, Depends(allow(ACCOUNT_WORK))]

OrganisationId = Annotated[int, Path(ge=1, le=MAX_ID, description="The organisation's id")]
StaffPath = Annotated[int, Path(ge=1, le=MAX_ID, description="A staff account's id")]
RolePath = Annotated[str, Path(min_length=1, max_length=40, pattern="^[a-z_]+$")]
KindPath = Annotated[str, Path(min_length=1, max_length=40, pattern="^[a-z_]+$")]


@router.post("/v1/organisations", response_model=OrganisationOut, status_code=201,
             summary="Open an account (service level and key-account status default by revenue class)")
def create_organisation(body: OrganisationCreate, session: SessionDep, caller: AccountCaller,
                        now: NowDep) -> OrganisationOut:
    org = orgs.create_organisation(session, now=now, **body.model_dump())
    return from_row(OrganisationOut, org)


@router.get("/v1/organisations/{organisation_id}", response_model=OrganisationDetailOut,
            summary="The account: profile, contracts, dates, team, people")
def read_organisation(organisation_id: OrganisationId, session: SessionDep, caller: CrmCaller,
                      now: NowDep) -> dict[str, Any]:
    org = orgs.get_organisation(session, organisation_id=organisation_id)
    return {**from_row(OrganisationOut, org).model_dump(),
            "contracts": [c.model_dump() for c in orgs.contracts_of(session, organisation_id=organisation_id)],
            "important_dates": [d.model_dump() for d in orgs.important_dates_of(session,
                                                                               organisation_id=organisation_id)],
            "team": [t.model_dump() for t in orgs.team_of(session, organisation_id=organisation_id)],
            "people": [{"member_id": p.member_id, "role": p.role, "linked_at": p.linked_at}
                       for p in orgs.people_of(session, organisation_id=organisation_id, as_of=now)]}


@router.patch("/v1/organisations/{organisation_id}", response_model=OrganisationOut,
              summary="Change the account (a lower service level reaches its people at the next evaluation)")
def update_organisation(organisation_id: OrganisationId, body: OrganisationUpdate, session: SessionDep,
                        caller: AccountCaller, now: NowDep) -> OrganisationOut:
    org = orgs.update_organisation(session, organisation_id=organisation_id,
                                   changes=body.model_dump(exclude_unset=True), now=now)
    return from_row(OrganisationOut, org)


@router.post("/v1/organisations/{organisation_id}/contracts", response_model=ContractOut, status_code=201,
             summary="Record a contract or framework agreement (idempotent by reference)")
def add_contract(organisation_id: OrganisationId, body: ContractIn, response: Response, session: SessionDep,
                 caller: AccountCaller, now: NowDep) -> ContractOut:
    contract, replayed = orgs.add_contract(session, organisation_id=organisation_id, now=now, **body.model_dump())
    if replayed:
        response.status_code = 200
    return from_row(ContractOut, contract, replayed=replayed)


@router.put("/v1/organisations/{organisation_id}/dates/{kind}", response_model=ImportantDateOut,
            summary="Record an important date of the account (e.g. founding_anniversary)")
def set_important_date(organisation_id: OrganisationId, kind: KindPath, body: ImportantDateIn, session: SessionDep,
                       caller: CrmCaller) -> dict[str, Any]:
    row = orgs.set_important_date(session, organisation_id=organisation_id, kind=kind, label=body.label,
                                  on_date=body.on_date)
    return row.model_dump()


@router.put("/v1/organisations/{organisation_id}/manager", response_model=OrganisationOut,
            summary="Allocate the account to a manager (refused over the manager's key-account cap)")
def allocate_manager(organisation_id: OrganisationId, body: ManagerIn, session: SessionDep, caller: AccountCaller,
                     now: NowDep) -> OrganisationOut:
    org = orgs.allocate_manager(session, organisation_id=organisation_id, staff_id=body.staff_id, now=now)
    return from_row(OrganisationOut, org)


@router.put("/v1/organisations/{organisation_id}/team/{staff_id}/{role}", status_code=200,
            response_model=TeamRoleOut,
            summary="Name a staff member in a role of the account team")
def set_team_role(organisation_id: OrganisationId, staff_id: StaffPath, role: RolePath, session: SessionDep,
                  caller: AccountCaller, now: NowDep) -> dict[str, Any]:
    return orgs.set_team_role(session, organisation_id=organisation_id, staff_id=staff_id, role=role,
                              now=now).model_dump()


@router.delete("/v1/organisations/{organisation_id}/team/{staff_id}/{role}", status_code=204,
               summary="Remove a staff member's role in the account team")
def remove_team_role(organisation_id: OrganisationId, staff_id: StaffPath, role: RolePath, session: SessionDep,
                     caller: AccountCaller) -> Response:
    orgs.remove_team_role(session, organisation_id=organisation_id, staff_id=staff_id, role=role)
    return Response(status_code=204)


@router.put("/v1/organisations/{organisation_id}/members/{member_id}", response_model=OrganisationMemberOut,
            summary="Put a member in the organisation in a role (its treatment applies at once)")
def link_member(organisation_id: OrganisationId, member_id: MemberId, body: OrganisationMemberIn,
                session: SessionDep, caller: CrmCaller, now: NowDep) -> OrganisationMemberOut:
    link, replayed = orgs.link_member(session, organisation_id=organisation_id, member_id=member_id, role=body.role,
                                      actor=caller.actor, now=now)
    return from_row(OrganisationMemberOut, link, replayed=replayed)


@router.delete("/v1/organisations/{organisation_id}/members/{member_id}", response_model=OrganisationMemberOut,
               summary="End a member's link (what it granted ends at the next tier evaluation)")
def unlink_member(organisation_id: OrganisationId, member_id: MemberId, session: SessionDep, caller: CrmCaller,
                  now: NowDep) -> OrganisationMemberOut:
    link = orgs.unlink_member(session, organisation_id=organisation_id, member_id=member_id, now=now)
    return from_row(OrganisationMemberOut, link)


@router.post("/v1/members/{member_id}/family", response_model=FamilyLinkOut, status_code=201,
             summary="Link a relative (spouse, parent, child) with the member's consent recorded")
def link_family(member_id: MemberId, body: FamilyLinkIn, response: Response, session: SessionDep, caller: CrmCaller,
                now: NowDep) -> FamilyLinkOut:
    link, replayed = orgs.link_family(
        session, member_id=member_id, relative_id=body.relative_id, relation=body.relation,
        consent_source=body.consent_source, actor=caller.actor, now=now,
        consented_at=ensure_aware(body.consented_at) if body.consented_at else now)
    if replayed:
        response.status_code = 200
    return from_row(FamilyLinkOut, link, replayed=replayed)


@router.delete("/v1/family-links/{link_id}", response_model=FamilyLinkOut,
               summary="End a family link (what it granted ends at the next tier evaluation)")
def unlink_family(link_id: Annotated[int, Path(ge=1, le=MAX_ID)], session: SessionDep, caller: CrmCaller,
                  now: NowDep) -> FamilyLinkOut:
    return from_row(FamilyLinkOut, orgs.unlink_family(session, link_id=link_id, now=now))


@router.get("/v1/members/{member_id}/treatment", response_model=TreatmentOut,
            summary="The tier the member is served at and where it comes from (own, organisation, family)")
def treatment(member_id: MemberId, session: SessionDep, caller: MemberDataCaller) -> TreatmentOut:
    member = get_member(session, member_id=member_id)
    assert member.id is not None
    view = orgs.treatment_of(session, member_id=member.id, own_tier=member.tier)
    return TreatmentOut.model_validate(view.as_dict())


PoolId = Annotated[int, Path(ge=1, le=MAX_ID, description="The points pool's id")]


def _pool_out(session: SessionDep, pool_id: int) -> dict[str, Any]:
    pool = orgs.get_pool(session, pool_id=pool_id)
    return {**pool.model_dump(), "members": [m.model_dump() for m in orgs.pool_members(session, pool_id=pool_id)]}


@router.post("/v1/points-pools", status_code=201, response_model=PoolOut,
             summary="Open a family's points pool, held in the named owner's points account")
def create_pool(body: PoolIn, session: SessionDep, caller: CrmCaller, now: NowDep) -> dict[str, Any]:
    pool = orgs.create_pool(session, owner_member_id=body.owner_member_id, name=body.name, now=now)
    assert pool.id is not None
    return _pool_out(session, pool.id)


@router.put("/v1/points-pools/{pool_id}/members/{member_id}", response_model=PoolOut,
            summary="A relative of the owner pools their points, with consent")
def join_pool(pool_id: PoolId, member_id: MemberId, body: PoolMemberIn, session: SessionDep, caller: CrmCaller,
              now: NowDep) -> dict[str, Any]:
    orgs.join_pool(session, pool_id=pool_id, member_id=member_id, consent_source=body.consent_source, now=now)
    return _pool_out(session, pool_id)


@router.delete("/v1/points-pools/{pool_id}/members/{member_id}", response_model=PoolOut,
               summary="Stop pooling (what was pooled stays with the owner)")
def leave_pool(pool_id: PoolId, member_id: MemberId, session: SessionDep, caller: CrmCaller) -> dict[str, Any]:
    orgs.leave_pool(session, pool_id=pool_id, member_id=member_id)
    return _pool_out(session, pool_id)


@router.post("/v1/points-pools/{pool_id}/sweep", response_model=SweepOut,
             summary="Move the members' available points to the owner now (the pool-points job does it nightly)")
def sweep_pool(pool_id: PoolId, session: SessionDep, caller: AdminCaller, now: NowDep) -> dict[str, Any]:
    return orgs.sweep_pool(session, pool_id=pool_id, sweep_key=now.isoformat(), now=now)


@router.post("/v1/organisations/allocate", response_model=AllocationOut,
             summary="Allocate accounts without a manager: key accounts first, relationship, load, the cap")
def allocate_accounts(body: AllocationIn, session: SessionDep, caller: AccountCaller, now: NowDep) -> dict[str, Any]:
    return orgs.allocate_accounts(session, staff_ids=body.staff_ids, now=now)


@router.post("/v1/organisations/{organisation_id}/visits", status_code=201, response_model=VisitOut,
             summary="Log a visit with needs and follow-ups (the same visit again is a replay)")
def record_visit(organisation_id: OrganisationId, body: VisitIn, response: Response, session: SessionDep,
                 caller: CrmCaller, now: NowDep) -> dict[str, Any]:
    staff_id = body.staff_id or caller.staff_id
    if staff_id is None:
        raise InvalidInput("name the visiting staff member (staff_id) or log in as them", code="staff_required")
    visit, replayed = orgs.record_visit(
        session, organisation_id=organisation_id, staff_id=staff_id, visited_at=ensure_aware(body.visited_at),
        summary=body.summary, needs=body.needs, now=now,
        follow_ups=[f.model_dump(mode="json") for f in body.follow_ups])
    if replayed:
        response.status_code = 200
    return {**visit.model_dump(), "replayed": replayed}


@router.get("/v1/organisations/{organisation_id}/visit-plan", response_model=VisitPlanOut,
            summary="The account's visit frequency, last visit, next due, recent visits")
def visit_plan(organisation_id: OrganisationId, session: SessionDep, caller: CrmCaller,
               now: NowDep) -> dict[str, Any]:
    return orgs.visit_plan(session, organisation_id=organisation_id, now=now)


@router.get("/v1/account-managers/visit-report", response_model=list[VisitReportLine],
            summary="Per manager, one month: accounts, visits planned by each account's plan, visits done")
def visit_report(month: Annotated[str, Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$", examples=["2026-03"])],
                 session: SessionDep, caller: CrmCaller) -> list[dict[str, Any]]:
    start, end = orgs.month_bounds(month)
    return orgs.visit_report(session, month_start=start, month_end=end)


@router.post("/v1/organisations/{organisation_id}/complaints", status_code=201,
             response_model=AccountComplaintOut,
             summary="A complaint of the account, with an owner and a response deadline")
def open_complaint(organisation_id: OrganisationId, body: AccountComplaintIn, session: SessionDep,
                   caller: CrmCaller, now: NowDep) -> dict[str, Any]:
    return orgs.open_account_complaint(session, organisation_id=organisation_id, category=body.category,
                                       note=body.note, owner_staff_id=body.owner_staff_id, actor=caller.actor,
                                       now=now).model_dump()


@router.get("/v1/organisations/{organisation_id}/complaints", response_model=list[AccountComplaintOut],
            summary="The account's complaints, overdue flagged")
def list_complaints(organisation_id: OrganisationId, session: SessionDep, caller: CrmCaller,
                    now: NowDep) -> list[dict[str, Any]]:
    return orgs.account_complaints(session, organisation_id=organisation_id, now=now)


@router.post("/v1/organisations/{organisation_id}/complaints/{complaint_id}/response",
             response_model=AccountComplaintOut,
             summary="Answer an account complaint (the first answer stands)")
def respond_complaint(organisation_id: OrganisationId, complaint_id: Annotated[int, Path(ge=1, le=MAX_ID)],
                      body: ComplaintResponseIn, session: SessionDep, caller: CrmCaller,
                      now: NowDep) -> dict[str, Any]:
    return orgs.respond_account_complaint(session, organisation_id=organisation_id, complaint_id=complaint_id,
                                          response=body.response, now=now).model_dump()
