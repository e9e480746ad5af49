"""A small closed-loop HTTP load generator: N concurrent clients for D seconds, latencies recorded."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

Request = Callable[[int], tuple[str, str, dict[str, Any] | None]]
"""i → (method, path, json body or None)."""


@dataclass
class LoadResult:
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict[str, float]:
        return {"requests": self.requests, "errors": self.errors, "seconds": round(self.seconds, 2),
                "rps": round(self.rps, 1), "p50_ms": round(self.p50_ms, 2), "p99_ms": round(self.p99_ms, 2)}


async def _run(base_url: str, make: Request, *, clients: int, seconds: float, headers: dict[str, str],
               max_requests: int) -> LoadResult:
    latencies: list[float] = []
    errors = 0
    counter = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits, timeout=10) as client:

        async def worker() -> None:
            nonlocal counter, errors
            while time.perf_counter() < deadline and counter < max_requests:
                counter += 1
                method, path, body = make(counter)
                started = time.perf_counter()
                try:
                    response = await client.request(method, path, json=body)
                    ok = response.status_code < 400
                except httpx.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - started)
                if not ok:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else 0.0
    return LoadResult(len(latencies), errors, elapsed, statistics.median(latencies) * 1000 if latencies else 0.0,
                      p99 * 1000)


def run_load(base_url: str, make: Request, *, clients: int = 16, seconds: float = 15,
             headers: dict[str, str] | None = None, max_requests: int = 2_000_000) -> LoadResult:
    """Bounded in time and count; loopback only."""
    assert base_url.startswith(("http://127.0.0.1", "http://localhost")), "benchmarks only target loopback"
    return asyncio.run(_run(base_url, make, clients=clients, seconds=seconds, headers=headers or {},
                            max_requests=max_requests))
