"""docker-compose.yml cannot be run here (no Docker engine), so its wiring is checked against the app."""

import yaml
from click.testing import CliRunner

from cli.main import main
from domain.settings import PROJECT_ROOT, Settings

COMPOSE = yaml.safe_load((PROJECT_ROOT / "docker-compose.yml").read_text())


def known_variables() -> set[str]:
    names = {"DATABASE_URL"}
    for name, field in Settings.model_fields.items():
        names.add(field.validation_alias if isinstance(field.validation_alias, str) else f"LOYALTY_{name.upper()}")
    return names


def test_compose_has_the_database_the_api_and_the_jobs_process():
    assert set(COMPOSE["services"]) == {"db", "api", "jobs"}
    assert COMPOSE["services"]["db"]["image"].startswith("postgres:")


def test_every_service_command_is_a_real_loyalty_command():
    for name in ("api", "jobs"):
        command = COMPOSE["services"][name]["command"]
        assert command[0] == "loyalty"
        # --help after the arguments makes click parse (and refuse) unknown options without running anything.
        result = CliRunner().invoke(main, [*command[1:], "--help"])
        assert result.exit_code == 0, (name, result.output)
    assert "--no-jobs" in COMPOSE["services"]["api"]["command"]
    assert COMPOSE["services"]["jobs"]["command"] == ["loyalty", "jobs"]


def test_every_environment_variable_is_one_the_app_reads():
    for name in ("api", "jobs"):
        env = COMPOSE["services"][name]["environment"]
        assert set(env) <= known_variables(), set(env) - known_variables()
        db = COMPOSE["services"]["db"]["environment"]
        assert env["DATABASE_URL"] == (f"postgresql://{db['POSTGRES_USER']}:{db['POSTGRES_PASSWORD']}"
                                       f"@db:5432/{db['POSTGRES_DB']}")


def test_the_api_port_and_healthcheck_match_the_served_port():
    api = COMPOSE["services"]["api"]
    port = api["command"][api["command"].index("--port") + 1]
    assert api["ports"] == [f"{port}:{port}"]
    assert f"127.0.0.1:{port}/readyz" in " ".join(api["healthcheck"]["test"])
