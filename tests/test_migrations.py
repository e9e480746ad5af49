"""The migrations build the schema the models describe, and they are reversible."""

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from domain import migrations
from domain.db import create_db_engine, ensure_database


def test_models_and_migrations_agree(engine):
    assert migrations.pending_differences(engine) == []


def test_migrations_go_down_to_nothing_and_up_again(database_url):
    url = make_url(database_url)
    scratch = f"{url.database}_migrations"
    ensure_database(database_url, scratch)
    eng = create_db_engine(url.set(database=scratch).render_as_string(hide_password=False), pool_size=2)
    try:
        with eng.begin() as conn:
            conn.exec_driver_sql("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        migrations.upgrade(eng)
        migrations.downgrade(eng, "base")
        with eng.connect() as conn:
            left = conn.scalars(sa.text("SELECT tablename FROM pg_tables WHERE schemaname='public' "
                                        "AND tablename <> 'alembic_version'")).all()
        assert left == []
        migrations.upgrade(eng)
        assert migrations.pending_differences(eng) == []
    finally:
        eng.dispose()


def test_the_partial_indexes_are_the_models_partial_indexes(engine):
    # Autogenerate does not compare an index's WHERE clause, so a partial index in a model with a full one in the
    # database (or the reverse) passes the test above: ix_domain_events_dedupe_key (1707) is partial so that the
    # events without a key, most of them, enter no index.
    from sqlmodel import SQLModel

    import domain.models  # noqa: F401

    in_models = {index.name for table in SQLModel.metadata.tables.values() for index in table.indexes
                 if index.dialect_options["postgresql"]["where"] is not None}
    with engine.connect() as conn:
        in_database = set(conn.scalars(sa.text(
            "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND i.indpred IS NOT NULL")))
    assert "ix_domain_events_dedupe_key" in in_models
    assert in_models == in_database
