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
