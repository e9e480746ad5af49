"""Group customers (集团客户): organisations, their contracts and important dates, the account team, the
members who belong to them, family links between members, and the treatment those links grant.

Staff are held by id (``*_staff_id``), each a foreign key to the staff accounts (issue #15's table); the
services refuse an id that names no active account with a 404 before the key would.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

from domain.db import utc_column


class RevenueClass(StrEnum):
    """How much the organisation buys; it sets the default service level and visit frequency."""

    KEY = "key"
    LARGE = "large"
    MEDIUM = "medium"
    SMALL = "small"


class OrganisationRole(StrEnum):
    """A member's place in an organisation."""

    KEY_CONTACT = "key_contact"
    """A decision maker the account team deals with."""
    LEADER = "leader"
    EMPLOYEE = "employee"


class FamilyRelation(StrEnum):
    """What the relative is to the member: ``(member, relative, child)`` reads "relative is member's child"."""

    SPOUSE = "spouse"
    PARENT = "parent"
    CHILD = "child"


class Organisation(SQLModel, table=True):
    """An organisation that buys as a customer (an account)."""

    __tablename__ = "organisations"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200, unique=True)
    industry: str | None = Field(default=None, max_length=64)
    size: int | None = None
    """Number of employees."""
    revenue_class: RevenueClass = Field(sa_type=sa.String(10))  # type: ignore[call-overload]
    service_tier: str = Field(max_length=1)
    """The account's service level (a tier of the staircase) that its people share."""
    key_account: bool = False
    """Counted against the account manager's cap of key accounts."""
    importance: int = 0
    """0–5: allocation order among accounts of one revenue class."""
    manager_staff_id: int | None = Field(default=None, index=True, foreign_key="staff_accounts.id")
    """The account manager (客户经理), a staff account's id."""
    visits_per_year: int | None = None
    """The visit plan; None: the default for the revenue class."""
    do_not_contact: bool = False
    """No marketing or care to any of its people (service still reaches them)."""
    do_not_contact_reason: str | None = Field(default=None, max_length=200)
    created_at: datetime = utc_column()
    updated_at: datetime = utc_column()


class OrganisationDate(SQLModel, table=True):
    """An important date of the account (founding anniversary), greeted every year."""

    __tablename__ = "organisation_dates"
    __table_args__ = (sa.UniqueConstraint("organisation_id", "kind"),)

    id: int | None = Field(default=None, primary_key=True)
    organisation_id: int = Field(foreign_key="organisations.id")
    kind: str = Field(max_length=40)
    label: str = Field(max_length=100)
    on_date: date


class Contract(SQLModel, table=True):
    """A contract or framework agreement with its term; an end in the next months is a churn signal."""

    __tablename__ = "organisation_contracts"
    __table_args__ = (sa.UniqueConstraint("organisation_id", "reference"),
                      sa.CheckConstraint("ends_on >= starts_on", name="term_ordered"))

    id: int | None = Field(default=None, primary_key=True)
    organisation_id: int = Field(foreign_key="organisations.id")
    reference: str = Field(max_length=64)
    kind: str = Field(max_length=20)
    """``contract`` or ``framework``."""
    starts_on: date
    ends_on: date
    created_at: datetime = utc_column()


class AccountTeamMember(SQLModel, table=True):
    """A named role in the account team (the manager is ``Organisation.manager_staff_id``)."""

    __tablename__ = "account_team"

    organisation_id: int = Field(foreign_key="organisations.id", primary_key=True)
    staff_id: int = Field(primary_key=True, foreign_key="staff_accounts.id")
    role: str = Field(max_length=40, primary_key=True)
    """E.g. ``deputy``, ``service``, ``technical``."""
    added_at: datetime = utc_column()


class OrganisationMember(SQLModel, table=True):
    """A member in an organisation in a role. Removing the link sets ``removed_at``: history is kept, and
    the treatment it granted ends at the next evaluation."""

    __tablename__ = "organisation_members"
    __table_args__ = (
        sa.Index("uq_organisation_members_current", "organisation_id", "member_id", unique=True,
                 postgresql_where=sa.text("removed_at IS NULL")),
        sa.Index("ix_organisation_members_member_id", "member_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    organisation_id: int = Field(foreign_key="organisations.id")
    member_id: int = Field(foreign_key="members.id")
    role: OrganisationRole = Field(sa_type=sa.String(20))  # type: ignore[call-overload]
    linked_at: datetime = utc_column()
    removed_at: datetime | None = utc_column(nullable=True)
    actor: str = Field(max_length=130)


class FamilyLink(SQLModel, table=True):
    """``relative_id`` is ``member_id``'s spouse, parent or child, recorded with the member's consent."""

    __tablename__ = "family_links"
    __table_args__ = (
        sa.CheckConstraint("member_id <> relative_id", name="not_self"),
        sa.Index("uq_family_links_current", "member_id", "relative_id", unique=True,
                 postgresql_where=sa.text("removed_at IS NULL")),
        sa.Index("ix_family_links_relative_id", "relative_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    member_id: int = Field(foreign_key="members.id")
    relative_id: int = Field(foreign_key="members.id")
    relation: FamilyRelation = Field(sa_type=sa.String(10))  # type: ignore[call-overload]
    consent_source: str = Field(max_length=100)
    """How the member agreed to the link (signed form, app, call recording id)."""
    consented_at: datetime = utc_column()
    linked_at: datetime = utc_column()
    removed_at: datetime | None = utc_column(nullable=True)
    actor: str = Field(max_length=130)


class SharedTreatment(SQLModel, table=True):
    """The best tier a member holds through a link, as of the last evaluation, with where it comes from.
    Granted at once when a link is made; taken away only by the next evaluation."""

    __tablename__ = "member_shared_treatment"

    member_id: int = Field(foreign_key="members.id", primary_key=True)
    tier: str = Field(max_length=1)
    organisation_id: int = Field(foreign_key="organisations.id")
    role: str = Field(max_length=20)
    """The role in the organisation that grants it (the holder's own, or the relative's)."""
    via_member_id: int | None = Field(default=None, foreign_key="members.id")
    """The relative through whom it comes (None: the member's own link to the organisation)."""
    relation: str | None = Field(default=None, max_length=10)
    evaluated_at: datetime = utc_column()


class AccountVisit(SQLModel, table=True):
    """A visit to the account, with the needs heard and the follow-ups promised."""

    __tablename__ = "account_visits"
    __table_args__ = (sa.UniqueConstraint("organisation_id", "staff_id", "visited_at"),
                      sa.Index("ix_account_visits_staff_id_visited_at", "staff_id", "visited_at"))

    id: int | None = Field(default=None, primary_key=True)
    organisation_id: int = Field(foreign_key="organisations.id")
    staff_id: int = Field(foreign_key="staff_accounts.id")
    visited_at: datetime = utc_column()
    summary: str = Field(default="", max_length=4000)
    needs: list[str] = Field(default_factory=list, sa_column=sa.Column(JSONB, nullable=False, server_default="[]"))
    follow_ups: list[dict[str, Any]] = Field(default_factory=list,
                                             sa_column=sa.Column(JSONB, nullable=False, server_default="[]"))
    """``[{"action", "due_on", "owner_staff_id"}]``."""
    created_at: datetime = utc_column()


class AccountComplaint(SQLModel, table=True):
    """A complaint of the account (not of one person), with an owner and a response deadline."""

    __tablename__ = "account_complaints"
    __table_args__ = (sa.Index("ix_account_complaints_organisation_id_opened_at", "organisation_id", "opened_at"),)

    id: int | None = Field(default=None, primary_key=True)
    organisation_id: int = Field(foreign_key="organisations.id")
    owner_staff_id: int = Field(foreign_key="staff_accounts.id")
    category: str = Field(max_length=40)
    note: str = Field(default="", max_length=2000)
    opened_at: datetime = utc_column()
    respond_by: datetime = utc_column()
    responded_at: datetime | None = utc_column(nullable=True)
    response: str | None = Field(default=None, max_length=2000)
    actor: str = Field(max_length=130)


class PointsPool(SQLModel, table=True):
    """A family's pooled points: members' available points are moved into the named owner's account (through
    the points ledger), where the owner spends them. Optional; earning stays with whoever bought."""

    __tablename__ = "points_pools"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=100)
    owner_member_id: int = Field(foreign_key="members.id", unique=True)
    created_at: datetime = utc_column()


class PointsPoolMember(SQLModel, table=True):
    """A member contributing to a pool (at most one pool each), with their consent."""

    __tablename__ = "points_pool_members"

    member_id: int = Field(foreign_key="members.id", primary_key=True)
    pool_id: int = Field(foreign_key="points_pools.id", index=True)
    consent_source: str = Field(max_length=100)
    joined_at: datetime = utc_column()
