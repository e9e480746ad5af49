"""Group-customer request and response bodies."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from pydantic import BaseModel, Field, StrictBool

from api.schemas.common import MAX_ID, Day, Instant, Integer, StrictModel
from domain.organisations.models import FamilyRelation, OrganisationRole, RevenueClass

StaffId = Annotated[Integer, Field(ge=1, le=MAX_ID, description="A staff account's id")]
Tier = Annotated[str, Field(pattern="^[ABCD]$")]


class OrganisationCreate(StrictModel):
    name: str = Field(min_length=1, max_length=200)
    revenue_class: RevenueClass
    industry: str | None = Field(default=None, max_length=64)
    size: Integer | None = Field(default=None, ge=0, le=10_000_000, description="Employees")
    service_tier: Tier | None = Field(default=None, description="Default: by revenue class")
    key_account: StrictBool | None = Field(default=None, description="Default: revenue class 'key'")
    importance: Integer = Field(default=0, ge=0, le=5)
    visits_per_year: Integer | None = Field(default=None, ge=0, le=365)


class OrganisationUpdate(StrictModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    revenue_class: RevenueClass | None = None
    industry: str | None = Field(default=None, max_length=64)
    size: Integer | None = Field(default=None, ge=0, le=10_000_000)
    service_tier: Tier | None = None
    key_account: StrictBool | None = None
    importance: Integer | None = Field(default=None, ge=0, le=5)
    visits_per_year: Integer | None = Field(default=None, ge=0, le=365)
    do_not_contact: StrictBool | None = Field(default=None, description="No marketing or care to any of its people")
    do_not_contact_reason: str | None = Field(default=None, max_length=200)


class OrganisationOut(BaseModel):
    id: int
    name: str
    industry: str | None
    size: int | None
    revenue_class: RevenueClass
    service_tier: str
    key_account: bool
    importance: int
    manager_staff_id: int | None
    visits_per_year: int | None
    do_not_contact: bool
    do_not_contact_reason: str | None
    created_at: datetime
    updated_at: datetime


class ContractIn(StrictModel):
    reference: str = Field(min_length=1, max_length=64)
    kind: str = Field(default="contract", pattern="^(contract|framework)$")
    starts_on: Day
    ends_on: Day


class ContractOut(BaseModel):
    id: int
    organisation_id: int
    reference: str
    kind: str
    starts_on: date
    ends_on: date
    replayed: bool = False


class ImportantDateIn(StrictModel):
    label: str = Field(min_length=1, max_length=100)
    on_date: Day


class ManagerIn(StrictModel):
    staff_id: StaffId


class OrganisationMemberIn(StrictModel):
    role: OrganisationRole


class OrganisationMemberOut(BaseModel):
    id: int
    organisation_id: int
    member_id: int
    role: OrganisationRole
    linked_at: datetime
    removed_at: datetime | None
    replayed: bool = False


class FamilyLinkIn(StrictModel):
    relative_id: Integer = Field(ge=1, le=MAX_ID)
    relation: FamilyRelation = Field(description="What the relative is to the member")
    consent_source: str = Field(min_length=1, max_length=100, description="How the member agreed (form, app, call)")
    consented_at: Instant | None = None


class FamilyLinkOut(BaseModel):
    id: int
    member_id: int
    relative_id: int
    relation: FamilyRelation
    consent_source: str
    consented_at: datetime
    linked_at: datetime
    removed_at: datetime | None
    replayed: bool = False


class TreatmentOut(BaseModel):
    """The tier the member is served at and where it comes from."""

    tier: str
    own_tier: str
    source: str = Field(description="own, organisation or family")
    organisation_id: int | None
    organisation: str | None
    role: str | None
    via_member_id: int | None
    via_member: str | None
    relation: str | None = Field(description="What the member is to via_member")
    explanation: str


class PoolIn(StrictModel):
    owner_member_id: Integer = Field(ge=1, le=MAX_ID, description="The member whose account holds the pool")
    name: str = Field(min_length=1, max_length=100)


class PoolMemberIn(StrictModel):
    consent_source: str = Field(min_length=1, max_length=100, description="How the member agreed to pool")


class FollowUp(StrictModel):
    action: str = Field(min_length=1, max_length=200)
    due_on: Day | None = None
    owner_staff_id: Integer | None = Field(default=None, ge=1, le=MAX_ID)


class VisitIn(StrictModel):
    staff_id: Integer | None = Field(default=None, ge=1, le=MAX_ID, description="Default: the logged-in staff member")
    visited_at: Instant
    summary: str = Field(default="", max_length=4000)
    needs: list[Annotated[str, Field(max_length=200)]] = Field(default_factory=list, max_length=50)
    follow_ups: list[FollowUp] = Field(default_factory=list, max_length=50)


class AccountComplaintIn(StrictModel):
    category: str = Field(min_length=1, max_length=40)
    note: str = Field(default="", max_length=2000)
    owner_staff_id: Integer | None = Field(default=None, ge=1, le=MAX_ID, description="Default: the account manager")


class ComplaintResponseIn(StrictModel):
    response: str = Field(min_length=1, max_length=2000)


class AllocationIn(StrictModel):
    staff_ids: list[StaffId] = Field(min_length=1, max_length=500, description="The managers to allocate among")


# --- answers ---------------------------------------------------------------------------------------------------

class ImportantDateOut(BaseModel):
    id: int
    organisation_id: int
    kind: str
    label: str
    on_date: date


class TeamRoleOut(BaseModel):
    """A staff account in a named role of the account team."""

    organisation_id: int
    staff_id: int
    role: str
    added_at: datetime


class OrganisationPersonOut(BaseModel):
    member_id: int
    role: OrganisationRole
    linked_at: datetime


class OrganisationDetailOut(OrganisationOut):
    """The account with its contracts, important dates, team and current people."""

    contracts: list[ContractOut]
    important_dates: list[ImportantDateOut]
    team: list[TeamRoleOut]
    people: list[OrganisationPersonOut]


class PoolMemberOut(BaseModel):
    member_id: int
    pool_id: int
    consent_source: str
    joined_at: datetime


class PoolOut(BaseModel):
    """A family's points pool: the owner whose account holds it, and who contributes."""

    id: int
    name: str
    owner_member_id: int
    created_at: datetime
    members: list[PoolMemberOut]


class SweepOut(BaseModel):
    points_pooled: int
    contributors: int


class AllocationOut(BaseModel):
    allocated: dict[int, int] = Field(description="account id → manager's staff id")
    unallocated: list[int] = Field(description="accounts no manager may take (every candidate at the cap)")


class FollowUpOut(BaseModel):
    action: str
    due_on: date | None = None
    owner_staff_id: int | None = None


class VisitOut(BaseModel):
    id: int
    organisation_id: int
    staff_id: int
    visited_at: datetime
    summary: str
    needs: list[str]
    follow_ups: list[FollowUpOut]
    created_at: datetime
    replayed: bool = False


class VisitPlanOut(BaseModel):
    organisation_id: int
    visits_per_year: int
    visits_per_month: float
    last_visit_at: datetime | None
    next_visit_due: datetime | None
    overdue: bool
    recent_visits: list[VisitOut]


class VisitReportLine(BaseModel):
    """One manager's month: accounts held, visits their plans call for, visits done."""

    staff_id: int
    accounts: int
    planned: float
    done: int
    done_ratio: float | None


class AccountComplaintOut(BaseModel):
    id: int
    organisation_id: int
    owner_staff_id: int
    category: str
    note: str
    opened_at: datetime
    respond_by: datetime
    responded_at: datetime | None
    response: str | None
    actor: str
    overdue: bool | None = Field(default=None, description="In the list: unanswered past the deadline")
