import io
import json
import logging

import pytest
from fastapi.testclient import TestClient

from cli.logs import make_formatter
from domain.db import unit_of_work
from domain.settings import get_settings
from tests.factories import make_api_key

TOKEN = "scrape-token-for-tests"


@pytest.fixture
def metrics_token(monkeypatch):
    monkeypatch.setenv("LOYALTY_METRICS_TOKEN", TOKEN)
    get_settings.cache_clear()
    yield {"Authorization": f"Bearer {TOKEN}"}
    monkeypatch.delenv("LOYALTY_METRICS_TOKEN")
    get_settings.cache_clear()


@pytest.fixture
def live_client(committed_engine):
    """The API on its real transaction dependency (work commits), with a committed app key."""
    from api.main import create_app

    with unit_of_work(committed_engine) as session:
        _, key = make_api_key(session, scope="app", name="live-app")
        session.commit()
    with TestClient(create_app(), raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {key}"
        yield client


@pytest.fixture
def json_log():
    """Every log line written while the test runs, as the JSON objects production writes."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(make_formatter("json"))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
