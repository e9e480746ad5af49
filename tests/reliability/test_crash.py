"""A jobs process killed (SIGKILL) in the middle of an expiry run, then restarted: nothing lost, nothing doubled."""

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlmodel import Session

from cli.seed import seed
from domain.points.service import verify_points

SEEDED_AT = datetime(2026, 1, 1, tzinfo=UTC)
FAR = "2030-01-01T00:00:00+00:00"


def expired_entries(engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(sa.text("SELECT count(*) FROM points_ledger WHERE kind = 'expire'")))


def test_a_killed_expiry_run_leaves_a_consistent_ledger_and_the_rerun_expires_each_lot_once(committed_engine):
    seed(committed_engine, members=3_000, months=24, now=SEEDED_AT)
    with committed_engine.connect() as conn:
        due = int(conn.scalar(sa.text("SELECT count(*) FROM points_lots WHERE state = 'available' AND remaining > 0")))
    # Tiny chunks: hundreds of transactions, so the kill lands mid-run.
    env = {**os.environ, "LOYALTY_JOB_CHUNK_MEMBERS": "5", "LOYALTY_LOG_LEVEL": "warning"}
    command = [sys.executable, "-m", "cli", "jobs", "run", "expire-points", "--as-of", FAR, "--no-progress"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while expired_entries(committed_engine) < due // 10 and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = expired_entries(committed_engine)
    assert 0 < partial < due, "the kill must land in the middle of the run"
    with Session(committed_engine) as session:
        assert verify_points(session) == []

    rerun = subprocess.run(command, env={**env, "LOYALTY_JOB_CHUNK_MEMBERS": "50000"}, capture_output=True, text=True,
                           timeout=120)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    with committed_engine.connect() as conn:
        per_lot = conn.execute(sa.text(
            "SELECT count(*), count(DISTINCT lot_id) FROM points_ledger WHERE kind = 'expire'")).one()
        left = conn.scalar(sa.text("SELECT count(*) FROM points_lots WHERE state = 'available' AND remaining > 0"))
    assert per_lot == (due, due) and left == 0
    with Session(committed_engine) as session:
        assert verify_points(session) == []
