"""``/metrics`` exposes every family after real traffic, behind its token; several workers are summed."""

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from domain.db import unit_of_work
from domain.members.models import ContactChannel
from integrations.wechat.adapter import WeChatAdapter
from integrations.wechat.client import LoyaltyWeChatClient
from jobs.dispatch import dispatch_due
from jobs.runner import run_job
from tests.factories import make_member
from tests.fakes.wechat_server import fake_wechat
from tests.operations.conftest import TOKEN


def families(text: str) -> dict[str, list]:
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def test_metrics_refuses_a_scrape_without_the_token(app_client, metrics_token, admin_headers):
    assert app_client.get("/metrics").status_code == 401
    assert app_client.get("/metrics", headers=admin_headers).status_code == 401  # an API key is not enough
    assert app_client.get("/metrics", headers={"Authorization": "Bearer wrong"}).json()["error"]["code"] == \
        "metrics_token_required"


def test_metrics_is_refused_to_everyone_while_no_token_is_configured(app_client):
    assert app_client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 401


def test_each_family_is_exposed_after_real_traffic(live_client, metrics_token, committed_engine):
    app_client = live_client
    member = app_client.post("/v1/members", json={
        "source_channel": "store", "phone": "13800138011", "joined_at": "2025-01-01T00:00:00Z",
        "consents": {"sms": True}}).json()
    touch = app_client.post(f"/v1/members/{member['id']}/contacts", json={
        "channel": "sms", "purpose": "service", "idempotency_key": "m-1", "template": "how_it_works",
        "variables": {"name": "Li"}})
    assert touch.status_code == 201, touch.text
    app_client.get("/v1/members/999999")
    run_job("release-points", engine=committed_engine)
    with fake_wechat() as (base, fake):
        fake.unfollowed.add("o-gone")
        with unit_of_work(committed_engine) as session:
            gone = make_member(session, wechat_openid="o-gone", consents={ContactChannel.WECHAT: True},
                               now=datetime(2025, 1, 1, tzinfo=UTC))
            from domain.contact_policy import service as gate

            gate.request_touch(session, member_id=gone.id, channel="wechat", purpose="service", source="t",
                               idempotency_key="w-1", template="points_earned", variables={"body": "hi"},
                               now=datetime.now(UTC).replace(hour=4))
            session.commit()
        from domain.settings import Settings

        client = LoyaltyWeChatClient("wxapp", "s3cret", engine=committed_engine, api_base_url=base, timeout=3)
        adapter = WeChatAdapter(Settings(wechat_app_id="wxapp", wechat_app_secret="s3cret",
                                         wechat_templates={"points_earned": "TPL"}), committed_engine, client=client)
        dispatch_due(committed_engine, adapters={"wechat": adapter}, now=datetime.now(UTC).replace(hour=4))

    response = app_client.get("/metrics", headers=metrics_token)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    found = families(response.text)
    requests_seen = {(s.labels["route"], s.labels["status"]) for s in found["loyalty_http_request_duration_seconds"]
                     if s.name.endswith("_count")}
    assert ("/v1/members", "201") in requests_seen
    assert ("/v1/members/{member_id}", "403") in requests_seen  # the template, never the raw id (app key: 403)
    decisions = {(s.labels["verdict"], s.labels["channel"]) for s in found["loyalty_gate_decisions"]}
    assert ("approved", "sms") in decisions
    assert any(s.labels["job"] == "release-points" and s.labels["status"] == "succeeded"
               for s in found["loyalty_job_runs"])
    assert any(s.labels["job"] == "release-points" for s in found["loyalty_job_duration_seconds"])
    assert any(s.labels["job"] == "release-points" for s in found["loyalty_job_last_success_timestamp_seconds"])
    assert any(s.labels["code"] == "43004" and s.value >= 1 for s in found["loyalty_wechat_api_errors"])
    assert {s.labels["outbox"] for s in found["loyalty_outbox_due"]} == {"touches"}
    assert "loyalty_outbox_oldest_due_age_seconds" in found
    assert found["loyalty_db_pool_capacity"][0].value > 0
    assert "loyalty_db_pool_connections_in_use" in found
    assert found["loyalty_database_up"][0].value == 1


def test_the_outbox_age_is_the_oldest_due_touch_s_wait(live_client, metrics_token, committed_engine):
    app_client = live_client
    with unit_of_work(committed_engine) as session:
        member = make_member(session, consents={ContactChannel.SMS: True}, now=datetime(2025, 1, 1, tzinfo=UTC))
        from domain.contact_policy import service as gate

        gate.request_touch(session, member_id=member.id, channel="sms", purpose="service", source="t",
                           idempotency_key="old", template="statement", variables={},
                           now=datetime.now(UTC).replace(hour=4))
        session.commit()
    with committed_engine.begin() as conn:
        conn.exec_driver_sql("UPDATE touches SET send_at = now() - interval '15 minutes'")
    found = families(app_client.get("/metrics", headers=metrics_token).text)
    assert found["loyalty_outbox_due"][0].value == 1
    assert 15 * 60 <= found["loyalty_outbox_oldest_due_age_seconds"][0].value < 16 * 60


@pytest.mark.timeout(90)
def test_several_workers_are_summed_in_one_scrape(committed_engine, tmp_path):
    port = 8201
    (tmp_path / "prom").mkdir()
    env = {**os.environ, "LOYALTY_METRICS_TOKEN": TOKEN, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"),
           "LOYALTY_LOG_FORMAT": "json", "LOYALTY_ACCESS_LOG": "true"}
    server = subprocess.Popen([sys.executable, "-m", "cli", "serve", "--no-jobs", "--no-migrate", "--workers", "2",
                               "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.3)
        for _ in range(30):  # new connections each time: the two workers share the accepting socket
            assert httpx.get(f"{base}/healthz").status_code == 200
        refused = httpx.get(f"{base}/v1/members/lookup", params={"phone": "13800138066"},
                            headers={"X-Request-ID": "trace-me-1"})
        assert refused.status_code == 401 and refused.json()["error"]["request_id"] == "trace-me-1"
        scrape = httpx.get(f"{base}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert scrape.status_code == 200
        counted = sum(s.value for s in families(scrape.text)["loyalty_http_request_duration_seconds"]
                      if s.name.endswith("_count") and s.labels["route"] == "/healthz")
        assert counted == 30
        assert len({p.name for p in (tmp_path / "prom").glob("*.db")}) >= 2  # files of more than one process
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=30)
    lines = [json.loads(line) for line in err.decode().splitlines() if line.startswith("{")]
    assert lines and all({"timestamp", "level", "logger", "event"} <= set(line) for line in lines)
    # The request id travels from the header to the access line (and the error body, above); no phone is logged.
    traced = [line for line in lines if line.get("request_id") == "trace-me-1"]
    assert any(line["logger"] == "uvicorn.access" and "phone=***" in line["event"] for line in traced)
    assert "13800138066" not in err.decode()


def test_the_jobs_process_exposes_its_own_metrics_and_health(committed_engine, metrics_token):
    from jobs.http import start_jobs_http

    running = {"ok": True}
    server = start_jobs_http(committed_engine, host="127.0.0.1", port=0, healthy=lambda: running["ok"])
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        run_job("release-points", engine=committed_engine)
        assert httpx.get(f"{base}/metrics").status_code == 401
        found = families(httpx.get(f"{base}/metrics", headers=metrics_token).text)
        assert any(s.labels["job"] == "release-points" for s in found["loyalty_job_runs"])
        assert httpx.get(f"{base}/healthz").status_code == 200
        running["ok"] = False
        assert httpx.get(f"{base}/healthz").status_code == 503
    finally:
        server.shutdown()
