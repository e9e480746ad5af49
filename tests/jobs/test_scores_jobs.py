"""The channel jobs run through the runner with real commits, and rerunning them changes nothing."""

from datetime import UTC, datetime, timedelta

from sqlmodel import Session, select

from domain.scores.models import ChannelScore, ChannelUsageFact
from jobs.runner import run_job
from tests.factories import make_member, make_order

AS_OF = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)


def test_derive_and_score_jobs_are_idempotent(committed_engine):
    with Session(committed_engine, expire_on_commit=False) as session:
        buyer = make_member(session, now=AS_OF - timedelta(days=400), city="Beijing")
        make_order(session, member_id=buyer.id, occurred_at=AS_OF - timedelta(days=2), channel="wechat")
        make_member(session, now=AS_OF - timedelta(days=300), city="Beijing")
        session.commit()
        buyer_id = buyer.id

    derived = run_job("derive-channel-usage", engine=committed_engine, as_of=AS_OF)
    assert derived.counts == {"facts_written": 1}
    assert run_job("derive-channel-usage", engine=committed_engine, as_of=AS_OF).counts == {"facts_written": 0}
    first = run_job("score-channels", engine=committed_engine, as_of=AS_OF)
    assert first.counts["with_history"] == 1 and first.counts["without_history"] == 1, first.error
    again = run_job("score-channels", engine=committed_engine, as_of=AS_OF)
    assert again.counts["version"] == first.counts["version"]
    with Session(committed_engine) as session:
        assert len(session.exec(select(ChannelUsageFact)).all()) == 1
        top = {(s.member_id, s.channel): s.score for s in session.exec(select(ChannelScore))}
        assert len(top) == 12 and top[(buyer_id, "wechat")] == 1.0


def test_lifecycle_and_churn_jobs_run_through_the_runner_and_rerun_to_the_same_result(committed_engine):
    with Session(committed_engine, expire_on_commit=False) as session:
        make_member(session, now=AS_OF - timedelta(days=10))
        make_member(session, now=AS_OF - timedelta(days=300))
        session.commit()
    first = run_job("refresh-lifecycle", engine=committed_engine, as_of=AS_OF)
    assert first.counts == {"onboarding": 1, "growth": 0, "maturity": 0, "decline": 1}, first.error
    assert run_job("refresh-lifecycle", engine=committed_engine, as_of=AS_OF).counts == first.counts
    warned = run_job("churn-warning", engine=committed_engine, as_of=AS_OF)
    assert warned.counts == {"scored": 2, "at_risk": 1, "left_cohorts": 0}, warned.error
    assert run_job("churn-warning", engine=committed_engine, as_of=AS_OF).counts == warned.counts
