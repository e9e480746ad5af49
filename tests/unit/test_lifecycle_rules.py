"""Lifecycle stages and churn cohorts at their boundaries."""

import pytest

from domain.lifecycle.rules import Activity, LifecyclePolicy, at_risk, churn_cohort, churn_risk, lifecycle_stage

P = LifecyclePolicy()


def act(tenure, idle=1, recent=5, before=5, complaints=0, term=None):
    return Activity(tenure_days=tenure, idle_days=idle, recent=recent, before=before, complaints=complaints,
                    term_ends_in_days=term)


@pytest.mark.parametrize(("tenure", "cohort"), [(0, "first_6m"), (182, "first_6m"), (183, "6_12m"),
                                                (364, "6_12m"), (365, None), (2000, None)])
def test_churn_cohorts_by_tenure(tenure, cohort):
    assert churn_cohort(act(tenure), P) == cohort


@pytest.mark.parametrize(("term", "cohort"), [(None, None), (-1, None), (0, "term_ending"), (90, "term_ending"),
                                              (91, None)])
def test_members_of_over_a_year_are_watched_only_when_their_term_ends_within_three_months(term, cohort):
    assert churn_cohort(act(400, term=term), P) == cohort


def test_churn_risk_adds_drop_recency_and_complaints_to_the_cohorts_base():
    assert churn_risk(act(100, idle=0, recent=5, before=5), P) == ("first_6m", pytest.approx(0.3))
    # half the activity (0.3 × 0.5), 45 idle days (0.3 × 0.5), a complaint (0.2) on the 6–12 month base 0.2
    assert churn_risk(act(200, idle=45, recent=2, before=4, complaints=1), P) == ("6_12m", pytest.approx(0.7))
    assert churn_risk(act(100, idle=None, recent=0, before=10, complaints=3), P)[1] == 1.0  # capped
    assert churn_risk(act(400), P) is None


def test_a_term_ending_soon_is_a_risk_factor_that_puts_an_active_veteran_at_risk():
    # base 0.3 of the term-ending cohort + the term's 0.3; 9 idle days add 0.3 × 0.1
    assert churn_risk(act(400, idle=9, recent=5, before=5, term=30), P) == ("term_ending", pytest.approx(0.63))
    assert at_risk(act(400, idle=9, recent=5, before=5, term=30), P)
    assert churn_risk(act(200, idle=0, recent=5, before=5, term=30), P) == ("6_12m", pytest.approx(0.5))
    assert not at_risk(act(200, idle=0, recent=5, before=5), P)  # 0.2: in a cohort, not at risk
    assert not at_risk(act(400, idle=9, recent=5, before=5, term=91), P)  # in no cohort at all


@pytest.mark.parametrize(("activity", "stage"), [
    (act(89, idle=89), "onboarding"),          # the first months are onboarding even when quiet
    (act(90), "growth"),
    (act(364), "growth"),
    (act(365), "maturity"),
    (act(365, idle=59), "maturity"),
    (act(365, idle=60), "decline"),            # consecutive idle days
    (act(200, idle=None), "decline"),          # never active: idle for the whole tenure
    (act(200, recent=2, before=4), "decline"), # a clear drop (half or less)
    (act(200, recent=3, before=4), "growth"),
    (act(200, recent=0, before=2), "growth"),  # too little before to call it a drop
    (act(500, term=90), "decline"),            # a term ending within three months
    (act(500, term=91), "maturity"),
])
def test_lifecycle_stages_at_their_boundaries(activity, stage):
    assert lifecycle_stage(activity, P) == stage
