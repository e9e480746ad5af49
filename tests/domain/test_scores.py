"""Channel usage facts and preference scores on real PostgreSQL."""

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
from sqlmodel import select

from domain.errors import InvalidInput
from domain.scores import service as scores
from domain.scores.models import ChannelScore, ChannelUsageFact, ScoreModel
from tests.factories import make_member, make_order

NOW = datetime(2026, 12, 2, 4, 0, tzinfo=UTC)
JOINED = datetime(2025, 6, 1, 4, 0, tzinfo=UTC)


def _facts(session, member_id):
    return sorted((f.channel, f.day, f.source, f.transactions) for f in session.exec(
        select(ChannelUsageFact).where(ChannelUsageFact.member_id == member_id)))


def test_a_batch_sent_twice_is_stored_once(session):
    member = make_member(session, now=JOINED)
    rows = [scores.UsageRow(member.id, "phone", date(2026, 11, 3), 2),
            scores.UsageRow(member.id, "sms", date(2026, 11, 4), 1)]
    assert scores.ingest_usage(session, source="ivr", rows=rows, now=NOW) == {"received": 2, "changed": 2}
    assert scores.ingest_usage(session, source="ivr", rows=rows, now=NOW) == {"received": 2, "changed": 0}
    corrected = [scores.UsageRow(member.id, "phone", date(2026, 11, 3), 3)]
    assert scores.ingest_usage(session, source="ivr", rows=corrected, now=NOW)["changed"] == 1
    assert _facts(session, member.id) == [("phone", date(2026, 11, 3), "ivr", 3), ("sms", date(2026, 11, 4), "ivr", 1)]


def test_a_batch_naming_an_unknown_member_or_channel_is_refused(session):
    member = make_member(session, now=JOINED)
    with pytest.raises(InvalidInput) as exc:
        scores.ingest_usage(session, source="ivr", rows=[scores.UsageRow(2**31 - 1, "phone", date(2026, 1, 1), 1)],
                            now=NOW)
    assert exc.value.code == "unknown_member"
    with pytest.raises(InvalidInput) as exc:
        scores.ingest_usage(session, source="ivr", rows=[scores.UsageRow(member.id, "fax", date(2026, 1, 1), 1)],
                            now=NOW)
    assert exc.value.code == "invalid_channel"
    with pytest.raises(InvalidInput):
        scores.ingest_usage(session, source="product", rows=[], now=NOW)


def test_usage_is_derived_from_orders_channels_once_however_often_the_job_runs(session):
    member = make_member(session, now=JOINED)
    day = datetime(2026, 11, 10, 3, 0, tzinfo=UTC)  # 11:00 in Shanghai
    make_order(session, member_id=member.id, occurred_at=day, channel="app")
    make_order(session, member_id=member.id, occurred_at=day + timedelta(hours=2), channel="web")
    make_order(session, member_id=member.id, occurred_at=day + timedelta(days=1), channel="store")
    make_order(session, member_id=member.id, occurred_at=day, channel="carrier-pigeon")  # not a channel we know
    for _ in range(2):
        scores.derive_usage_facts(session, start=date(2026, 11, 1), end=date(2026, 12, 1), now=NOW)
    assert _facts(session, member.id) == [("app", date(2026, 11, 10), "product", 2),
                                          ("store", date(2026, 11, 11), "product", 1)]


def test_days_are_counted_in_the_programs_timezone(session):
    member = make_member(session, now=JOINED)
    make_order(session, member_id=member.id, occurred_at=datetime(2026, 11, 9, 17, 0, tzinfo=UTC), channel="store")
    scores.derive_usage_facts(session, start=date(2026, 11, 10), end=date(2026, 11, 11), now=NOW)
    assert _facts(session, member.id) == [("store", date(2026, 11, 10), "product", 1)]  # 01:00 in Shanghai


def _use(session, member_id, channel, days, per_day=1):
    rows = [scores.UsageRow(member_id, channel, date(2026, 11, 28) - timedelta(days=d * 9), per_day)
            for d in range(days)]
    scores.ingest_usage(session, source="web-log", rows=rows, now=NOW)


def test_members_with_history_are_scored_from_it_and_the_rest_by_the_model(session):
    phone_people = [make_member(session, now=JOINED, city="Beijing", birthday=date(1960, 1, 1)) for _ in range(6)]
    app_people = [make_member(session, now=JOINED, city="Shanghai", birthday=date(2000, 1, 1)) for _ in range(6)]
    for m in phone_people:
        _use(session, m.id, "phone", 8)
        _use(session, m.id, "sms", 1)
    for m in app_people:
        _use(session, m.id, "app", 8, per_day=3)
    newcomer = make_member(session, now=JOINED, city="Shanghai", birthday=date(2001, 5, 5))

    counts = scores.score_members(session, as_of=date(2026, 12, 1), seed=7, now=NOW)
    assert counts["with_history"] == 12 and counts["without_history"] >= 1

    top = scores.top_channel_of(session, member_id=phone_people[0].id)
    assert top["basis"] == "usage" and "phone" in top["why"] and "used most often" in top["why"]
    guess = scores.top_channel_of(session, member_id=newcomer.id)
    assert guess["basis"] == "model" and guess["channel"] == "app"  # looks like the app people
    assert sum(scores.scores_of(session, member_id=newcomer.id).values()) == pytest.approx(1.0, abs=1e-5)
    model = session.get(ScoreModel, counts["version"])
    assert model.window_start == date(2026, 6, 1) and model.window_end == date(2026, 12, 1)
    assert sum(model.entropy_weights.values()) == pytest.approx(1.0, abs=1e-5)
    assert model.coefficients["classes"] == ["phone", "sms", "app"]  # every channel someone used


def test_rescoring_at_the_same_date_and_seed_gives_the_same_scores(session):
    people = [make_member(session, now=JOINED, city=c) for c in ("Beijing", "Shanghai", "Beijing", "Shanghai")]
    for i, m in enumerate(people):
        _use(session, m.id, "phone" if i % 2 else "wechat", 3 + i)
    make_member(session, now=JOINED, city="Beijing")

    def snapshot():
        return sorted((s.member_id, s.channel, s.score, s.basis, s.model_version)
                      for s in session.exec(select(ChannelScore)))

    scores.score_members(session, as_of=date(2026, 12, 1), seed=3, now=NOW)
    first = snapshot()
    scores.score_members(session, as_of=date(2026, 12, 1), seed=3, now=NOW)
    assert snapshot() == first and len(first) == 5 * 6


def test_the_logistic_model_finds_the_known_boundary_of_a_small_fixture():
    # One feature; channel 0 below 0, channel 2 above: symmetric data → intercept 0, the boundary at x = 0.
    x = np.array([[-3.0], [-2.0], [-1.0], [1.0], [2.0], [3.0]])
    mix = np.zeros((6, 6))
    mix[:3, 0] = mix[3:, 2] = 1.0
    model = scores.fit_preference_model(x, mix, seed=1)
    assert model["classes"] == [0, 2]
    assert model["intercept"][0] == pytest.approx(0.0, abs=1e-6)
    assert model["coef"][0][0] > 0
    p = scores.predict_preferences(model, np.array([[0.0], [-3.0], [3.0]]))
    assert p[0, 0] == pytest.approx(0.5) and p[0, 2] == pytest.approx(0.5)
    assert p[1, 0] > 0.8 and p[2, 2] > 0.8
    assert p.sum(axis=1) == pytest.approx([1, 1, 1])


def test_the_stored_model_reproduces_scikit_learns_probabilities():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(5)
    x = rng.normal(size=(300, 3))
    labels = np.argmax(x @ rng.normal(size=(3, 4)), axis=1)
    mix = np.eye(6)[labels]
    model = scores.fit_preference_model(x, mix, seed=5)
    again = scores.fit_preference_model(x, mix, seed=5)
    assert model["coef"] == again["coef"]
    z = (x - np.array(model["mean"])) / np.array(model["std"])
    reference = LogisticRegression(C=1.0, max_iter=300, random_state=5).fit(z, labels).predict_proba(z)
    assert scores.predict_preferences(model, x)[:, :4] == pytest.approx(reference, abs=1e-9)
