"""Closed-loop HTTP load: N concurrent clients for D seconds, latencies recorded.

wrk (a C load generator, Debian package ``wrk``) is used when it is installed: on a 2-core machine a Python
generator takes a core for itself, and the reference figure (``/healthz``) then measures the generator
(about 500 requests/s with httpx against about 4,800 with wrk here). Without wrk, or with
``LOYALTY_BENCH_LOADGEN=python``, an asyncio httpx generator does the same job. A request body may hold
``__SEQ__``, replaced by a number unique within the run (order ids must not repeat).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
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
                if body is not None:
                    body = json.loads(json.dumps(body).replace("__SEQ__", str(counter)))
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


def load_generator() -> str:
    return "wrk" if shutil.which("wrk") and os.environ.get("LOYALTY_BENCH_LOADGEN", "wrk") == "wrk" else "python"


def run_load(base_url: str, make: Request, *, clients: int = 16, seconds: float = 15,
             headers: dict[str, str] | None = None, max_requests: int = 2_000_000) -> LoadResult:
    """Bounded in time and count; loopback only."""
    assert base_url.startswith(("http://127.0.0.1", "http://localhost")), "benchmarks only target loopback"
    if load_generator() == "wrk":
        return _run_wrk(base_url, make, clients=clients, seconds=seconds, headers=headers or {})
    return asyncio.run(_run(base_url, make, clients=clients, seconds=seconds, headers=headers or {},
                            max_requests=max_requests))


WRK_SCRIPT = """
local requests = {%s}
-- tid is a global: wrk's thread:set() assigns it in each thread's own Lua state
local counter, i, next_tid = 0, 0, 0
tid = 0
function setup(thread)
  next_tid = next_tid + 1
  thread:set("tid", next_tid)
end
request = function()
  i = i %% #requests + 1
  counter = counter + 1
  local r = requests[i]
  local body = r[3]
  if body then body = body:gsub("__SEQ__", tid .. "x" .. counter) end
  return wrk.format(r[1], r[2], r[4], body)
end
"""


def _lua(text: str) -> str:
    return "[==[" + text + "]==]"


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def _run_wrk(base_url: str, make: Request, *, clients: int, seconds: float, headers: dict[str, str]) -> LoadResult:
    """wrk with a Lua script cycling through 5,000 requests made by ``make``."""
    entries = []
    for i in range(1, 5001):
        method, path, body = make(i)
        extra = {**headers, **({"Content-Type": "application/json"} if body is not None else {})}
        lua_headers = "{" + ",".join(f"[ {_lua(k)} ]={_lua(v)}" for k, v in extra.items()) + "}"  # "[[" opens a string
        entries.append("{" + ",".join([_lua(method), _lua(path), _lua(json.dumps(body)) if body is not None
                                       else "nil", lua_headers]) + "}")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT % ",\n".join(entries))
    try:
        out = subprocess.run(["wrk", "-t2", f"-c{clients}", f"-d{int(seconds)}s", "--latency", "--timeout", "10s",
                              "-s", script.name, base_url], check=True, capture_output=True, text=True).stdout
    finally:
        os.unlink(script.name)
    percentiles = {int(p): _ms(v, u) for p, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)}
    total = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", out)
    assert total and 50 in percentiles and 99 in percentiles, out
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if bad and int(bad.group(1)) > int(total.group(1)) // 2:
        raise RuntimeError(f"most requests failed; is the request right? {entries[0][:300]}\n{out}")
    socket_errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    return LoadResult(int(total.group(1)), (int(bad.group(1)) if bad else 0) + socket_errors,
                      _ms(total.group(2), total.group(3)) / 1000, percentiles[50], percentiles[99])
