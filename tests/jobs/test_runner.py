from datetime import UTC, datetime

import sqlalchemy as sa
from sqlmodel import Session, select

from domain.db import advisory_unlock, try_advisory_lock
from domain.operations.models import JobRun, JobRunStatus
from jobs.runner import run_job

AS_OF = datetime(2026, 6, 1, tzinfo=UTC)


def test_a_run_is_recorded_with_its_as_of_and_counts(committed_engine):
    with committed_engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO job_runs (job, as_of, trigger, status, host, pid, started_at, counts) "
                             "VALUES ('x', :t, 'manual', 'succeeded', 'h', 1, :t, '{}')"),
                     {"t": datetime(2026, 1, 1, tzinfo=UTC)})
    outcome = run_job("prune-job-runs", engine=committed_engine, as_of=AS_OF)
    assert outcome.status == JobRunStatus.SUCCEEDED and outcome.counts == {"deleted": 1}
    with Session(committed_engine) as session:
        run = session.get(JobRun, outcome.run_id)
        assert run.as_of == AS_OF and run.finished_at is not None and run.counts == {"deleted": 1}


def test_a_job_running_elsewhere_is_skipped_not_run_twice(committed_engine):
    with committed_engine.connect() as other_process:
        assert try_advisory_lock(other_process, "job:prune-job-runs")
        try:
            outcome = run_job("prune-job-runs", engine=committed_engine, as_of=AS_OF)
        finally:
            advisory_unlock(other_process, "job:prune-job-runs")
            other_process.commit()
    assert outcome.status == JobRunStatus.SKIPPED
    with Session(committed_engine) as session:
        statuses = session.exec(select(JobRun.status)).all()
    assert statuses == [JobRunStatus.SKIPPED]


def test_job_runs_are_listed_for_admins(app_client, admin_headers, session):
    session.add(JobRun(job="prune-job-runs", as_of=AS_OF, trigger="manual", status=JobRunStatus.SUCCEEDED,
                       host="h", pid=1, started_at=AS_OF, counts={"deleted": 0}))
    session.commit()
    runs = app_client.get("/v1/admin/job-runs", headers=admin_headers).json()
    assert [(r["job"], r["status"]) for r in runs["items"]] == [("prune-job-runs", "succeeded")]
    assert runs["next_cursor"] is None


def test_two_runners_starting_one_job_at_once_run_it_once(committed_engine):
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    from jobs.registry import JOBS, JobSpec, register

    def slow(ctx):
        with ctx.unit_of_work() as session:
            session.execute(sa.text("SELECT pg_sleep(0.5)"))
        return {"ran": 1}

    register(JobSpec(name="test-slow", func=slow, description="test"))
    barrier = Barrier(2, timeout=60)

    def start(_):
        barrier.wait()
        return run_job("test-slow", engine=committed_engine, as_of=AS_OF).status

    try:
        with ThreadPoolExecutor(2) as pool:
            statuses = sorted(pool.map(start, range(2)))
    finally:
        JOBS.pop("test-slow")
    assert statuses == [JobRunStatus.SKIPPED, JobRunStatus.SUCCEEDED]


def test_only_the_run_start_record_skips_waiting_for_the_disk_the_job_and_its_finish_do_not(committed_engine):
    from sqlalchemy import event

    from jobs.registry import JOBS, JobSpec, register

    seen: list[str] = []

    def probe(ctx):
        with ctx.unit_of_work() as session:
            seen.append(session.scalar(sa.text("SELECT current_setting('synchronous_commit')")))
        return {}

    # The setting of every transaction that commits, read just before its COMMIT.
    def before_commit(conn):
        seen.append(conn.exec_driver_sql("SELECT current_setting('synchronous_commit')").scalar())

    register(JobSpec(name="test-probe", func=probe, description="test"))
    event.listen(committed_engine, "commit", before_commit)
    try:
        assert run_job("test-probe", engine=committed_engine, as_of=AS_OF).status == JobRunStatus.SUCCEEDED
    finally:
        event.remove(committed_engine, "commit", before_commit)
        JOBS.pop("test-probe")
    # The job lock's commit, the run's start (not waiting), the job's own transaction, the finish, the run lock's
    # release: only the start's commit skips the wait.
    assert seen == ["on", "off", "on", "on", "on"]
