"""Apply and check Alembic migrations from code (the CLI, ``serve`` on start, tests)."""

from __future__ import annotations

from functools import lru_cache

from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, Engine
from sqlmodel import SQLModel

from alembic import command
from domain.settings import PROJECT_ROOT


def alembic_config(engine: Engine | None = None) -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "alembic"))
    if engine is not None:
        config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False)
                               .replace("%", "%%"))
    return config


@lru_cache
def head_revisions() -> frozenset[str]:
    """The revisions this code's migrations end at (one, normally)."""
    return frozenset(ScriptDirectory.from_config(alembic_config()).get_heads())


def database_revisions(conn: Connection) -> frozenset[str]:
    """The revisions the database is at (empty if it was never migrated)."""
    return frozenset(MigrationContext.configure(conn).get_current_heads())


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database to ``revision`` (serialised by an advisory lock inside the migration)."""
    with engine.begin() as conn:
        config = alembic_config(engine)
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def downgrade(engine: Engine, revision: str) -> None:
    with engine.begin() as conn:
        config = alembic_config(engine)
        config.attributes["connection"] = conn
        command.downgrade(config, revision)


def pending_differences(engine: Engine) -> list[object]:
    """What autogenerate would add: empty when the models and the migrations agree."""
    import domain.models  # noqa: F401

    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, SQLModel.metadata))
