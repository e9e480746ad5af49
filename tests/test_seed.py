"""The demo seeder builds a consistent population."""

import re

import sqlalchemy as sa
from sqlmodel import Session

from cli.seed import seed
from domain.members.rules import parse_member_code
from domain.points.service import verify_points


def test_seeding_builds_members_with_history_that_the_ledger_check_accepts(committed_engine):
    counts = seed(committed_engine, members=2_000, months=24)
    assert counts["members"] == 2_000 and counts["orders"] >= 2_000 and counts["points accounts"] == 2_000
    with committed_engine.connect() as conn:
        phones, distinct, codes = conn.execute(sa.text(
            "SELECT count(phone), count(DISTINCT phone), array_agg(member_code) FROM members")).one()
        assert phones == distinct == 2_000
        assert all(parse_member_code(c) for c in codes)
        assert all(re.match(r"^\+86139\d{8}$", p) for p in conn.scalars(sa.text("SELECT phone FROM members")))
        assert conn.scalar(sa.text("SELECT count(*) FROM members WHERE wechat_openid IS NOT NULL")) > 400
        assert conn.scalar(sa.text("SELECT count(DISTINCT tier) FROM members")) >= 3
        assert conn.scalar(sa.text("SELECT count(*) FROM member_consents")) > 2_000
    with Session(committed_engine) as session:
        assert verify_points(session) == []
    more = seed(committed_engine, members=100, months=3, seed=7)  # seeding again adds, never collides
    assert more["members"] == 100


def test_the_seeded_truth_drives_behaviour_that_the_scores_recover(committed_engine):
    from datetime import UTC, datetime

    from domain.scores import report as score_report
    from domain.scores import service as scores
    from domain.scores.effect import campaign_effect

    now = datetime(2026, 12, 2, 4, 0, tzinfo=UTC)
    counts = seed(committed_engine, members=1_500, months=12, now=now)
    assert counts["channel truth"] == 1_500 and counts["channel usage"] > 3_000
    with Session(committed_engine) as session:
        prefs = dict(session.execute(sa.text("SELECT preferred, count(*) FROM demo_channel_truth GROUP BY 1")).all())
        assert set(prefs) == {"phone", "sms", "wechat", "app", "store", "email"}
        report = score_report.validate(session, as_of=now.date(), seed=1)
        assert report["truth"] == "seeded"
        for channel in ("phone", "wechat", "store"):
            model, rnd = (report["channels"][channel]["rankings"][m]["tops"][0]["lift"] for m in ("model", "random"))
            assert model > 2 * max(rnd, 0.5), (channel, model, rnd)
        scores.score_members(session, as_of=now.date(), seed=1, now=now)
        session.commit()
        effect = campaign_effect(committed_engine, members=600, seed=3, now=now)
        matched, unmatched = effect["arms"]["matched"], effect["arms"]["unmatched"]
        assert matched["contacted"] > 300 and unmatched["contacted"] > 300
        assert matched["on_true_preference"] > unmatched["on_true_preference"]
        assert session.scalar(sa.text("SELECT count(*) FROM touches")) == 0  # both runs were rolled back
