"""A loopback HTTP gateway that answers a scripted list of statuses and records what it received."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Gateway:
    def __init__(self, statuses: list[int], rendezvous: int = 0):
        self.statuses = statuses
        self.received: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.rendezvous = threading.Barrier(rendezvous, timeout=60) if rendezvous else None
        """The first ``rendezvous`` requests wait for each other: senders that send one at a time (processes
        sending in sequence) are proven to have been sending at the same time."""

    def next_status(self) -> int:
        with self.lock:
            return self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]


@contextmanager
def webhook_gateway(statuses: list[int], rendezvous: int = 0) -> Iterator[tuple[str, Gateway]]:
    gateway = Gateway(statuses, rendezvous)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with gateway.lock:
                gateway.received.append({"body": body, "idempotency_key": self.headers.get("Idempotency-Key")})
                waits = gateway.rendezvous is not None and len(gateway.received) <= gateway.rendezvous.parties
            if waits:
                assert gateway.rendezvous is not None
                gateway.rendezvous.wait()
            status = gateway.next_status()
            payload = json.dumps({"id": f"gw-{len(gateway.received)}"} if status < 300 else {"error": "x"}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/send", gateway
    finally:
        server.shutdown()
        server.server_close()
