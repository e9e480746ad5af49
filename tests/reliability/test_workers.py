"""Several workers share the load: each accepts on its own SO_REUSEPORT socket (api/serving.py)."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import httpx
import psutil
import pytest

from tests.serving import serve


@pytest.mark.timeout(90)
def test_a_burst_of_keep_alive_connections_is_spread_over_both_workers(engine, tmp_path):
    # On uvicorn's one shared socket the first worker to wake accepted the whole burst: in half of the
    # benchmark's runs all 16 connections (and so all orders) were one worker's while the other idled.
    with serve(tmp_path, LOYALTY_WORKERS="2", LOYALTY_ACCESS_LOG="false") as server:
        clients = [httpx.Client(base_url=server.url, timeout=10) for _ in range(32)]
        try:
            with ThreadPoolExecutor(32) as pool:  # a burst: each client one keep-alive connection, kept open
                assert {r.status_code for r in pool.map(lambda c: c.get("/healthz"), clients)} == {200}
            workers = psutil.Process(server.process.pid).children()
            # SO_REUSEPORT would let a second server of the same user join this one's port: it is refused.
            second = subprocess.run([sys.executable, "-m", "cli", "serve", "--no-jobs", "--no-migrate", "--workers",
                                     "2", "--port", str(server.port)], capture_output=True, text=True, timeout=60)
            assert second.returncode != 0 and "in use" in second.stderr
            held = {w.pid: sum(1 for c in w.net_connections("tcp")
                               if c.laddr.port == server.port and c.status == psutil.CONN_ESTABLISHED)
                    for w in workers}
        finally:
            for client in clients:
                client.close()
    # The kernel spreads connections by a hash of their addresses: all 32 on one of two workers is a 2^-31 chance.
    assert sorted(n for n in held.values() if n) != [32] and sum(held.values()) == 32, held
    assert len([n for n in held.values() if n]) == 2, held
