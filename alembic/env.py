"""Alembic environment: the URL comes from the caller (``loyalty db upgrade``, tests) or the settings."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import pool
from sqlmodel import SQLModel

import domain.models  # noqa: F401  (registers every table on the metadata)
from alembic import context
from domain.db import normalise_url, resolve_database_url

config = context.config
target_metadata = SQLModel.metadata


def run_migrations_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url") or resolve_database_url(),
                      target_metadata=target_metadata, literal_binds=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url") or resolve_database_url()
    engine = sa.create_engine(normalise_url(url), poolclass=pool.NullPool)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(connection=connection, target_metadata=target_metadata, compare_type=True)
    with context.begin_transaction():
        # Migrations of big tables may run long; they are not bound by the service's statement timeout.
        connection.exec_driver_sql("SET LOCAL statement_timeout = 0")
        # Two processes starting at once (two `serve` replicas) must not both migrate.
        connection.exec_driver_sql("SELECT pg_advisory_xact_lock(hashtextextended('loyalty:migrate', 0))")
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
