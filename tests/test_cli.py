"""The `loyalty` command against the test database."""

import json

from click.testing import CliRunner
from sqlmodel import Session, select

from cli.main import main
from domain.access.models import ApiKey
from domain.access.rules import hash_key


def test_apikey_create_prints_the_key_once_and_stores_only_its_hash(committed_engine):
    result = CliRunner().invoke(main, ["apikey", "create", "--name", "wechat-h5", "--scope", "app"])
    assert result.exit_code == 0, result.output
    key = result.stdout.strip()
    with Session(committed_engine) as session:
        row = session.exec(select(ApiKey).where(ApiKey.name == "wechat-h5")).one()
    assert row.key_hash == hash_key(key) and key not in row.key_hash and row.scope == "app"


def test_apikey_create_issues_a_pos_key(committed_engine):
    result = CliRunner().invoke(main, ["apikey", "create", "--name", "till-12", "--scope", "pos"])
    assert result.exit_code == 0, result.output
    with Session(committed_engine) as session:
        assert session.exec(select(ApiKey).where(ApiKey.name == "till-12")).one().scope == "pos"


def test_apikey_create_refuses_a_duplicate_name_cleanly(committed_engine):
    runner = CliRunner()
    runner.invoke(main, ["apikey", "create", "--name", "crm", "--scope", "crm"])
    again = runner.invoke(main, ["apikey", "create", "--name", "crm", "--scope", "crm"])
    assert again.exit_code != 0 and "api_key_exists" in again.output and "Traceback" not in again.output


def test_jobs_run_takes_as_of_and_prints_counts(committed_engine):
    result = CliRunner().invoke(main, ["jobs", "run", "prune-job-runs", "--as-of", "2026-06-01"])
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout.strip().splitlines()[-1])
    assert printed["status"] == "succeeded" and printed["counts"] == {"deleted": 0}


def test_unknown_job_and_bad_date_are_clear_errors(committed_engine):
    runner = CliRunner()
    assert "unknown job" in runner.invoke(main, ["jobs", "run", "nope"]).output
    assert "not an ISO date" in runner.invoke(main, ["jobs", "run", "prune-job-runs", "--as-of", "soon"]).output


def test_every_command_explains_itself():
    runner = CliRunner()
    for args in (["--help"], ["serve", "--help"], ["jobs", "--help"], ["db", "--help"], ["apikey", "--help"]):
        result = runner.invoke(main, args)
        assert result.exit_code == 0 and "Usage:" in result.output, args
