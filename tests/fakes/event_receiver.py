"""A webhook receiver on loopback, as a subscriber would run one: it records every POST (headers and body)
and can answer errors or answer slowly."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.fail_ids: set[str] = set()
        """Event ids answered with 500 (until removed)."""
        self.delay_seconds = 0.0
        self._lock = threading.Lock()

    def bodies(self) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(body) for _, body in self.received]


@contextmanager
def event_receiver() -> Iterator[tuple[str, Receiver]]:
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            time.sleep(receiver.delay_seconds)
            event_id = json.loads(body)["id"]
            failing = event_id in receiver.fail_ids
            if not failing:
                with receiver._lock:
                    receiver.received.append((dict(self.headers.items()), body))
            self.send_response(500 if failing else 204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks", receiver
    finally:
        server.shutdown()
