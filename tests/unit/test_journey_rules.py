from datetime import UTC, date, datetime, time

import pytest

from domain.journeys.rules import (
    birthday_in_year,
    conversion_uplift,
    in_control_group,
    next_birthday_greeting,
    render_template,
    template_variables,
)


def test_control_assignment_is_stable_and_close_to_the_share():
    picks = [in_control_group(member_id=i, experiment="journey:1", control_share=0.1) for i in range(20_000)]
    assert picks == [in_control_group(member_id=i, experiment="journey:1", control_share=0.1) for i in range(20_000)]
    assert 0.09 < sum(picks) / len(picks) < 0.11


def test_control_assignment_differs_between_experiments():
    a = [in_control_group(member_id=i, experiment="campaign:1", control_share=0.5) for i in range(1000)]
    b = [in_control_group(member_id=i, experiment="campaign:2", control_share=0.5) for i in range(1000)]
    assert a != b


@pytest.mark.parametrize(("share", "expected"), [(0, False), (1, True)])
def test_control_share_edges(share, expected):
    assert in_control_group(member_id=7, experiment="x", control_share=share) is expected


def test_uplift_of_a_known_outcome_with_its_interval():
    # 7% of 1,000 treated converted vs 5% of 1,000 controls: +2 points.
    result = conversion_uplift(treatment_converted=70, treatment_size=1000, control_converted=50, control_size=1000)
    assert result.uplift == pytest.approx(0.02)
    # By hand: Wilson 95% bounds are (0.0557, 0.0876) for 70/1000 and (0.0381, 0.0653) for 50/1000, so
    # Newcombe's interval is 0.02 -/+ sqrt(0.0143² + 0.0153²), 0.02 + sqrt(0.0176² + 0.0119²) = (-0.0009, 0.0412).
    assert result.ci_low == pytest.approx(-0.0009, abs=0.0002)
    assert result.ci_high == pytest.approx(0.0412, abs=0.0002)


def test_uplift_interval_stays_sane_at_zero_rates_and_empty_groups():
    result = conversion_uplift(treatment_converted=0, treatment_size=20, control_converted=0, control_size=5)
    assert result.uplift == 0 and result.ci_low < 0 < result.ci_high and result.ci_low >= -1
    empty = conversion_uplift(treatment_converted=3, treatment_size=10, control_converted=0, control_size=0)
    assert empty.uplift is None and empty.treatment_rate == 0.3


@pytest.mark.parametrize(("birthday", "year", "expected"), [
    (date(1990, 2, 28), 2027, date(2027, 2, 28)),
    (date(1992, 2, 29), 2027, date(2027, 2, 28)),
    (date(1992, 2, 29), 2028, date(2028, 2, 29)),
    (date(1985, 12, 31), 2026, date(2026, 12, 31)),
])
def test_leap_day_birthdays_fall_on_28_february_in_other_years(birthday, year, expected):
    assert birthday_in_year(birthday, year) == expected


def test_birthday_greeting_is_at_ten_in_the_members_own_timezone():
    after = datetime(2026, 5, 1, tzinfo=UTC)
    shanghai = next_birthday_greeting(birthday=date(1990, 5, 20), timezone="Asia/Shanghai", after=after)
    new_york = next_birthday_greeting(birthday=date(1990, 5, 20), timezone="America/New_York", after=after)
    assert shanghai == datetime(2026, 5, 20, 2, 0, tzinfo=UTC)
    assert new_york == datetime(2026, 5, 20, 14, 0, tzinfo=UTC)  # EDT, UTC-4


def test_a_greeting_already_past_this_year_is_next_year():
    after = datetime(2026, 5, 20, 3, 0, tzinfo=UTC)  # 11:00 in Shanghai, the greeting time has passed
    nxt = next_birthday_greeting(birthday=date(1990, 5, 20), timezone="Asia/Shanghai", after=after)
    assert nxt.date() == date(2027, 5, 20) and nxt.astimezone(UTC).time() == time(2, 0)


def test_templates_fill_known_variables_and_show_unknown_ones():
    text = "Hi {name}, you are {tier} with {points} points; {nope}"
    assert template_variables(text) == {"name", "tier", "points", "nope"}
    rendered = render_template(text, {"name": "Li", "tier": "B", "points": 120})
    assert rendered == "Hi Li, you are B with 120 points; {nope}"


def test_the_sql_control_bucket_is_the_same_number_as_the_python_one(engine):
    import sqlalchemy as sa

    from domain.journeys.rules import CONTROL_BUCKET_SQL, control_bucket

    sql = "SELECT " + CONTROL_BUCKET_SQL.format(experiment=":e", member_id="CAST(:m AS bigint)")
    with engine.connect() as conn:
        for member_id in (1, 42, 99_999, 2_000_000_000):
            value = conn.scalar(sa.text(sql), {"e": "journey:welcome", "m": member_id})
            assert float(value) == pytest.approx(control_bucket(member_id=member_id, experiment="journey:welcome"))
