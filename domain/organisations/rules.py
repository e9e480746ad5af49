"""Group customers' rules, pure: who shares an account's treatment and through what, the effective tier
and its source, the key-account cap, allocation, the visit plan.

The effective-tier rule lives here twice over on purpose: as Python (``shared_grants`` + ``effective_tier``)
for one member, and as the SQL this module builds (``shared_treatment_sql``, ``EFFECTIVE_TIER_SQL``) for a
set of members. ``tests/domain/test_shared_treatment.py`` runs both on the same generated members.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from domain.tiers.rules import ORDER, rank

INVERSE_RELATION = {"spouse": "spouse", "parent": "child", "child": "parent"}
"""(a, b, parent) — b is a's parent — makes a b's child."""


@dataclass(frozen=True)
class SharingPolicy:
    """Which links carry the account's service level (configuration, ``domain.settings``)."""

    roles: frozenset[str]
    """Roles in an organisation whose holders get the account's service level."""
    relations: frozenset[str]
    """What a relative of such a holder must be to them (spouse, child, parent) to get it too."""


@dataclass(frozen=True)
class Grant:
    """A tier a member holds through a link, and where it comes from."""

    tier: str
    organisation_id: int
    role: str
    via_member_id: int | None = None
    """The relative who holds the role (None: the member holds it)."""
    relation: str | None = None
    """What the member is to ``via_member_id``."""

    def sort_key(self) -> tuple[Any, ...]:
        """Best first: the higher tier, then the member's own link before a relative's, then the lowest ids
        (the SQL orders the same way, so both pick the same source)."""
        return (-rank(self.tier), self.via_member_id is not None, self.organisation_id, self.via_member_id or 0,
                self.role, self.relation or "")


@dataclass(frozen=True)
class OrgLink:
    organisation_id: int
    member_id: int
    role: str


@dataclass(frozen=True)
class FamilyTie:
    member_id: int
    relative_id: int
    relation: str
    """What ``relative_id`` is to ``member_id``."""


def relatives_of(member_id: int, ties: Iterable[FamilyTie]) -> list[tuple[int, str]]:
    """(relative, what the member is to that relative) over links stored in either direction."""
    out = []
    for tie in ties:
        if tie.member_id == member_id:
            out.append((tie.relative_id, INVERSE_RELATION[tie.relation]))
        elif tie.relative_id == member_id:
            out.append((tie.member_id, tie.relation))
    return out


def shared_grants(member_id: int, *, links: Sequence[OrgLink], ties: Sequence[FamilyTie],
                  service_tiers: Mapping[int, str], policy: SharingPolicy) -> list[Grant]:
    """Every tier the member holds through current links: their own role in an organisation, or a relative's."""
    grants = [Grant(service_tiers[link.organisation_id], link.organisation_id, link.role)
              for link in links if link.member_id == member_id and link.role in policy.roles]
    for relative, relation in relatives_of(member_id, ties):
        if relation not in policy.relations:
            continue
        grants += [Grant(service_tiers[link.organisation_id], link.organisation_id, link.role, relative, relation)
                   for link in links if link.member_id == relative and link.role in policy.roles]
    return grants


def best_grant(grants: Iterable[Grant]) -> Grant | None:
    return min(grants, key=Grant.sort_key, default=None)


@dataclass(frozen=True)
class Treatment:
    """The tier a member is served at, and why."""

    tier: str
    own_tier: str
    grant: Grant | None
    """None: the member's own tier (which wins a tie)."""

    @property
    def source(self) -> str:
        if self.grant is None:
            return "own"
        return "organisation" if self.grant.via_member_id is None else "family"


def effective_tier(own_tier: str, grant: Grant | None) -> Treatment:
    """The best of the member's own tier and the best shared one; the own tier wins a tie."""
    if grant is not None and rank(grant.tier) > rank(own_tier):
        return Treatment(grant.tier, own_tier, grant)
    return Treatment(own_tier, own_tier, None)


def explain(treatment: Treatment, *, organisation_name: str | None, via_name: str | None) -> str:
    """One sentence for the agent and the member: where the tier comes from."""
    grant = treatment.grant
    if grant is None:
        return f"tier {treatment.tier}: own"
    role = grant.role.replace("_", " ")
    if grant.via_member_id is None:
        return f"tier {treatment.tier}: {role} of organisation {organisation_name} (own tier {treatment.own_tier})"
    return (f"tier {treatment.tier}: family of {via_name} ({grant.relation}), {role} of organisation "
            f"{organisation_name} (own tier {treatment.own_tier})")


# --- the same rule, set-based -------------------------------------------------------------------------

_RANK_SQL = "array_position(ARRAY['D','C','B','A'], {tier})"


def shared_treatment_sql(*, members_where: str = "TRUE") -> str:
    """SELECT the best grant per member (member_id, tier, organisation_id, role, via_member_id, relation)
    from the links current at ``:as_of``; parameters ``:as_of``, ``:roles``, ``:relations``.
    ``members_where`` restricts the receiving members (a condition on ``member_id``)."""
    assert ORDER == ("D", "C", "B", "A")  # the rank expression spells the ladder out
    return f"""
WITH links AS (
    SELECT om.member_id, o.service_tier AS tier, o.id AS organisation_id, om.role
    FROM organisation_members om JOIN organisations o ON o.id = om.organisation_id
    WHERE om.role = ANY(CAST(:roles AS text[])) AND om.linked_at <= :as_of
      AND (om.removed_at IS NULL OR om.removed_at > :as_of)
), ties AS (  -- (holder, relative, what the relative is to the holder), over links stored either way
    SELECT f.member_id AS holder, f.relative_id AS relative, f.relation FROM family_links f
    WHERE f.linked_at <= :as_of AND (f.removed_at IS NULL OR f.removed_at > :as_of)
    UNION ALL
    SELECT f.relative_id, f.member_id,
           CASE f.relation WHEN 'parent' THEN 'child' WHEN 'child' THEN 'parent' ELSE f.relation END
    FROM family_links f
    WHERE f.linked_at <= :as_of AND (f.removed_at IS NULL OR f.removed_at > :as_of)
), grants AS (
    SELECT member_id, tier, organisation_id, role, CAST(NULL AS integer) AS via_member_id,
           CAST(NULL AS text) AS relation
    FROM links
    UNION ALL
    SELECT t.relative, l.tier, l.organisation_id, l.role, t.holder, t.relation
    FROM ties t JOIN links l ON l.member_id = t.holder
    WHERE t.relation = ANY(CAST(:relations AS text[]))
)
SELECT DISTINCT ON (member_id) member_id, tier, organisation_id, role, via_member_id, relation
FROM grants WHERE {members_where}
ORDER BY member_id, {_RANK_SQL.format(tier="tier")} DESC, via_member_id IS NOT NULL, organisation_id,
         coalesce(via_member_id, 0), role, coalesce(relation, '')
"""


EFFECTIVE_TIER_SQL = ("CASE WHEN {shared}.tier IS NOT NULL AND " + _RANK_SQL.format(tier="{shared}.tier")
                      + " > " + _RANK_SQL.format(tier="{member}.tier") + " THEN {shared}.tier ELSE {member}.tier END")
"""The effective tier of ``{member}`` (a members row) given its ``{shared}`` member_shared_treatment row (may
be NULL): format with the two aliases."""


def sharing_params(policy: SharingPolicy, as_of: datetime) -> dict[str, Any]:
    return {"as_of": as_of, "roles": sorted(policy.roles), "relations": sorted(policy.relations)}


# --- account management -----------------------------------------------------------------------------------

def may_take_key_account(*, held: int, cap: int) -> bool:
    """A manager holds at most ``cap`` key accounts (DOMAIN.md: fewer than ten, default cap 10)."""
    return held < cap


def visits_planned(visits_per_year: int, *, months: int = 1) -> float:
    """Visits the plan asks for in ``months`` months."""
    return round(visits_per_year * months / 12, 2)


@dataclass(frozen=True)
class ManagerLoad:
    staff_id: int
    key_accounts: int
    accounts: int
    related: bool
    """Already works with the account (in its team): the relationship counts first."""


REVENUE_ORDER = ("key", "large", "medium", "small")


def allocation_order(accounts: Iterable[tuple[int, str, bool, int]]) -> list[int]:
    """Which unallocated accounts are allocated first: (id, revenue class, key account, importance) → ids,
    key accounts first, then by revenue class, then the more important, then the older account."""
    return [a[0] for a in sorted(accounts, key=lambda a: (not a[2], REVENUE_ORDER.index(a[1]), -a[3], a[0]))]


def choose_manager(*, key_account: bool, candidates: Sequence[ManagerLoad], cap: int) -> int | None:
    """The manager for an account: one who already has a relationship with it, else the least loaded; a key
    account only goes to a manager under the cap. None: nobody can take it."""
    eligible = [c for c in candidates if not key_account or may_take_key_account(held=c.key_accounts, cap=cap)]
    if not eligible:
        return None
    best = min(eligible, key=lambda c: (not c.related, c.key_accounts if key_account else c.accounts, c.accounts,
                                        c.staff_id))
    return best.staff_id
