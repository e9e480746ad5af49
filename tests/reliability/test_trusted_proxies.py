"""Who the client is behind a reverse proxy: a real ``loyalty serve`` believes ``X-Forwarded-For`` only from the
proxies named in ``LOYALTY_TRUSTED_PROXIES``, so the per-address rate limit counts people, not the proxy — and a
client that is not a proxy cannot dodge the limit by naming another address."""

from __future__ import annotations

import httpx

from tests.serving import serve

LIMITED = {"LOYALTY_RATE_LIMIT_PER_IP": "0.01", "LOYALTY_RATE_LIMIT_PER_IP_BURST": "2"}


def _statuses(url: str, forwarded_for: list[str]) -> list[int]:
    with httpx.Client(base_url=url, timeout=30) as client:
        return [client.get("/v1/members/1", headers={"X-Forwarded-For": address}).status_code
                for address in forwarded_for]


def test_behind_a_trusted_proxy_each_forwarded_address_has_its_own_limit(engine, tmp_path):
    people = ["203.0.113.7", "203.0.113.7", "203.0.113.8", "203.0.113.8", "203.0.113.7"]
    with serve(tmp_path, LOYALTY_TRUSTED_PROXIES="127.0.0.1", **LIMITED) as server:
        # Two requests each within the burst (401: no key), then the first person's third is limited.
        assert _statuses(server.url, people) == [401, 401, 401, 401, 429]
        assert "203.0.113.8" in server.log.read_text()  # the access line names the person, not the proxy


def test_a_peer_that_is_not_a_trusted_proxy_cannot_name_another_address(engine, tmp_path):
    people = ["203.0.113.7", "203.0.113.8", "203.0.113.9"]
    with serve(tmp_path, LOYALTY_TRUSTED_PROXIES="192.0.2.1", **LIMITED) as server:
        # The headers are ignored: every request is the loopback peer's, which has a burst of two.
        assert _statuses(server.url, people) == [401, 401, 429]
        assert "203.0.113" not in server.log.read_text()
