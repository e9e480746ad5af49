"""Group customers: accounts, people in roles, families, the treatment they share, the manager's cap."""

from __future__ import annotations

import random
import threading
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa

from domain.db import unit_of_work
from domain.errors import Conflict, InvalidInput, PolicyRefused
from domain.events.service import events_for_member
from domain.organisations import service as orgs
from domain.organisations.models import FamilyRelation, OrganisationRole, RevenueClass
from domain.organisations.rules import FamilyTie, OrgLink, best_grant, effective_tier, shared_grants
from jobs.runner import run_job
from tests.factories import make_member, make_staff

T0 = datetime(2026, 3, 2, 4, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def make_org(session, *, name: str | None = None, revenue_class: RevenueClass = RevenueClass.KEY, **kw):
    org = orgs.create_organisation(session, name=name or f"Org {random.randrange(10**9)}",
                                   revenue_class=revenue_class, now=T0, **kw)
    session.commit()
    return org


def served_at(session, member) -> dict:
    session.refresh(member)
    return orgs.treatment_of(session, member_id=member.id, own_tier=member.tier).as_dict()


def test_an_account_gets_its_service_level_from_its_revenue_class(session):
    assert make_org(session, revenue_class=RevenueClass.KEY).service_tier == "A"
    org = make_org(session, revenue_class=RevenueClass.MEDIUM)
    assert (org.service_tier, org.key_account) == ("C", False)
    assert make_org(session, revenue_class=RevenueClass.SMALL, service_tier="B").service_tier == "B"


def test_a_leaders_spouse_gets_the_accounts_service_level_and_loses_it_at_the_next_evaluation(session):
    org = make_org(session, name="Acme Steel")
    leader, spouse = make_member(session, name="Wang Wei"), make_member(session, name="Zhang Min")
    orgs.link_member(session, organisation_id=org.id, member_id=leader.id, role=OrganisationRole.LEADER,
                     actor="tests", now=T0)
    link, _ = orgs.link_family(session, member_id=leader.id, relative_id=spouse.id, relation=FamilyRelation.SPOUSE,
                               consent_source="signed form 17", consented_at=T0, actor="tests", now=T0)
    view = served_at(session, spouse)
    assert (view["tier"], view["own_tier"], view["source"]) == ("A", "D", "family")
    assert (view["organisation"], view["via_member"], view["relation"], view["role"]) == \
        ("Acme Steel", "Wang Wei", "spouse", "leader")
    assert "family of Wang Wei" in view["explanation"]
    assert served_at(session, leader)["source"] == "organisation"

    orgs.unlink_family(session, link_id=link.id, now=T0 + DAY)
    assert served_at(session, spouse)["tier"] == "A"  # not retroactive: kept until the evaluation
    lo, hi = orgs.member_id_bounds(session)
    counts = orgs.evaluate_shared_treatment(session, as_of=T0 + 2 * DAY, member_range=(lo, hi), now=T0 + 2 * DAY)
    view = served_at(session, spouse)
    assert (view["tier"], view["source"]) == ("D", "own")
    assert served_at(session, leader)["tier"] == "A"
    # Each change of the tier a member is served at is an event: granted at once, taken at the evaluation.
    assert counts["shared_served_tier_changed"] == 1
    changes = [(e.payload["from"], e.payload["to"], e.payload["via_member_id"], e.occurred_at) for e in
               events_for_member(session, member_id=spouse.id, kinds=["treatment.changed"])]
    assert changes == [("A", "D", None, T0 + 2 * DAY), ("D", "A", leader.id, T0)]
    assert [e.payload["to"] for e in events_for_member(session, member_id=leader.id, kinds=["treatment.changed"])
            ] == ["A"]
    again = orgs.evaluate_shared_treatment(session, as_of=T0 + 2 * DAY, member_range=(lo, hi), now=T0 + 2 * DAY)
    assert again["shared_served_tier_changed"] == 0  # re-running changes nothing and records nothing


def test_an_evaluation_as_of_before_the_removal_still_grants(session):
    org = make_org(session)
    leader = make_member(session)
    orgs.link_member(session, organisation_id=org.id, member_id=leader.id, role=OrganisationRole.KEY_CONTACT,
                     actor="tests", now=T0)
    orgs.unlink_member(session, organisation_id=org.id, member_id=leader.id, now=T0 + 10 * DAY)
    orgs.evaluate_shared_treatment(session, as_of=T0 + 5 * DAY, member_range=(leader.id, leader.id), now=T0)
    assert served_at(session, leader)["tier"] == "A"
    orgs.evaluate_shared_treatment(session, as_of=T0 + 10 * DAY, member_range=(leader.id, leader.id), now=T0)
    assert served_at(session, leader)["tier"] == "D"


def test_employees_and_their_families_keep_their_own_tier_by_default(session):
    org = make_org(session)
    employee, child = make_member(session), make_member(session)
    orgs.link_member(session, organisation_id=org.id, member_id=employee.id, role=OrganisationRole.EMPLOYEE,
                     actor="tests", now=T0)
    orgs.link_family(session, member_id=employee.id, relative_id=child.id, relation=FamilyRelation.CHILD,
                     consent_source="app", consented_at=T0, actor="tests", now=T0)
    assert served_at(session, employee)["source"] == served_at(session, child)["source"] == "own"


def _set_own_tier(session, member, tier):
    """A member's own tier as an order or the evaluation would have left it (the setter production used is gone:
    tiers change only inside the order statement and the evaluation job)."""
    member.tier = tier
    session.add(member)
    session.flush()


def test_the_own_tier_wins_when_it_is_as_good(session):
    org = make_org(session, revenue_class=RevenueClass.LARGE)  # service level B
    member = make_member(session)
    _set_own_tier(session, member, "A")
    orgs.link_member(session, organisation_id=org.id, member_id=member.id, role=OrganisationRole.LEADER,
                     actor="tests", now=T0)
    assert served_at(session, member)["source"] == "own"


def test_a_family_link_needs_consent_and_two_people_and_is_one_link_per_pair(session):
    a, b = make_member(session), make_member(session)
    with pytest.raises(InvalidInput):
        orgs.link_family(session, member_id=a.id, relative_id=a.id, relation=FamilyRelation.SPOUSE,
                         consent_source="app", consented_at=T0, actor="t", now=T0)
    with pytest.raises(InvalidInput):
        orgs.link_family(session, member_id=a.id, relative_id=b.id, relation=FamilyRelation.SPOUSE,
                         consent_source=" ", consented_at=T0, actor="t", now=T0)
    first, replayed = orgs.link_family(session, member_id=a.id, relative_id=b.id, relation=FamilyRelation.PARENT,
                                       consent_source="app", consented_at=T0, actor="t", now=T0)
    assert not replayed
    # b is a's parent, so a is b's child: the same link told from the other side is a replay
    again, replayed = orgs.link_family(session, member_id=b.id, relative_id=a.id, relation=FamilyRelation.CHILD,
                                       consent_source="app", consented_at=T0, actor="t", now=T0)
    assert replayed and again.id == first.id
    with pytest.raises(Conflict):
        orgs.link_family(session, member_id=b.id, relative_id=a.id, relation=FamilyRelation.SPOUSE,
                         consent_source="app", consented_at=T0, actor="t", now=T0)


def test_a_changed_role_ends_the_old_link_and_keeps_history(session):
    org = make_org(session)
    member = make_member(session)
    orgs.link_member(session, organisation_id=org.id, member_id=member.id, role=OrganisationRole.EMPLOYEE,
                     actor="t", now=T0)
    _, replayed = orgs.link_member(session, organisation_id=org.id, member_id=member.id,
                                   role=OrganisationRole.EMPLOYEE, actor="t", now=T0)
    assert replayed
    orgs.link_member(session, organisation_id=org.id, member_id=member.id, role=OrganisationRole.KEY_CONTACT,
                     actor="t", now=T0 + DAY)
    assert [p.role for p in orgs.people_of(session, organisation_id=org.id, as_of=T0 + DAY)] == ["key_contact"]
    assert served_at(session, member)["tier"] == "A"


def test_contracts_are_idempotent_by_reference(session):
    org = make_org(session)
    first, replayed = orgs.add_contract(session, organisation_id=org.id, reference="FA-1", kind="framework",
                                        starts_on=date(2026, 1, 1), ends_on=date(2026, 12, 31), now=T0)
    assert not replayed
    again, replayed = orgs.add_contract(session, organisation_id=org.id, reference="FA-1", kind="framework",
                                        starts_on=date(2026, 1, 1), ends_on=date(2026, 12, 31), now=T0)
    assert replayed and again.id == first.id
    with pytest.raises(Conflict):
        orgs.add_contract(session, organisation_id=org.id, reference="FA-1", kind="framework",
                          starts_on=date(2026, 1, 1), ends_on=date(2027, 12, 31), now=T0)


# --- the effective-tier rule: Python and SQL on the same generated members --------------------------------

def test_the_shared_treatment_sql_picks_what_the_python_rule_picks(session):
    rng = random.Random(21)
    policy = orgs.sharing_policy()
    organisations = [make_org(session, revenue_class=rng.choice(list(RevenueClass))) for _ in range(4)]
    people = [make_member(session) for _ in range(30)]
    links: list[OrgLink] = []
    for person in people:
        for org in rng.sample(organisations, rng.choice([0, 0, 1, 1, 2])):
            role = rng.choice(list(OrganisationRole))
            orgs.link_member(session, organisation_id=org.id, member_id=person.id, role=role, actor="t", now=T0)
            links.append(OrgLink(org.id, person.id, role.value))
    ties: list[FamilyTie] = []
    pairs = set()
    for _ in range(25):
        a, b = rng.sample(people, 2)
        if frozenset((a.id, b.id)) in pairs:
            continue
        pairs.add(frozenset((a.id, b.id)))
        relation = rng.choice(list(FamilyRelation))
        orgs.link_family(session, member_id=a.id, relative_id=b.id, relation=relation, consent_source="app",
                         consented_at=T0, actor="t", now=T0)
        ties.append(FamilyTie(a.id, b.id, relation.value))
    for person in rng.sample(people, 10):  # some members' own tier beats what is shared
        _set_own_tier(session, person, rng.choice("DCBA"))
    lo, hi = min(p.id for p in people), max(p.id for p in people)
    orgs.evaluate_shared_treatment(session, as_of=T0, member_range=(lo, hi), now=T0)

    from domain.organisations.rules import EFFECTIVE_TIER_SQL

    effective_sql = EFFECTIVE_TIER_SQL.format(member="m", shared="t")
    rows = session.execute(sa.text(
        f"SELECT m.id, {effective_sql} AS tier, t.organisation_id, t.via_member_id, t.role, t.relation "
        f"FROM members m LEFT JOIN member_shared_treatment t ON t.member_id = m.id "
        f"WHERE m.id BETWEEN :lo AND :hi"), {"lo": lo, "hi": hi}).all()
    tiers = {o.id: o.service_tier for o in organisations}
    checked = shared = 0
    for member_id, tier, org_id, via, role, relation in rows:
        own = session.scalar(sa.text("SELECT tier FROM members WHERE id = :m"), {"m": member_id})
        grant = best_grant(shared_grants(member_id, links=links, ties=ties, service_tiers=tiers, policy=policy))
        expected = effective_tier(own, grant)
        assert tier == expected.tier, member_id
        if grant is not None:
            assert (org_id, via, role, relation) == (grant.organisation_id, grant.via_member_id, grant.role,
                                                     grant.relation), member_id
            shared += expected.grant is not None
        else:
            assert org_id is None
        checked += 1
    assert checked == 30 and shared >= 5


# --- the manager's cap --------------------------------------------------------------------------------------

def test_a_manager_cannot_be_allocated_an_eleventh_key_account(session):
    manager = make_staff(session, role="supervisor").id
    accounts = [make_org(session) for _ in range(11)]
    for org in accounts[:10]:
        orgs.allocate_manager(session, organisation_id=org.id, staff_id=manager, now=T0)
    with pytest.raises(PolicyRefused) as refused:
        orgs.allocate_manager(session, organisation_id=accounts[10].id, staff_id=manager, now=T0)
    assert refused.value.code == "manager_at_capacity"
    small = make_org(session, revenue_class=RevenueClass.SMALL)
    orgs.allocate_manager(session, organisation_id=small.id, staff_id=manager, now=T0)  # not a key account
    with pytest.raises(PolicyRefused):
        orgs.update_organisation(session, organisation_id=small.id, changes={"key_account": True}, now=T0)


def test_racing_allocations_never_give_a_manager_more_than_ten_key_accounts(committed_engine):
    with unit_of_work(committed_engine) as session:
        ids = [orgs.create_organisation(session, name=f"Key {i}", revenue_class=RevenueClass.KEY, now=T0).id
               for i in range(14)]
        manager = make_staff(session, role="supervisor").id
        session.commit()
    outcomes: list[str] = []
    barrier = threading.Barrier(len(ids))

    def allocate(org_id: int) -> None:
        barrier.wait()
        with unit_of_work(committed_engine) as session:
            try:
                orgs.allocate_manager(session, organisation_id=org_id, staff_id=manager, now=T0)
                session.commit()
                outcomes.append("ok")
            except PolicyRefused:
                outcomes.append("refused")

    threads = [threading.Thread(target=allocate, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes).count("ok") == 10 and outcomes.count("refused") == 4
    with unit_of_work(committed_engine) as session:
        assert session.scalar(sa.text("SELECT count(*) FROM organisations WHERE manager_staff_id = :m"),
                              {"m": manager}) == 10


def test_the_tier_evaluation_job_takes_away_what_a_removed_link_granted(committed_engine):
    with unit_of_work(committed_engine) as session:
        org = orgs.create_organisation(session, name="Job Co", revenue_class=RevenueClass.KEY, now=T0)
        leader, spouse = make_member(session), make_member(session)
        orgs.link_member(session, organisation_id=org.id, member_id=leader.id, role=OrganisationRole.LEADER,
                         actor="t", now=T0)
        link, _ = orgs.link_family(session, member_id=leader.id, relative_id=spouse.id,
                                   relation=FamilyRelation.SPOUSE, consent_source="app", consented_at=T0, actor="t",
                                   now=T0)
        orgs.unlink_family(session, link_id=link.id, now=T0 + DAY)
        session.commit()
    counts = run_job("tier-evaluation", engine=committed_engine, as_of=T0 + 2 * DAY).counts
    assert counts["shared_removed"] == 1 and counts["shared_held"] == 1
    with unit_of_work(committed_engine) as session:
        assert orgs.treatment_of(session, member_id=spouse.id, own_tier="D").treatment.source == "own"
        assert orgs.treatment_of(session, member_id=leader.id, own_tier="D").treatment.tier == "A"
