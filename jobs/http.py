"""The jobs process's own small listener: ``/metrics`` (its job durations and counts, plus the database's
facts) and ``/healthz`` (the scheduler is running), for Prometheus and the container's healthcheck.

The standard library's threading HTTP server is enough for two GET routes scraped every few seconds.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy.engine import Engine

from domain.settings import get_settings
from domain.telemetry import exposition, metrics_token_accepted

log = logging.getLogger("jobs.http")


def start_jobs_http(engine: Engine, *, host: str, port: int, healthy: Callable[[], bool]) -> ThreadingHTTPServer:
    """Serve in a daemon thread; returns the server (its ``server_address`` holds the bound port)."""
    token = get_settings().metrics_token

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
            if self.path == "/healthz":
                ok = healthy()
                self._answer(200 if ok else 503, "application/json",
                             json.dumps({"status": "ok" if ok else "stopping"}).encode())
            elif self.path == "/metrics":
                if not metrics_token_accepted(self.headers.get("Authorization"), token=token):
                    self._answer(401, "application/json", json.dumps({"error": {
                        "code": "metrics_token_required", "message": "send 'Authorization: Bearer "
                        "<LOYALTY_METRICS_TOKEN>'", "details": {}}}).encode())
                else:
                    self._answer(200, CONTENT_TYPE_LATEST, exposition(engine))
            else:
                self._answer(404, "application/json", json.dumps({"error": {
                    "code": "not_found", "message": "only /metrics and /healthz", "details": {}}}).encode())

        def _answer(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass  # scrapes every 15 s would drown the job lines

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="jobs-http", daemon=True).start()
    log.info("jobs listener on %s:%d (/metrics, /healthz)", host, server.server_address[1])
    return server
