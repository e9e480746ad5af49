"""The request edge in the application: body bounds, rate limits, CORS, access-log masking."""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient

from api.edge import Bucket, Buckets, MaskedQueryFilter, mask_query, take_token
from domain.settings import get_settings
from tests.conftest import bind_to_session


@pytest.fixture
def edge_client(session, monkeypatch):
    """Build the app after the test has changed settings (the edge reads them when the app is created)."""
    from api.main import create_app

    def build(**settings: object) -> TestClient:
        for name, value in settings.items():
            monkeypatch.setattr(get_settings(), name, value)
        app = create_app()
        bind_to_session(app, session)
        return TestClient(app, raise_server_exceptions=False)

    return build


def _assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]["code"] == code
    return body


# --- body size ------------------------------------------------------------------------------------------

def test_a_declared_body_over_the_limit_is_refused_before_authentication(edge_client):
    client = edge_client(max_body_bytes=1_000)
    response = client.post("/v1/orders", content=b"x" * 1_001, headers={"Content-Type": "application/json"})
    body = _assert_error(response, 413, "payload_too_large")  # not 401: nothing behind the edge ran
    assert body["error"]["details"] == {"max_body_bytes": 1_000}
    assert response.headers["connection"] == "close"


def test_a_chunked_body_over_the_limit_is_refused_while_it_streams(edge_client, app_headers):
    client = edge_client(max_body_bytes=1_000)

    def chunks():  # no Content-Length: the edge counts the bytes as they come
        for _ in range(100):
            yield b"x" * 100

    response = client.post("/v1/orders", content=chunks(), headers={**app_headers, "Content-Type": "application/json"})
    _assert_error(response, 413, "payload_too_large")


def test_a_body_within_the_limit_reaches_the_route(edge_client, app_headers):
    client = edge_client(max_body_bytes=1_000)
    response = client.post("/v1/members", json={"source_channel": "app", "phone": "13800138000"}, headers=app_headers)
    assert response.status_code == 201, response.text


def test_a_response_given_without_reading_the_body_closes_the_connection(edge_client):
    client = edge_client()
    response = client.request("GET", "/v1/members/1", content=b"{}", headers={"Content-Type": "application/json"})
    _assert_error(response, 401, "missing_api_key")  # a route with no body parameter never reads it
    assert response.headers["connection"] == "close"


# --- rate limits ----------------------------------------------------------------------------------------
# Rates of a token per 100 s: on a loaded machine a second may pass between two requests, and must not refill.

@pytest.mark.parametrize(("tokens", "elapsed", "passes", "wait"), [
    (5.0, 0.0, True, 0.0),      # tokens left
    (0.0, 0.0, False, 0.5),     # empty: one token comes in 1/rate seconds
    (0.0, 0.5, True, 0.0),      # refilled by the time passed
    (0.5, 0.0, False, 0.25),    # half a token: half the wait
    (9.5, 100.0, True, 0.0),    # never more than the burst
])
def test_take_token(tokens, elapsed, passes, wait):
    bucket = Bucket(tokens=tokens, at=0.0)
    assert take_token(bucket, now=elapsed, rate=2.0, burst=10.0) == pytest.approx(wait)
    assert bucket.tokens <= 10.0
    if not passes:  # a refusal takes nothing
        assert bucket.tokens == pytest.approx(min(10.0, tokens + elapsed * 2.0))


def test_buckets_forget_the_least_recently_used_beyond_their_capacity():
    buckets = Buckets(rate=1.0, burst=1.0, capacity=2)
    assert buckets.take("a", 0.0) == 0 and buckets.take("b", 0.0) == 0
    assert buckets.take("a", 0.0) > 0          # a is empty, and now the most recently used
    assert buckets.take("c", 0.0) == 0          # c pushes out b, not a
    assert buckets.take("a", 0.0) > 0


def test_a_credential_over_its_rate_gets_429_with_retry_after(edge_client, crm_key_headers):
    client = edge_client(rate_limit_per_key=0.01, rate_limit_per_key_burst=3, rate_limit_per_ip=0)
    statuses = [client.get("/v1/members/1", headers=crm_key_headers).status_code for _ in range(5)]
    assert statuses[:3] == [404, 404, 404] and statuses[3:] == [429, 429]
    response = client.get("/v1/members/1", headers=crm_key_headers)
    body = _assert_error(response, 429, "rate_limited")
    assert body["error"]["details"]["limit"] == "credential"
    assert int(response.headers["retry-after"]) >= 1


def test_each_credential_has_its_own_bucket(edge_client, crm_key_headers, crm_headers):
    client = edge_client(rate_limit_per_key=0.01, rate_limit_per_key_burst=1, rate_limit_per_ip=0)
    assert client.get("/v1/members/1", headers=crm_key_headers).status_code == 404
    assert client.get("/v1/members/1", headers=crm_key_headers).status_code == 429
    assert client.get("/v1/members/1", headers=crm_headers).status_code == 404


def test_an_address_over_its_rate_gets_429_even_without_credentials(edge_client):
    client = edge_client(rate_limit_per_ip=0.01, rate_limit_per_ip_burst=2)
    statuses = [client.post("/v1/orders", json={}).status_code for _ in range(4)]
    assert statuses == [401, 401, 429, 429]
    assert client.get("/healthz").status_code == 200  # probes are never limited


def test_the_configured_rate_is_shared_among_the_workers(edge_client):
    client = edge_client(rate_limit_per_ip=0.02, rate_limit_per_ip_burst=4, workers=2)
    statuses = [client.post("/v1/orders", json={}).status_code for _ in range(3)]
    assert statuses == [401, 401, 429]  # this worker's share of a burst of 4


# --- CORS -----------------------------------------------------------------------------------------------

def _preflight(client: TestClient, origin: str):
    return client.options("/v1/members", headers={"Origin": origin, "Access-Control-Request-Method": "POST",
                                                  "Access-Control-Request-Headers": "authorization"})


def test_no_origin_is_allowed_by_default(edge_client):
    client = edge_client()
    assert "access-control-allow-origin" not in _preflight(client, "https://evil.example").headers
    assert "access-control-allow-origin" not in client.get("/healthz", headers={"Origin": "https://m.example"}).headers


def test_a_configured_origin_is_allowed_and_others_are_not(edge_client):
    client = edge_client(cors_origins=["https://m.example"])
    allowed = _preflight(client, "https://m.example")
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://m.example"
    refused = _preflight(client, "https://evil.example")
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers


# --- the access log -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("logged", "expected"), [
    ("/v1/members/lookup?phone=13800138000", "/v1/members/lookup?phone=***"),
    ("/v1/crm/members/lookup?phone=%2B8613800138000&x=1", "/v1/crm/members/lookup?phone=***&x=***"),
    ("/wechat/oauth/callback?code=abc&state=s3cr3t", "/wechat/oauth/callback?code=***&state=***"),
    ("/v1/members/12", "/v1/members/12"),
    ("/v1/members?", "/v1/members"),
])
def test_mask_query_keeps_names_and_drops_values(logged, expected):
    assert mask_query(logged) == expected


def test_uvicorns_access_record_is_masked_before_any_handler_formats_it():
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5000", "GET", "/v1/members/lookup?phone=13800138000", "1.1", 200), None)
    assert MaskedQueryFilter().filter(record)
    assert "13800138000" not in record.getMessage()
    assert "phone=***" in record.getMessage()
