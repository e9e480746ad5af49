"""Account management: allocation by revenue, importance and relationship under the cap; visits against the
plan; account complaints with an owner and a deadline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from domain.errors import InvalidInput
from domain.organisations import service as orgs
from domain.organisations.models import RevenueClass
from domain.organisations.rules import ManagerLoad, allocation_order, choose_manager
from tests.factories import make_staff

T0 = datetime(2026, 3, 2, 4, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def test_key_accounts_are_allocated_first_and_a_relationship_wins_over_load():
    assert allocation_order([(1, "small", False, 5), (2, "large", False, 1), (3, "key", True, 0),
                             (4, "large", False, 4), (5, "medium", True, 0)]) == [3, 5, 4, 2, 1]
    loads = [ManagerLoad(1, 2, 5, related=False), ManagerLoad(2, 9, 12, related=True)]
    assert choose_manager(key_account=True, candidates=loads, cap=10) == 2
    full = [ManagerLoad(1, 10, 10, related=True), ManagerLoad(2, 3, 8, related=False)]
    assert choose_manager(key_account=True, candidates=full, cap=10) == 2
    assert choose_manager(key_account=True, candidates=[ManagerLoad(1, 10, 10, related=True)], cap=10) is None
    assert choose_manager(key_account=False, candidates=[ManagerLoad(1, 10, 10, related=False),
                                                         ManagerLoad(2, 0, 20, related=False)], cap=10) == 1


def test_allocation_spreads_accounts_and_leaves_what_no_manager_may_take(session, monkeypatch):
    from domain.settings import get_settings

    monkeypatch.setattr(get_settings(), "key_accounts_per_manager", 2)
    keys = [orgs.create_organisation(session, name=f"K{i}", revenue_class=RevenueClass.KEY, now=T0,
                                     importance=5 if i == 4 else 0) for i in range(5)]
    small = orgs.create_organisation(session, name="S", revenue_class=RevenueClass.SMALL, now=T0)
    seven, eight = sorted(make_staff(session, role="supervisor").id for _ in range(2))
    orgs.set_team_role(session, organisation_id=keys[4].id, staff_id=eight, role="service", now=T0)
    result = orgs.allocate_accounts(session, staff_ids=[seven, eight], now=T0)
    assert result["allocated"][keys[4].id] == eight  # the most important first, to the manager it knows
    assert sorted(result["allocated"][k.id] for k in keys[:3]) == [seven, seven, eight]  # then the least loaded
    assert result["unallocated"] == [keys[3].id]  # both managers at the cap
    assert small.id in result["allocated"]


def test_the_visit_report_counts_planned_against_done_per_manager(session):
    key = orgs.create_organisation(session, name="Visit K", revenue_class=RevenueClass.KEY, now=T0)  # 24 a year
    medium = orgs.create_organisation(session, name="Visit M", revenue_class=RevenueClass.MEDIUM, now=T0)  # 4
    manager, other = make_staff(session, role="supervisor").id, make_staff(session, role="agent").id
    for org in (key, medium):
        orgs.allocate_manager(session, organisation_id=org.id, staff_id=manager, now=T0)
    first, replayed = orgs.record_visit(session, organisation_id=key.id, staff_id=manager, visited_at=T0, summary="ok",
                                        needs=["fleet cards"], now=T0,
                                        follow_ups=[{"action": "send quote", "due_on": "2026-03-09"}])
    again, replayed_again = orgs.record_visit(session, organisation_id=key.id, staff_id=manager, visited_at=T0,
                                              summary="ok", needs=["fleet cards"], follow_ups=[], now=T0)
    assert not replayed and replayed_again and again.id == first.id
    orgs.record_visit(session, organisation_id=key.id, staff_id=other, visited_at=T0 + DAY, summary="", needs=[],
                      follow_ups=[], now=T0)  # not the manager's visit
    start, end = orgs.month_bounds("2026-03")
    report = orgs.visit_report(session, month_start=start, month_end=end)
    line = next(r for r in report if r["staff_id"] == manager)
    assert (line["accounts"], line["planned"], line["done"]) == (2, 2.33, 1)
    plan = orgs.visit_plan(session, organisation_id=key.id, now=T0 + 30 * DAY)
    assert plan["visits_per_year"] == 24 and plan["overdue"]
    assert plan["next_visit_due"] == T0 + DAY + timedelta(days=365 / 24)


def test_an_account_complaint_has_an_owner_and_a_deadline(session):
    org = orgs.create_organisation(session, name="Complaining Co", revenue_class=RevenueClass.LARGE, now=T0)
    with pytest.raises(InvalidInput):
        orgs.open_account_complaint(session, organisation_id=org.id, category="billing", note="", actor="t", now=T0)
    owner = make_staff(session, role="supervisor").id
    orgs.allocate_manager(session, organisation_id=org.id, staff_id=owner, now=T0)
    complaint = orgs.open_account_complaint(session, organisation_id=org.id, category="billing", note="late invoice",
                                            actor="t", now=T0)
    assert complaint.owner_staff_id == owner and complaint.respond_by == T0 + timedelta(hours=48)
    assert orgs.account_complaints(session, organisation_id=org.id, now=T0 + 3 * DAY)[0]["overdue"]
    orgs.respond_account_complaint(session, organisation_id=org.id, complaint_id=complaint.id, response="credited",
                                   now=T0 + DAY)
    assert not orgs.account_complaints(session, organisation_id=org.id, now=T0 + 3 * DAY)[0]["overdue"]
