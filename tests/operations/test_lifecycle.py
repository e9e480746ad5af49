"""Stopping and crashing: SIGTERM abandons a run cleanly at a chunk boundary, a crashed run is marked
abandoned by the next process, and /readyz refuses a schema that is not at head."""

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from domain import migrations
from domain.db import unit_of_work
from jobs.runner import abandon_orphaned_runs
from tests.factories import make_member, make_order

AT = datetime(2026, 1, 1, tzinfo=UTC)


def long_release_run(engine) -> subprocess.Popen:
    """A release-points run over a member-id range of two million, one member per chunk: it runs for ages,
    committing chunk after chunk, until it is stopped."""
    with unit_of_work(engine) as session:
        first = make_member(session, now=AT)
        make_order(session, member_id=first.id, occurred_at=AT)
        session.execute(sa.text("ALTER SEQUENCE members_id_seq RESTART 2000000"))
        last = make_member(session, now=AT)
        make_order(session, member_id=last.id, occurred_at=AT)
        session.commit()
    env = {**os.environ, "LOYALTY_JOB_CHUNK_MEMBERS": "1", "LOYALTY_LOG_FORMAT": "json"}
    proc = subprocess.Popen([sys.executable, "-m", "cli", "jobs", "run", "release-points", "--no-progress"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while run_statuses(engine) != ["running"]:
        assert time.monotonic() < deadline and proc.poll() is None, "the run did not start"
        time.sleep(0.1)
    time.sleep(0.5)  # well into its chunks
    return proc


def run_statuses(engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.scalars(sa.text("SELECT status FROM job_runs WHERE job = 'release-points' ORDER BY id")))


@pytest.mark.timeout(120)
def test_a_jobs_process_given_sigterm_mid_run_exits_within_10_s_leaving_no_running_row(committed_engine):
    proc = long_release_run(committed_engine)
    stopped_at = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=10)
    assert time.monotonic() - stopped_at < 10
    assert proc.returncode == 1  # the command says the run did not finish
    assert run_statuses(committed_engine) == ["abandoned"]
    with committed_engine.connect() as conn:
        error, counts = conn.execute(sa.text("SELECT error, counts FROM job_runs")).one()
    assert "chunk boundary" in error and counts["done"] > 0


@pytest.mark.timeout(120)
def test_a_run_whose_process_died_is_marked_abandoned_by_the_next_process_and_a_live_one_is_not(committed_engine):
    proc = long_release_run(committed_engine)
    try:
        assert abandon_orphaned_runs(committed_engine) == []  # alive: it holds its run's lock
        assert run_statuses(committed_engine) == ["running"]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    deadline = time.monotonic() + 10  # PostgreSQL notices the dead connection and frees its locks
    while not (abandoned := abandon_orphaned_runs(committed_engine)):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert len(abandoned) == 1 and run_statuses(committed_engine) == ["abandoned"]


@pytest.mark.timeout(60)
def test_the_scheduler_process_stops_on_sigterm_and_says_so_on_its_health_port(committed_engine):
    port = 8203
    env = {**os.environ, "LOYALTY_JOBS_HTTP_PORT": str(port), "LOYALTY_LOG_FORMAT": "json"}
    proc = subprocess.Popen([sys.executable, "-m", "cli", "jobs"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "the scheduler did not start"
            time.sleep(0.2)
        stopped_at = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        assert time.monotonic() - stopped_at < 10 and proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_readyz_answers_503_while_the_database_is_behind_head(engine):
    (head,) = migrations.head_revisions()
    script = migrations.ScriptDirectory.from_config(migrations.alembic_config())
    previous = script.get_revision(head).down_revision
    from api.main import create_app

    with TestClient(create_app()) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["revision"] == head
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = :v"), {"v": previous})
        try:
            behind = client.get("/readyz")
            assert behind.status_code == 503
            assert behind.json() == {"status": "unavailable", "database": "not_at_head", "revision": previous,
                                     "head": head}
        finally:
            with engine.begin() as conn:
                conn.execute(sa.text("UPDATE alembic_version SET version_num = :v"), {"v": head})
        assert client.get("/readyz").status_code == 200
