"""Group-customer use cases: accounts, contracts, the account team and its manager, members' roles in
organisations, family links, and the treatment those links share."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from domain.db import advisory_xact_lock, among
from domain.errors import Conflict, InvalidInput, NotFound, PolicyRefused
from domain.events.service import record_event
from domain.members import service as members
from domain.organisations.models import (
    AccountComplaint,
    AccountTeamMember,
    AccountVisit,
    Contract,
    FamilyLink,
    FamilyRelation,
    Organisation,
    OrganisationDate,
    OrganisationMember,
    OrganisationRole,
    PointsPool,
    PointsPoolMember,
    RevenueClass,
    SharedTreatment,
)
from domain.organisations.rules import (
    EFFECTIVE_TIER_SQL,
    Grant,
    ManagerLoad,
    SharingPolicy,
    Treatment,
    allocation_order,
    choose_manager,
    effective_tier,
    explain,
    may_take_key_account,
    shared_treatment_sql,
    sharing_params,
    visits_planned,
)
from domain.points import service as points
from domain.settings import get_settings
from domain.staff import service as staff
from domain.tiers.rules import ORDER


def sharing_policy() -> SharingPolicy:
    settings = get_settings()
    return SharingPolicy(roles=frozenset(settings.account_service_roles),
                         relations=frozenset(settings.account_service_relations))


# --- organisations ----------------------------------------------------------------------------------------

ORGANISATION_FIELDS = ("name", "industry", "size", "revenue_class", "service_tier", "key_account", "importance",
                       "visits_per_year", "do_not_contact", "do_not_contact_reason")


def _check_tier(tier: str) -> None:
    if tier not in ORDER:
        raise InvalidInput(f"unknown tier {tier!r}", code="invalid_tier", details={"tiers": list(ORDER)})


def create_organisation(session: Session, *, name: str, revenue_class: RevenueClass, now: datetime,
                        industry: str | None = None, size: int | None = None, service_tier: str | None = None,
                        key_account: bool | None = None, importance: int = 0, visits_per_year: int | None = None
                        ) -> Organisation:
    """Open an account. Its service level defaults by revenue class; a key-class account is a key account."""
    tier = service_tier or get_settings().revenue_class_service_tier[revenue_class.value]
    _check_tier(tier)
    org = Organisation(name=name, industry=industry, size=size, revenue_class=revenue_class, service_tier=tier,
                       key_account=revenue_class == RevenueClass.KEY if key_account is None else key_account,
                       importance=importance, visits_per_year=visits_per_year, created_at=now, updated_at=now)
    session.add(org)
    try:
        with session.begin_nested():
            session.flush()
    except sa.exc.IntegrityError as exc:
        raise Conflict(f"organisation {name!r} exists", code="organisation_exists", details={"name": name}) from exc
    return org


def get_organisation(session: Session, *, organisation_id: int, for_update: bool = False) -> Organisation:
    query = select(Organisation).where(Organisation.id == organisation_id)
    org = session.exec(query.with_for_update() if for_update else query).first()
    if org is None:
        raise NotFound(f"organisation {organisation_id} not found", code="organisation_not_found",
                       details={"organisation_id": organisation_id})
    return org


def update_organisation(session: Session, *, organisation_id: int, changes: dict[str, Any], now: datetime
                        ) -> Organisation:
    """Change the account's profile. A lower service level reaches its people at the next evaluation; making
    an allocated account a key account counts against its manager's cap."""
    unknown = set(changes) - set(ORGANISATION_FIELDS)
    if unknown:
        raise InvalidInput("unknown organisation fields", code="unknown_fields", details={"fields": sorted(unknown)})
    if "service_tier" in changes:
        _check_tier(changes["service_tier"])
    org = get_organisation(session, organisation_id=organisation_id)
    manager = org.manager_staff_id
    if changes.get("key_account") and not org.key_account and manager is not None:
        _lock_manager(session, manager)
        org = get_organisation(session, organisation_id=organisation_id, for_update=True)
        _refuse_over_cap(session, staff_id=manager, organisation_id=organisation_id)
    for key, value in changes.items():
        setattr(org, key, value)
    org.updated_at = now
    session.add(org)
    session.flush()
    if changes.get("service_tier"):
        _grant_at_once(session, member_ids=_people_of(session, organisation_ids=[organisation_id], as_of=now),
                       now=now)
    return org


def add_contract(session: Session, *, organisation_id: int, reference: str, kind: str, starts_on: date,
                 ends_on: date, now: datetime) -> tuple[Contract, bool]:
    """Record a contract or framework agreement; idempotent by (organisation, reference)."""
    if kind not in ("contract", "framework"):
        raise InvalidInput("kind is contract or framework", code="invalid_contract_kind")
    if ends_on < starts_on:
        raise InvalidInput("a contract ends after it starts", code="invalid_contract_term")
    get_organisation(session, organisation_id=organisation_id)
    advisory_xact_lock(session, "contract", organisation_id, reference)
    existing = session.exec(select(Contract).where(Contract.organisation_id == organisation_id,
                                                   Contract.reference == reference)).first()
    if existing is not None:
        if (existing.kind, existing.starts_on, existing.ends_on) != (kind, starts_on, ends_on):
            raise Conflict(f"contract {reference} was recorded with other values", code="contract_conflict",
                           details={"contract_id": existing.id})
        return existing, True
    contract = Contract(organisation_id=organisation_id, reference=reference, kind=kind, starts_on=starts_on,
                        ends_on=ends_on, created_at=now)
    session.add(contract)
    session.flush()
    return contract, False


def contracts_of(session: Session, *, organisation_id: int) -> list[Contract]:
    return list(session.exec(select(Contract).where(Contract.organisation_id == organisation_id)
                             .order_by(col(Contract.ends_on))))


def set_important_date(session: Session, *, organisation_id: int, kind: str, label: str, on_date: date
                       ) -> OrganisationDate:
    """Record (or move) one of the account's important dates, e.g. its founding anniversary."""
    get_organisation(session, organisation_id=organisation_id)
    session.execute(sa.text(
        "INSERT INTO organisation_dates (organisation_id, kind, label, on_date) VALUES (:o, :k, :l, :d) "
        "ON CONFLICT (organisation_id, kind) DO UPDATE SET label = EXCLUDED.label, on_date = EXCLUDED.on_date"),
        {"o": organisation_id, "k": kind, "l": label, "d": on_date})
    row = session.exec(select(OrganisationDate).where(OrganisationDate.organisation_id == organisation_id,
                                                      OrganisationDate.kind == kind)
                       .execution_options(populate_existing=True)).one()
    return row


def important_dates_of(session: Session, *, organisation_id: int) -> list[OrganisationDate]:
    return list(session.exec(select(OrganisationDate).where(OrganisationDate.organisation_id == organisation_id)
                             .order_by(col(OrganisationDate.kind))))


# --- the account team and its manager ------------------------------------------------------------------------

def _lock_manager(session: Session, staff_id: int) -> None:
    """Allocations to one manager queue here, so two cannot both take the last place under the cap."""
    advisory_xact_lock(session, "account-manager", staff_id)


def _refuse_over_cap(session: Session, *, staff_id: int, organisation_id: int) -> None:
    held = session.scalar(sa.select(sa.func.count()).select_from(Organisation).where(
        col(Organisation.manager_staff_id) == staff_id, col(Organisation.key_account).is_(True),
        col(Organisation.id) != organisation_id)) or 0
    cap = get_settings().key_accounts_per_manager
    if not may_take_key_account(held=held, cap=cap):
        raise PolicyRefused(f"manager {staff_id} already holds {held} key accounts (cap {cap})",
                            code="manager_at_capacity", details={"staff_id": staff_id, "held": held, "cap": cap})


def allocate_manager(session: Session, *, organisation_id: int, staff_id: int, now: datetime) -> Organisation:
    """Make ``staff_id`` the account's manager. A manager holds at most the cap of key accounts; the one
    over it is refused, however many allocations race (they queue on the manager's lock)."""
    staff.require_staff(session, staff_ids=[staff_id])
    _lock_manager(session, staff_id)
    org = get_organisation(session, organisation_id=organisation_id, for_update=True)
    if org.manager_staff_id == staff_id:
        return org
    if org.key_account:
        _refuse_over_cap(session, staff_id=staff_id, organisation_id=organisation_id)
    previous = org.manager_staff_id
    org.manager_staff_id, org.updated_at = staff_id, now
    session.add(org)
    session.flush()
    record_event(session, kind="account.manager_allocated", member_id=None,
                 payload={"organisation_id": organisation_id, "staff_id": staff_id, "previous": previous}, now=now)
    return org


def set_team_role(session: Session, *, organisation_id: int, staff_id: int, role: str, now: datetime
                  ) -> AccountTeamMember:
    """Name a staff member in a role of the account team (idempotent)."""
    get_organisation(session, organisation_id=organisation_id)
    staff.require_staff(session, staff_ids=[staff_id])
    session.execute(sa.text("INSERT INTO account_team (organisation_id, staff_id, role, added_at) "
                            "VALUES (:o, :s, :r, :now) ON CONFLICT DO NOTHING"),
                    {"o": organisation_id, "s": staff_id, "r": role, "now": now})
    row = session.get(AccountTeamMember, (organisation_id, staff_id, role))
    assert row is not None
    return row


def remove_team_role(session: Session, *, organisation_id: int, staff_id: int, role: str) -> None:
    session.execute(sa.delete(AccountTeamMember).where(
        col(AccountTeamMember.organisation_id) == organisation_id, col(AccountTeamMember.staff_id) == staff_id,
        col(AccountTeamMember.role) == role))


def team_of(session: Session, *, organisation_id: int) -> list[AccountTeamMember]:
    return list(session.exec(select(AccountTeamMember).where(AccountTeamMember.organisation_id == organisation_id)
                             .order_by(col(AccountTeamMember.role), col(AccountTeamMember.staff_id))))


# --- members in organisations, families ---------------------------------------------------------------------

def link_member(session: Session, *, organisation_id: int, member_id: int, role: OrganisationRole, actor: str,
                now: datetime) -> tuple[OrganisationMember, bool]:
    """Put a member in the organisation in a role; the treatment it carries applies at once. The same link
    again is a replay; another role replaces the current one (a lost benefit ends at the next evaluation)."""
    get_organisation(session, organisation_id=organisation_id)
    members.get_member(session, member_id=member_id)
    advisory_xact_lock(session, "organisation-member", organisation_id, member_id)
    current = _current_link(session, organisation_id=organisation_id, member_id=member_id)
    if current is not None:
        if current.role == role:
            return current, True
        current.removed_at = now
        session.add(current)
        session.flush()
    link = OrganisationMember(organisation_id=organisation_id, member_id=member_id, role=role, linked_at=now,
                              actor=actor)
    session.add(link)
    session.flush()
    _grant_at_once(session, member_ids=[member_id, *_relative_ids(session, member_id=member_id, as_of=now)], now=now)
    return link, False


def _current_link(session: Session, *, organisation_id: int, member_id: int) -> OrganisationMember | None:
    return session.exec(select(OrganisationMember).where(
        OrganisationMember.organisation_id == organisation_id, OrganisationMember.member_id == member_id,
        col(OrganisationMember.removed_at).is_(None))).first()


def unlink_member(session: Session, *, organisation_id: int, member_id: int, now: datetime) -> OrganisationMember:
    """End a member's link to the organisation. What it granted ends at the next evaluation, not now."""
    advisory_xact_lock(session, "organisation-member", organisation_id, member_id)
    current = _current_link(session, organisation_id=organisation_id, member_id=member_id)
    if current is None:
        raise NotFound(f"member {member_id} is not in organisation {organisation_id}", code="link_not_found")
    current.removed_at = now
    session.add(current)
    session.flush()
    return current


def people_of(session: Session, *, organisation_id: int, as_of: datetime) -> list[OrganisationMember]:
    """The organisation's current people with their roles."""
    return list(session.exec(select(OrganisationMember).where(
        OrganisationMember.organisation_id == organisation_id, col(OrganisationMember.linked_at) <= as_of,
        sa.or_(col(OrganisationMember.removed_at).is_(None), col(OrganisationMember.removed_at) > as_of))
        .order_by(col(OrganisationMember.member_id))))


def _people_of(session: Session, *, organisation_ids: list[int], as_of: datetime) -> list[int]:
    """Members linked to the organisations and their relatives (who may share the treatment)."""
    direct = list(session.scalars(sa.select(OrganisationMember.member_id).where(  # type: ignore[call-overload]
        among(col(OrganisationMember.organisation_id), organisation_ids),
        col(OrganisationMember.removed_at).is_(None))))
    out = set(direct)
    for member_id in direct:
        out.update(_relative_ids(session, member_id=member_id, as_of=as_of))
    return sorted(out)


def _current_ties(session: Session, member_id: int) -> list[FamilyLink]:
    return list(session.exec(select(FamilyLink).where(
        sa.or_(col(FamilyLink.member_id) == member_id, col(FamilyLink.relative_id) == member_id),
        col(FamilyLink.removed_at).is_(None)).order_by(col(FamilyLink.id))))


def _relative_ids(session: Session, *, member_id: int, as_of: datetime) -> list[int]:
    return [t.relative_id if t.member_id == member_id else t.member_id for t in _current_ties(session, member_id)]


def link_family(session: Session, *, member_id: int, relative_id: int, relation: FamilyRelation,
                consent_source: str, consented_at: datetime, actor: str, now: datetime) -> tuple[FamilyLink, bool]:
    """Record that ``relative_id`` is ``member_id``'s spouse, parent or child, with the member's consent.
    Shared treatment reaches the family at once. One current link per pair, whichever way it was recorded."""
    if member_id == relative_id:
        raise InvalidInput("a member is not their own relative", code="invalid_family_link")
    if not consent_source.strip():
        raise InvalidInput("a family link needs the member's consent", code="consent_required")
    members.get_member(session, member_id=member_id)
    members.get_member(session, member_id=relative_id)
    low, high = sorted((member_id, relative_id))
    advisory_xact_lock(session, "family", low, high)
    existing = session.exec(select(FamilyLink).where(
        sa.or_(sa.and_(col(FamilyLink.member_id) == member_id, col(FamilyLink.relative_id) == relative_id),
               sa.and_(col(FamilyLink.member_id) == relative_id, col(FamilyLink.relative_id) == member_id)),
        col(FamilyLink.removed_at).is_(None))).first()
    if existing is not None:
        from domain.organisations.rules import INVERSE_RELATION

        same = ((existing.member_id, existing.relation) == (member_id, relation)
                or (existing.member_id, existing.relation) == (relative_id, INVERSE_RELATION[relation]))
        if not same:
            raise Conflict(f"members {member_id} and {relative_id} are already linked as {existing.relation}",
                           code="family_link_exists", details={"link_id": existing.id})
        return existing, True
    link = FamilyLink(member_id=member_id, relative_id=relative_id, relation=relation, consent_source=consent_source,
                      consented_at=consented_at, linked_at=now, actor=actor)
    session.add(link)
    session.flush()
    _grant_at_once(session, member_ids=[member_id, relative_id], now=now)
    return link, False


def unlink_family(session: Session, *, link_id: int, now: datetime) -> FamilyLink:
    """End a family link. What it granted ends at the next evaluation, not now."""
    link = session.exec(select(FamilyLink).where(FamilyLink.id == link_id).with_for_update()).first()
    if link is None:
        raise NotFound(f"family link {link_id} not found", code="family_link_not_found")
    if link.removed_at is None:
        link.removed_at = now
        session.add(link)
        session.flush()
    return link


def family_of(session: Session, *, member_id: int) -> list[FamilyLink]:
    """The member's current family links, recorded in either direction."""
    return _current_ties(session, member_id)


# --- shared treatment ---------------------------------------------------------------------------------------

# One statement changes the stored treatment of a set of members and records a ``treatment.changed`` event for
# each member whose served tier (own, or better through a link) it changes — a link added lifting it, a removed
# link's grant taken away at the evaluation. ``old`` is the statement's snapshot, so it reads the rows as they
# were before the DELETE and the upsert beside it.
CHANGE_SQL = """
WITH old AS (
    SELECT member_id, tier FROM member_shared_treatment WHERE {members_where}
), removed AS (
    {remove}
), upserted AS (
    INSERT INTO member_shared_treatment (member_id, tier, organisation_id, role, via_member_id, relation,
                                         evaluated_at)
    SELECT member_id, tier, organisation_id, role, via_member_id, relation, :now FROM ({best}) best
    ON CONFLICT (member_id) DO UPDATE SET tier = EXCLUDED.tier, organisation_id = EXCLUDED.organisation_id,
        role = EXCLUDED.role, via_member_id = EXCLUDED.via_member_id, relation = EXCLUDED.relation,
        evaluated_at = EXCLUDED.evaluated_at
    {only_better}
    RETURNING member_id, tier, organisation_id, role, via_member_id, relation
), served AS (
    SELECT m.id AS member_id, {before} AS before, {after} AS after, u.organisation_id, u.role, u.via_member_id,
           u.relation
    FROM members m
    LEFT JOIN old o ON o.member_id = m.id
    LEFT JOIN upserted u ON u.member_id = m.id
    CROSS JOIN LATERAL (SELECT CASE WHEN u.member_id IS NOT NULL THEN u.tier
                                    WHEN m.id IN (SELECT member_id FROM removed) THEN NULL
                                    ELSE o.tier END AS tier) a
    WHERE m.id IN (SELECT member_id FROM old UNION SELECT member_id FROM upserted)
), events AS (
    INSERT INTO domain_events (kind, member_id, payload, occurred_at)
    SELECT 'treatment.changed', member_id,
           jsonb_build_object('from', before, 'to', after, 'organisation_id', organisation_id, 'role', role,
                              'via_member_id', via_member_id, 'relation', relation), :now
    FROM served WHERE before IS DISTINCT FROM after
    RETURNING 1
)
SELECT (SELECT count(*) FROM removed) AS removed, (SELECT count(*) FROM upserted) AS held,
       (SELECT count(*) FROM events) AS changed
""".replace("{before}", EFFECTIVE_TIER_SQL.format(shared="o", member="m")).replace(
    "{after}", EFFECTIVE_TIER_SQL.format(shared="a", member="m"))
ONLY_BETTER = ("WHERE array_position(ARRAY['D','C','B','A'], EXCLUDED.tier) "
               "> array_position(ARRAY['D','C','B','A'], member_shared_treatment.tier)")
NOTHING_REMOVED = "SELECT CAST(NULL AS integer) AS member_id WHERE FALSE"


def _grant_at_once(session: Session, *, member_ids: list[int], now: datetime) -> None:
    """A new link's treatment applies at once (like an upgrade on spend); nothing is taken away here."""
    if not member_ids:
        return
    where = "member_id = ANY(CAST(:ids AS bigint[]))"
    best = shared_treatment_sql(members_where=where)
    session.execute(sa.text(CHANGE_SQL.format(members_where=where, remove=NOTHING_REMOVED, best=best,
                                              only_better=ONLY_BETTER)),
                    {**sharing_params(sharing_policy(), now), "ids": sorted(set(member_ids)), "now": now})


def evaluate_shared_treatment(session: Session, *, as_of: datetime, member_range: tuple[int, int], now: datetime
                              ) -> dict[str, int]:
    """The scheduled evaluation for members in the id range: each holds the best treatment the links current
    at ``as_of`` grant, and loses what a removed link granted; each change of a served tier is an event.
    Re-running at the same ``as_of`` changes nothing."""
    params = {**sharing_params(sharing_policy(), as_of), "lo": member_range[0], "hi": member_range[1], "now": now}
    where = "member_id BETWEEN :lo AND :hi"
    best = shared_treatment_sql(members_where=where)
    remove = (f"DELETE FROM member_shared_treatment t WHERE t.member_id BETWEEN :lo AND :hi "
              f"AND NOT EXISTS (SELECT 1 FROM ({best}) b WHERE b.member_id = t.member_id) RETURNING t.member_id")
    row = session.execute(sa.text(CHANGE_SQL.format(members_where=where, remove=remove, best=best, only_better="")),
                          params).one()
    return {"shared_removed": int(row.removed), "shared_held": int(row.held),
            "shared_served_tier_changed": int(row.changed)}


@dataclass(frozen=True)
class TreatmentView:
    treatment: Treatment
    organisation_name: str | None
    via_name: str | None

    def as_dict(self) -> dict[str, Any]:
        grant = self.treatment.grant
        return {
            "tier": self.treatment.tier, "own_tier": self.treatment.own_tier, "source": self.treatment.source,
            "organisation_id": grant.organisation_id if grant else None,
            "organisation": self.organisation_name, "role": grant.role if grant else None,
            "via_member_id": grant.via_member_id if grant else None, "via_member": self.via_name,
            "relation": grant.relation if grant else None,
            "explanation": explain(self.treatment, organisation_name=self.organisation_name, via_name=self.via_name),
        }


def treatment_of(session: Session, *, member_id: int, own_tier: str) -> TreatmentView:
    """The tier the member is served at and where it comes from (own, organisation X, family of Y)."""
    row = session.get(SharedTreatment, member_id)
    grant = (Grant(row.tier, row.organisation_id, row.role, row.via_member_id, row.relation)
             if row is not None else None)
    treatment = effective_tier(own_tier, grant)
    org_name = via_name = None
    if treatment.grant is not None:
        org_name = get_organisation(session, organisation_id=treatment.grant.organisation_id).name
        if treatment.grant.via_member_id is not None:
            via_name = members.get_member(session, member_id=treatment.grant.via_member_id).name
    return TreatmentView(treatment, org_name, via_name)


def served_tier_sql(member: str) -> str:
    """The query piece "the tier the member is served at" — their own, or a better one an organisation or family
    link grants (``rules.EFFECTIVE_TIER_SQL``) — for the members row ``member`` (lists and exports)."""
    return (f"coalesce((SELECT {EFFECTIVE_TIER_SQL.format(shared='st', member=member)} "
            f"FROM member_shared_treatment st WHERE st.member_id = {member}.id), {member}.tier)")


def served_tiers(session: Session, *, member_ids: list[int]) -> dict[int, str]:
    """The tier each member is served at, for a list of members, in one statement."""
    if not member_ids:
        return {}
    rows = session.execute(sa.text(f"SELECT m.id, {served_tier_sql('m')} FROM members m "
                                   "WHERE m.id = ANY(CAST(:ids AS bigint[]))"), {"ids": sorted(set(member_ids))}).all()
    return {int(member_id): str(tier) for member_id, tier in rows}


def treatment_from_row(*, own_tier: str, row: dict[str, Any] | None) -> TreatmentView:
    """The same view from the CRM picture's one statement (``CRM_PICTURE_COLUMNS``)."""
    grant = (Grant(row["tier"], row["organisation_id"], row["role"], row["via_member_id"], row["relation"])
             if row else None)
    return TreatmentView(effective_tier(own_tier, grant), row["organisation"] if row else None,
                         row["via_member"] if row else None)


def member_id_bounds(session: Session) -> tuple[int, int]:
    """Members who hold or may gain a shared treatment (for chunking the evaluation)."""
    row = session.execute(sa.text(
        "SELECT coalesce(min(id), 0), coalesce(max(id), -1) FROM ("
        "SELECT member_id AS id FROM member_shared_treatment UNION ALL SELECT member_id FROM organisation_members "
        "UNION ALL SELECT member_id FROM family_links UNION ALL SELECT relative_id FROM family_links) s")).one()
    return int(row[0]), int(row[1])


# --- the CRM lookup's piece ----------------------------------------------------------------------------------

CRM_PICTURE_COLUMNS = """
  (SELECT json_agg(g) FROM (SELECT o.id AS organisation_id, o.name, om.role, o.manager_staff_id,
       o.service_tier, o.do_not_contact
     FROM organisation_members om JOIN organisations o ON o.id = om.organisation_id
     WHERE om.member_id = :m AND om.removed_at IS NULL ORDER BY o.id) g) AS organisations,
  (SELECT json_agg(f) FROM (SELECT fl.id AS link_id,
       CASE WHEN fl.member_id = :m THEN fl.relative_id ELSE fl.member_id END AS member_id,
       r.name,
       CASE WHEN fl.member_id = :m THEN fl.relation
            WHEN fl.relation = 'parent' THEN 'child' WHEN fl.relation = 'child' THEN 'parent'
            ELSE fl.relation END AS relation,
       fl.consent_source, fl.consented_at
     FROM family_links fl
     JOIN members r ON r.id = CASE WHEN fl.member_id = :m THEN fl.relative_id ELSE fl.member_id END
     WHERE (fl.member_id = :m OR fl.relative_id = :m) AND fl.removed_at IS NULL ORDER BY fl.id) f) AS family,
  (SELECT row_to_json(s) FROM (SELECT t.tier, t.organisation_id, o.name AS organisation, t.role, t.via_member_id,
       v.name AS via_member, t.relation
     FROM member_shared_treatment t JOIN organisations o ON o.id = t.organisation_id
     LEFT JOIN members v ON v.id = t.via_member_id WHERE t.member_id = :m) s) AS shared_treatment
"""
"""Columns the CRM picture's one statement selects for member ``:m``: organisations with role and account
manager, family links (what each relative is to the member), and the shared treatment with its source."""


# --- pooled points --------------------------------------------------------------------------------------------

def create_pool(session: Session, *, owner_member_id: int, name: str, now: datetime) -> PointsPool:
    """Open a family's points pool held in the owner's account (one pool per owner)."""
    members.get_member(session, member_id=owner_member_id)
    advisory_xact_lock(session, "points-pool-owner", owner_member_id)
    existing = session.exec(select(PointsPool).where(PointsPool.owner_member_id == owner_member_id)).first()
    if existing is not None:
        return existing
    if session.get(PointsPoolMember, owner_member_id) is not None:
        raise Conflict(f"member {owner_member_id} contributes to another pool", code="already_pooled")
    pool = PointsPool(name=name, owner_member_id=owner_member_id, created_at=now)
    session.add(pool)
    session.flush()
    return pool


def get_pool(session: Session, *, pool_id: int) -> PointsPool:
    pool = session.get(PointsPool, pool_id)
    if pool is None:
        raise NotFound(f"points pool {pool_id} not found", code="pool_not_found")
    return pool


def join_pool(session: Session, *, pool_id: int, member_id: int, consent_source: str, now: datetime
              ) -> PointsPoolMember:
    """A relative of the owner agrees to pool their points; only family (a current link) may join."""
    pool = get_pool(session, pool_id=pool_id)
    if not consent_source.strip():
        raise InvalidInput("pooling needs the member's consent", code="consent_required")
    if member_id == pool.owner_member_id:
        raise InvalidInput("the owner holds the pool", code="owner_in_pool")
    if pool.owner_member_id not in _relative_ids(session, member_id=member_id, as_of=now):
        raise PolicyRefused(f"member {member_id} is not family of the pool's owner", code="not_family")
    advisory_xact_lock(session, "points-pool-member", member_id)
    current = session.get(PointsPoolMember, member_id)
    if current is not None:
        if current.pool_id != pool_id:
            raise Conflict(f"member {member_id} contributes to pool {current.pool_id}", code="already_pooled")
        return current
    if session.exec(select(PointsPool).where(PointsPool.owner_member_id == member_id)).first() is not None:
        raise Conflict(f"member {member_id} owns a pool", code="already_pooled")
    row = PointsPoolMember(member_id=member_id, pool_id=pool_id, consent_source=consent_source, joined_at=now)
    session.add(row)
    session.flush()
    return row


def leave_pool(session: Session, *, pool_id: int, member_id: int) -> None:
    """Stop contributing (what was pooled stays with the owner)."""
    get_pool(session, pool_id=pool_id)
    session.execute(sa.delete(PointsPoolMember).where(col(PointsPoolMember.member_id) == member_id,
                                                      col(PointsPoolMember.pool_id) == pool_id))


def pool_members(session: Session, *, pool_id: int) -> list[PointsPoolMember]:
    return list(session.exec(select(PointsPoolMember).where(PointsPoolMember.pool_id == pool_id)
                             .order_by(col(PointsPoolMember.member_id))))


def sweep_pool(session: Session, *, pool_id: int, sweep_key: str, now: datetime) -> dict[str, int]:
    """Move every contributor's available points into the owner's account through the points ledger.
    Idempotent by ``sweep_key`` (the job uses the as-of date): a repeated sweep moves nothing twice."""
    pool = get_pool(session, pool_id=pool_id)
    moved = contributors = 0
    for row in pool_members(session, pool_id=pool_id):
        entry, replayed = points.transfer_points(session, from_member_id=row.member_id,
                                                 to_member_id=pool.owner_member_id,
                                                 transfer_id=f"{pool_id}:{row.member_id}:{sweep_key}", now=now)
        if entry is not None and not replayed:
            moved += entry.available_delta
            contributors += 1
    return {"points_pooled": moved, "contributors": contributors}


def pool_ids(session: Session) -> list[int]:
    return list(session.scalars(sa.select(PointsPool.id).order_by(PointsPool.id)))  # type: ignore[call-overload]


# --- account management: allocation, visits, account complaints ----------------------------------------------

def allocate_accounts(session: Session, *, staff_ids: list[int], now: datetime) -> dict[str, Any]:
    """Allocate every account without a manager among ``staff_ids``: key accounts first, then by revenue
    class and importance; each to a manager already in its team if any, else the least loaded, never over
    the key-account cap (each allocation goes through ``allocate_manager``, so racing callers stay safe)."""
    cap = get_settings().key_accounts_per_manager
    staff.require_staff(session, staff_ids=staff_ids)
    rows = session.execute(sa.text(
        "SELECT id, revenue_class, key_account, importance FROM organisations WHERE manager_staff_id IS NULL")).all()
    allocated: dict[int, int] = {}
    unallocated: list[int] = []
    for org_id in allocation_order((r[0], r[1], r[2], r[3]) for r in rows):
        loads = _manager_loads(session, staff_ids=staff_ids, organisation_id=org_id)
        org = get_organisation(session, organisation_id=org_id)
        chosen = choose_manager(key_account=org.key_account, candidates=loads, cap=cap)
        if chosen is None:
            unallocated.append(org_id)
            continue
        try:
            with session.begin_nested():
                allocate_manager(session, organisation_id=org_id, staff_id=chosen, now=now)
            allocated[org_id] = chosen
        except PolicyRefused:  # another allocation took the manager's last place meanwhile
            unallocated.append(org_id)
    return {"allocated": allocated, "unallocated": unallocated}


def _manager_loads(session: Session, *, staff_ids: list[int], organisation_id: int) -> list[ManagerLoad]:
    rows = {r[0]: (int(r[1]), int(r[2])) for r in session.execute(sa.text(
        "SELECT manager_staff_id, count(*) FILTER (WHERE key_account), count(*) FROM organisations "
        "WHERE manager_staff_id = ANY(CAST(:ids AS bigint[])) GROUP BY manager_staff_id"), {"ids": staff_ids})}
    team = set(session.scalars(sa.select(AccountTeamMember.staff_id).where(  # type: ignore[call-overload]
        col(AccountTeamMember.organisation_id) == organisation_id)))
    return [ManagerLoad(s, *rows.get(s, (0, 0)), related=s in team) for s in staff_ids]


def visits_per_year(org: Organisation) -> int:
    """The account's visit plan: its own, else the default for its revenue class."""
    if org.visits_per_year is not None:
        return org.visits_per_year
    return get_settings().revenue_class_visits_per_year.get(str(org.revenue_class), 0)


def record_visit(session: Session, *, organisation_id: int, staff_id: int, visited_at: datetime, summary: str,
                 needs: list[str], follow_ups: list[dict[str, Any]], now: datetime) -> tuple[AccountVisit, bool]:
    """Log a visit with the needs heard and follow-ups promised; the same visit again is a replay."""
    get_organisation(session, organisation_id=organisation_id)
    staff.require_staff(session, staff_ids=[staff_id])
    advisory_xact_lock(session, "visit", organisation_id, staff_id, visited_at.isoformat())
    existing = session.exec(select(AccountVisit).where(AccountVisit.organisation_id == organisation_id,
                                                       AccountVisit.staff_id == staff_id,
                                                       AccountVisit.visited_at == visited_at)).first()
    if existing is not None:
        return existing, True
    visit = AccountVisit(organisation_id=organisation_id, staff_id=staff_id, visited_at=visited_at, summary=summary,
                         needs=needs, follow_ups=follow_ups, created_at=now)
    session.add(visit)
    session.flush()
    return visit, False


def visit_plan(session: Session, *, organisation_id: int, now: datetime) -> dict[str, Any]:
    """How often the account is to be visited, the last visit, and when the next is due."""
    org = get_organisation(session, organisation_id=organisation_id)
    per_year = visits_per_year(org)
    last = session.scalar(sa.select(sa.func.max(AccountVisit.visited_at)).where(
        col(AccountVisit.organisation_id) == organisation_id, col(AccountVisit.visited_at) <= now))
    due = None
    if per_year > 0:
        due = (last + timedelta(days=365 / per_year)) if last else now
    recent = session.exec(select(AccountVisit).where(AccountVisit.organisation_id == organisation_id)
                          .order_by(col(AccountVisit.visited_at).desc()).limit(10)).all()
    return {"organisation_id": organisation_id, "visits_per_year": per_year,
            "visits_per_month": visits_planned(per_year), "last_visit_at": last, "next_visit_due": due,
            "overdue": due is not None and due < now,
            "recent_visits": [v.model_dump() for v in recent]}


def visit_report(session: Session, *, month_start: datetime, month_end: datetime) -> list[dict[str, Any]]:
    """Per account manager, for one month: accounts held, visits planned (by each account's plan) and done
    (the manager's visits to those accounts)."""
    rows = session.execute(sa.text("""
        SELECT o.manager_staff_id AS staff_id, o.id, o.revenue_class, o.visits_per_year,
               (SELECT count(*) FROM account_visits v WHERE v.organisation_id = o.id
                  AND v.staff_id = o.manager_staff_id AND v.visited_at >= :start AND v.visited_at < :end) AS done
        FROM organisations o WHERE o.manager_staff_id IS NOT NULL ORDER BY o.manager_staff_id, o.id"""),
        {"start": month_start, "end": month_end}).all()
    per_class = get_settings().revenue_class_visits_per_year
    report: dict[int, dict[str, Any]] = {}
    for staff_id, _org_id, revenue_class, own_plan, done in rows:
        line = report.setdefault(staff_id, {"staff_id": staff_id, "accounts": 0, "planned": 0.0, "done": 0})
        line["accounts"] += 1
        line["planned"] = round(line["planned"] + visits_planned(
            own_plan if own_plan is not None else per_class.get(revenue_class, 0)), 2)
        line["done"] += int(done)
    return [{**line, "done_ratio": round(line["done"] / line["planned"], 2) if line["planned"] else None}
            for line in report.values()]


def open_account_complaint(session: Session, *, organisation_id: int, category: str, note: str, actor: str,
                           now: datetime, owner_staff_id: int | None = None) -> AccountComplaint:
    """A complaint of the account, owned by someone (default: its manager) who must answer by the deadline."""
    org = get_organisation(session, organisation_id=organisation_id)
    owner = owner_staff_id if owner_staff_id is not None else org.manager_staff_id
    if owner is None:
        raise InvalidInput("the account has no manager: name the complaint's owner", code="owner_required")
    if owner_staff_id is not None:
        staff.require_staff(session, staff_ids=[owner_staff_id])
    complaint = AccountComplaint(organisation_id=organisation_id, owner_staff_id=owner, category=category, note=note,
                                 opened_at=now, actor=actor,
                                 respond_by=now + timedelta(hours=get_settings().account_complaint_response_hours))
    session.add(complaint)
    session.flush()
    record_event(session, kind="account.complaint_opened", member_id=None,
                 payload={"organisation_id": organisation_id, "complaint_id": complaint.id, "owner": owner}, now=now)
    return complaint


def respond_account_complaint(session: Session, *, organisation_id: int, complaint_id: int, response: str,
                              now: datetime) -> AccountComplaint:
    """Record the answer to an account complaint (the first answer stands)."""
    complaint = session.exec(select(AccountComplaint).where(AccountComplaint.id == complaint_id)
                             .with_for_update()).first()
    if complaint is None or complaint.organisation_id != organisation_id:
        raise NotFound(f"account complaint {complaint_id} not found", code="complaint_not_found")
    if complaint.responded_at is None:
        complaint.responded_at, complaint.response = now, response
        session.add(complaint)
        session.flush()
    return complaint


def account_complaints(session: Session, *, organisation_id: int, now: datetime) -> list[dict[str, Any]]:
    """The account's complaints, newest first, each saying whether its response is overdue."""
    rows = session.exec(select(AccountComplaint).where(AccountComplaint.organisation_id == organisation_id)
                        .order_by(col(AccountComplaint.id).desc())).all()
    return [{**c.model_dump(), "overdue": c.responded_at is None and c.respond_by < now} for c in rows]


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """``YYYY-MM`` → its first instant and the next month's, in the program's timezone."""
    from zoneinfo import ZoneInfo

    try:
        year, number = (int(part) for part in month.split("-"))
        tz = ZoneInfo(get_settings().program_timezone)
        start = datetime(year, number, 1, tzinfo=tz)
    except ValueError as exc:
        raise InvalidInput(f"month {month!r} is not YYYY-MM", code="invalid_month") from exc
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=tz)
    return start, end


# --- signals into the rest of the product ----------------------------------------------------------------------

_DO_NOT_CONTACT_FROM = ("FROM organisation_members dnc_om "
                        "JOIN organisations dnc_o ON dnc_o.id = dnc_om.organisation_id "
                        "WHERE dnc_om.member_id = {member_id} AND dnc_om.removed_at IS NULL AND dnc_o.do_not_contact")

DO_NOT_CONTACT_SQL = "EXISTS (SELECT 1 " + _DO_NOT_CONTACT_FROM + ")"
"""The account-level do-not-contact as a SQL predicate for set-based callers (call lists); format
``member_id``. ``accounts_not_to_contact`` reads the same condition for the gate's facts."""


def accounts_not_to_contact(session: Session, *, member_ids: list[int]) -> dict[int, str]:
    """Member → the name of an organisation they currently belong to that is not to be contacted (for the
    contact gate's facts: the account-level do-not-contact covers all its people)."""
    if not member_ids:
        return {}
    rows = session.execute(sa.text(
        "SELECT DISTINCT ON (dnc_om.member_id) dnc_om.member_id, dnc_o.name "
        + _DO_NOT_CONTACT_FROM.format(member_id="ANY(CAST(:ids AS bigint[]))")
        + " ORDER BY dnc_om.member_id, dnc_o.id"), {"ids": sorted(set(member_ids))}).all()
    return {int(r[0]): str(r[1]) for r in rows}


def term_ends_at_sql() -> str:
    """The query piece "term ends at" for the churn signal (lifecycle and churn are issue #18's rules): one row
    per (member, organisation) a member currently belongs to, with the date the organisation's term ends —
    the latest end among its contracts not yet ended at ``:as_of`` (a renewal signed beyond it moves the
    end) — and the member's role. Parameters: ``:as_of`` (a timestamptz; contracts end at the end of their
    ``ends_on`` day in the program's timezone, simplified here to the date of ``:as_of``)."""
    return """
SELECT om.member_id, om.organisation_id, om.role, t.term_ends_at
FROM organisation_members om
JOIN (SELECT organisation_id, max(ends_on) AS term_ends_at FROM organisation_contracts
      WHERE ends_on >= CAST(:as_of AS date) GROUP BY organisation_id) t ON t.organisation_id = om.organisation_id
WHERE om.removed_at IS NULL AND om.linked_at <= :as_of
"""


AUDIENCE_KEYS = ("organisations", "organisation_roles")


def audience_condition(*, member_column: str, audience: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The query piece campaigns and call lists filter their audience with: with ``organisations`` (ids)
    and/or ``organisation_roles`` in the audience, members currently in one of those organisations (any when
    not given) in one of those roles (any when not given); otherwise no condition (``TRUE``)."""
    org_ids, roles = audience.get("organisations") or None, audience.get("organisation_roles") or None
    if org_ids is None and roles is None:
        return "TRUE", {}
    try:
        org_ids = [int(i) for i in org_ids] if org_ids is not None else None
        roles = [OrganisationRole(r).value for r in roles] if roles is not None else None
    except (TypeError, ValueError) as exc:
        raise InvalidInput("organisations are ids and organisation_roles are key_contact, leader or employee",
                           code="invalid_audience") from exc
    return (f"EXISTS (SELECT 1 FROM organisation_members aud_om WHERE aud_om.member_id = {member_column} "
            "AND aud_om.removed_at IS NULL "
            "AND (CAST(:aud_orgs AS bigint[]) IS NULL OR aud_om.organisation_id = ANY(CAST(:aud_orgs AS bigint[]))) "
            "AND (CAST(:aud_roles AS text[]) IS NULL OR aud_om.role = ANY(CAST(:aud_roles AS text[]))))",
            {"aud_orgs": org_ids, "aud_roles": roles})


def care_dates_sql(*, member_id: str, year: str, local_date: str) -> str:
    """The query piece the care journeys' date source unions in: one occasion ref
    (``account:<organisation>:<kind>:<year>``) when an important date of an organisation the member is a key
    contact or leader of (``:care_roles``) falls on the member's local date (29 February on the 28th)."""
    return f"""
    SELECT 'account:' || d.organisation_id || ':' || d.kind || ':' || {year}
    FROM organisation_members care_om JOIN organisation_dates d ON d.organisation_id = care_om.organisation_id
    WHERE care_om.member_id = {member_id} AND care_om.removed_at IS NULL
      AND care_om.role = ANY(CAST(:care_roles AS text[]))
      AND make_date({year}, extract(month FROM d.on_date)::int,
            CASE WHEN extract(month FROM d.on_date) = 2 AND extract(day FROM d.on_date) = 29
                      AND NOT ({year} % 4 = 0 AND ({year} % 100 <> 0 OR {year} % 400 = 0))
                 THEN 28 ELSE extract(day FROM d.on_date)::int END) = {local_date}
"""


def care_dates_params() -> dict[str, Any]:
    return {"care_roles": get_settings().account_care_roles}
