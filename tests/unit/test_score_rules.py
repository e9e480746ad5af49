"""Channel-preference arithmetic: the entropy method against a hand-computed example, the baseline rule, the
validation split and the lift measures."""

from datetime import date

import numpy as np
import pytest

from domain.scores import rules


def test_entropy_weights_match_the_hand_computed_example():
    # Column 1: 1, 2, 3 → min-max 0, 0.5, 1 → shares 0, 1/3, 2/3
    #   e1 = -(1/3·ln 1/3 + 2/3·ln 2/3) / ln 3 = (0.366204 + 0.270310) / 1.098612 = 0.579380, d1 = 0.420620
    # Column 2: 5, 5, 10 → min-max 0, 0, 1 → shares 0, 0, 1 → e2 = 0, d2 = 1
    # w = d / (d1 + d2) = 0.420620 / 1.420620, 1 / 1.420620 = 0.296082, 0.703918
    x = np.array([[1.0, 5.0], [2.0, 5.0], [3.0, 10.0]])
    assert rules.entropy_weights(x) == pytest.approx([0.296082, 0.703918], abs=1e-6)


def test_an_indicator_equal_for_everybody_gets_no_weight():
    x = np.array([[1.0, 7.0], [2.0, 7.0], [4.0, 7.0]])
    assert rules.entropy_weights(x) == pytest.approx([1.0, 0.0])


def test_all_constant_indicators_weigh_the_same():
    assert rules.entropy_weights(np.ones((4, 3))) == pytest.approx([1 / 3] * 3)


def test_usage_composite_weighs_indicators_pooled_over_members_and_channels():
    usage = np.zeros((2, len(rules.CHANNELS), 3))
    usage[0, 0] = [3, 10, 20]  # member 0: mostly phone
    usage[0, 1] = [1, 1, 1]
    usage[1, 4] = [2, 4, 4]  # member 1: only store
    composite, weights = rules.usage_composite(usage)
    assert weights.sum() == pytest.approx(1.0)
    assert composite[0, 0] == pytest.approx(1.0)  # the maximum of every indicator
    assert composite[0, 0] > composite[1, 4] > composite[0, 1] > 0
    assert composite[1, 0] == 0


def test_preference_scores_lean_on_the_prior_until_the_member_has_used_channels_enough():
    prior = np.array([[0.5, 0.5], [0.5, 0.5], [0.2, 0.8]])
    composite = np.array([[1.0, 0.0], [9.0, 0.0], [0.0, 0.0]])
    scores = rules.preference_scores(composite, prior, strength=1.0)
    # (usage + strength × prior) / (total usage + strength)
    assert scores.tolist() == [[0.75, 0.25], [0.95, 0.05], [0.2, 0.8]]
    assert rules.preference_scores(composite[:2], prior[:2], 0.0).tolist() == [[1.0, 0.0], [1.0, 0.0]]
    assert rules.prior_strength(np.array([[1.0, 0.0], [2.0, 1.0], [0.0, 0.0], [5.0, 5.0]])) == 3.0


def test_baseline_rule_needs_a_channel_used_more_than_every_other():
    tx = np.array([[5, 1, 0, 0, 0, 0], [2, 2, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 9]], dtype=float)
    assert rules.baseline_preferred(tx).tolist() == [0, -1, -1, 5]


def test_validation_fits_three_months_and_validates_the_two_that_follow():
    split = rules.validation_split(date(2026, 12, 1))
    assert (split.fit_start, split.fit_end) == (date(2026, 7, 1), date(2026, 10, 1))
    assert (split.validate_start, split.validate_end) == (date(2026, 10, 1), date(2026, 12, 1))
    assert split.fit_end == split.validate_start  # nothing of the validation window leaks into the fit


def test_month_arithmetic_clamps_to_short_months():
    assert rules.add_months(date(2026, 8, 31), -6) == date(2026, 2, 28)
    assert rules.add_months(date(2024, 5, 31), -3) == date(2024, 2, 29)
    assert rules.scoring_window(date(2026, 12, 2)) == (date(2026, 6, 2), date(2026, 12, 2))


def test_capture_and_lift_of_a_perfect_and_a_random_ranking():
    truth = np.zeros(100, dtype=bool)
    truth[:10] = True
    perfect = np.arange(100)
    top = rules.capture_at(perfect, truth, 0.1)
    assert (top.captured, top.lift) == (1.0, 10.0)
    reverse = perfect[::-1].copy()
    assert rules.capture_at(reverse, truth, 0.2).captured == 0.0
    xs, ys = rules.gains_curve(perfect, truth, points=10)
    assert ys[1] == 1.0 and xs[-1] == 1.0 and ys[-1] == 1.0


def test_ties_are_broken_by_the_seeded_draw_not_by_position():
    scores = np.array([1.0, 0.0, 1.0, 0.0])
    order = rules.ranking(scores, tiebreak=np.array([0.9, 0.1, 0.2, 0.5]))
    assert order.tolist() == [2, 0, 1, 3]
