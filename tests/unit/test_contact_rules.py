"""The gate's rules, table-driven: each rule and its reason."""

from datetime import UTC, datetime, time, timedelta

import pytest

from domain.contact_policy.rules import (
    Cap,
    Facts,
    Policy,
    Purpose,
    Verdict,
    cap_allows,
    decide,
    in_quiet_hours,
    next_allowed_time,
)

NOW = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai
DAY = timedelta(days=1)
POLICY = Policy(quiet_start=time(21), quiet_end=time(9), onboarding=30 * DAY, complaint_cooldown=90 * DAY,
                max_deferral=7 * DAY,
                caps=(Cap("marketing_calls", frozenset({"marketing"}), frozenset({"phone"}), 1, 30 * DAY),
                      Cap("marketing_messages", frozenset({"marketing"}), frozenset({"sms", "wechat", "email", "app"}),
                          4, 7 * DAY)),
                tier_overrides={"A": {"marketing_calls": 2}})


def facts(**overrides):
    base = dict(member_status="active", tier="C", timezone="Asia/Shanghai", joined_at=NOW - 100 * DAY,
                consent="granted", unreachable=None, has_address=True, last_complaint_at=None, planned={})
    base.update(overrides)
    return Facts(**base)


def ask(purpose="marketing", channel="sms", now=NOW, **fact_overrides):
    return decide(facts=facts(**fact_overrides), channel=channel, purpose=Purpose(purpose), policy=POLICY, now=now)


@pytest.mark.parametrize(("overrides", "purpose", "verdict", "reason"), [
    ({}, "marketing", Verdict.APPROVED, "marketing"),
    ({"member_status": "closed"}, "service", Verdict.REJECTED, "member_closed"),
    ({"unreachable": "wechat_unsubscribed"}, "service", Verdict.REJECTED, "channel_unreachable"),
    ({"has_address": False}, "service", Verdict.REJECTED, "no_address"),
    ({"consent": "opted_out"}, "service", Verdict.REJECTED, "consent_opted_out"),
    ({"consent": None}, "marketing", Verdict.REJECTED, "consent_missing"),
    ({"consent": None}, "care", Verdict.APPROVED, "care"),
    ({"last_complaint_at": NOW - 89 * DAY}, "marketing", Verdict.REJECTED, "complaint_cooldown"),
    ({"last_complaint_at": NOW - 91 * DAY}, "marketing", Verdict.APPROVED, "marketing"),
    ({"last_complaint_at": NOW - DAY}, "care", Verdict.APPROVED, "care"),
    ({"last_complaint_at": NOW - DAY}, "service", Verdict.APPROVED, "service"),
    ({"joined_at": NOW - 29 * DAY}, "marketing", Verdict.REJECTED, "onboarding_window"),
    ({"joined_at": NOW - 29 * DAY}, "care", Verdict.APPROVED, "care"),
])
def test_each_rule_answers_with_its_reason(overrides, purpose, verdict, reason):
    decision = ask(purpose=purpose, **overrides)
    assert decision.verdict == verdict and reason in decision.reasons


def test_a_rejection_that_will_lift_says_when():
    decision = ask(joined_at=NOW - 20 * DAY)
    assert decision.next_allowed_at == NOW + 10 * DAY


def test_marketing_in_quiet_hours_is_deferred_to_nine_local_not_dropped():
    late = datetime(2026, 3, 10, 14, 30, tzinfo=UTC)  # 22:30 in Shanghai
    decision = ask(now=late)
    assert decision.verdict == Verdict.DEFERRED and "quiet_hours" in decision.reasons
    assert decision.send_at == datetime(2026, 3, 11, 1, 0, tzinfo=UTC)  # 09:00 next morning in Shanghai


def test_service_ignores_quiet_hours_and_caps():
    late = datetime(2026, 3, 10, 14, 30, tzinfo=UTC)
    full = {"marketing_messages": [NOW - DAY] * 4}
    decision = ask(purpose="service", now=late, planned=full)
    assert decision.verdict == Verdict.APPROVED and decision.send_at == late


@pytest.mark.parametrize(("timezone", "now", "expected"), [
    # Shanghai has no DST: 22:00 local on 7 March -> 09:00 local on 8 March = 01:00 UTC.
    ("Asia/Shanghai", datetime(2026, 3, 7, 14, 0, tzinfo=UTC), datetime(2026, 3, 8, 1, 0, tzinfo=UTC)),
    # New York springs forward on 8 March 2026: 22:00 EST (UTC-5) -> 09:00 EDT (UTC-4) = 13:00 UTC.
    ("America/New_York", datetime(2026, 3, 8, 3, 0, tzinfo=UTC), datetime(2026, 3, 8, 13, 0, tzinfo=UTC)),
    # And falls back on 1 November 2026: 23:00 EDT -> 09:00 EST = 14:00 UTC.
    ("America/New_York", datetime(2026, 11, 1, 3, 0, tzinfo=UTC), datetime(2026, 11, 1, 14, 0, tzinfo=UTC)),
    # 03:00 local is quiet too: the same morning's 09:00.
    ("Asia/Shanghai", datetime(2026, 3, 7, 19, 0, tzinfo=UTC), datetime(2026, 3, 8, 1, 0, tzinfo=UTC)),
])
def test_quiet_hour_deferral_is_in_the_members_own_time_across_dst(timezone, now, expected):
    assert in_quiet_hours(now, timezone, time(21), time(9))
    assert next_allowed_time(now, timezone, time(21), time(9)) == expected


def test_a_full_message_cap_defers_to_when_the_oldest_touch_leaves_the_window():
    planned = {"marketing_messages": [NOW - 6 * DAY, NOW - 2 * DAY, NOW - DAY, NOW - DAY]}
    decision = ask(planned=planned)
    assert decision.verdict == Verdict.DEFERRED and "cap:marketing_messages" in decision.reasons
    assert decision.send_at == NOW + DAY


def test_a_call_cap_beyond_the_deferral_horizon_is_rejected():
    decision = ask(channel="phone", planned={"marketing_calls": [NOW - 5 * DAY]})
    assert decision.verdict == Verdict.REJECTED and decision.reasons == ("cap:marketing_calls",)


def test_tier_overrides_raise_a_cap():
    assert ask(channel="phone", tier="A", planned={"marketing_calls": [NOW - 5 * DAY]}).verdict == Verdict.APPROVED


@pytest.mark.parametrize(("times", "at", "limit", "ok"), [
    ([], NOW, 1, True),
    ([NOW - 29 * DAY], NOW, 1, False),
    ([NOW - 30 * DAY], NOW, 1, True),
    ([NOW + 10 * DAY], NOW, 1, False),         # a touch already planned later counts too
    ([NOW - DAY] * 3, NOW, 4, True),
    ([NOW - DAY] * 4, NOW, 4, False),
])
def test_cap_arithmetic_over_rolling_windows(times, at, limit, ok):
    assert cap_allows(times, at, limit, 30 * DAY if limit == 1 else 7 * DAY) is ok
