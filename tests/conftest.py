"""Test fixtures on a real PostgreSQL.

``TEST_DATABASE_URL`` names a database the tests may wipe; without it an embedded PostgreSQL is started
under ``.var/test-pgdata``. The schema is rebuilt by the migrations once per run; each test then runs in a
transaction that is rolled back (``session``), except race tests, which use ``committed_engine`` with real
commits from several connections and truncate afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from domain import migrations
from domain.db import create_db_engine, embedded_database_url, normalise_url, set_engine
from domain.settings import PROJECT_ROOT
from tests.factories import make_api_key, make_staff, staff_auth


def _test_database_url() -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        return normalise_url(url)
    return embedded_database_url(PROJECT_ROOT / ".var" / "test-pgdata", database="loyalty_test")


@pytest.fixture(scope="session")
def database_url() -> str:
    return _test_database_url()


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    eng = create_db_engine(database_url, pool_size=20, application_name="loyalty-tests")
    with eng.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA IF EXISTS public CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA public")
    migrations.upgrade(eng)
    os.environ["DATABASE_URL"] = database_url  # child processes started by tests use the same database
    set_engine(eng)
    yield eng
    set_engine(None)
    eng.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session inside a transaction that is rolled back after the test; commits become savepoints."""
    conn = engine.connect()
    trans = conn.begin()
    sess = Session(bind=conn, join_transaction_mode="create_savepoint", expire_on_commit=False)
    try:
        yield sess
    finally:
        sess.close()
        trans.rollback()
        conn.close()


def _truncate_all(engine: Engine) -> None:
    with engine.begin() as conn:
        tables = conn.scalars(sa.text(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'"
        )).all()
        if tables:
            conn.exec_driver_sql("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE")


@pytest.fixture
def committed_engine(engine: Engine) -> Iterator[Engine]:
    """For races and jobs across processes: work really commits; every table is emptied afterwards."""
    _truncate_all(engine)
    try:
        yield engine
    finally:
        _truncate_all(engine)


@pytest.fixture
def now() -> datetime:
    return datetime(2026, 3, 2, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai: outside quiet hours


def session_override(session: Session) -> Callable[[], Iterator[Session]]:
    """The API's transaction dependency, bound to the test's rolled-back session."""

    def test_session() -> Iterator[Session]:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise

    return test_session


def bind_to_session(app: FastAPI, session: Session) -> None:
    """Every route of ``app`` on the test's session: the sync routes' transaction and the hot routes'
    database (api/hot.py; their pooled connections would not see the test's uncommitted rows)."""
    from api.deps import get_session
    from api.hot import SessionDb, hot_database

    async def test_hot_database() -> SessionDb:
        return SessionDb(session)

    app.dependency_overrides[get_session] = session_override(session)
    app.dependency_overrides[hot_database] = test_hot_database


@pytest.fixture
def app_client(session: Session) -> Iterator[TestClient]:
    """The API on the test's rolled-back transaction."""
    from api.main import create_app

    app = create_app()
    bind_to_session(app, session)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def _auth(session: Session, scope: str, name: str) -> dict[str, str]:
    _, key = make_api_key(session, scope=scope, name=name)
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def app_headers(session: Session) -> dict[str, str]:
    return _auth(session, "app", "test-app")


@pytest.fixture
def crm_headers(session: Session) -> dict[str, str]:
    """A logged-in call-center agent, ``agent-7``, without the PII right (staff identity, not a header)."""
    return staff_auth(session, make_staff(session, role="agent", username="agent-7"))


@pytest.fixture
def crm_key_headers(session: Session) -> dict[str, str]:
    """A CRM integration's key (a system, not a person)."""
    return _auth(session, "crm", "test-crm")


@pytest.fixture
def staff_headers(session: Session) -> Callable[..., dict[str, str]]:
    """Headers for a logged-in staff member: ``staff_headers("supervisor", username="sup-1", pii_access=True)``."""

    def make(role: str = "agent", **overrides: object) -> dict[str, str]:
        return staff_auth(session, make_staff(session, role=role, **overrides))  # type: ignore[arg-type]

    return make


@pytest.fixture
def admin_headers(session: Session) -> dict[str, str]:
    return _auth(session, "admin", "test-admin")
