"""Round trips to PostgreSQL, counted on the wire: a loopback proxy between the API and the database.

A round trip is a message after which the client waits for the server: a simple query (``Q``), or the
``Sync`` (``S``) that ends an extended-protocol batch (Parse/Bind/Execute…). Pool pre-pings, BEGIN, COMMIT
and SET count like any statement, so the figure covers whatever a driver or ORM sends. The proxy needs the
plain protocol, so the API is pointed at it with ``sslmode=disable``; it costs CPU, so only a short pass of
requests after the throughput runs goes through it (bench/__main__.py).
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from collections.abc import Callable

SSL_REQUEST, GSSENC_REQUEST, CANCEL_REQUEST = 80877103, 80877104, 80877102


class _Counter:
    """Client-to-server bytes of one connection, parsed into messages."""

    def __init__(self, count: Callable[[], None]):
        self.buffer = b""
        self.started = False  # after the startup message, every message has a type byte
        self.count = count

    def feed(self, data: bytes) -> None:
        self.buffer += data
        while True:
            if not self.started:
                if len(self.buffer) < 8:
                    return
                length, code = struct.unpack("!ii", self.buffer[:8])
                if len(self.buffer) < length:
                    return
                self.buffer = self.buffer[length:]
                if code not in (SSL_REQUEST, GSSENC_REQUEST, CANCEL_REQUEST):
                    self.started = True
                continue
            if len(self.buffer) < 5:
                return
            kind, length = self.buffer[:1], struct.unpack("!i", self.buffer[1:5])[0]
            if len(self.buffer) < 1 + length:
                return
            self.buffer = self.buffer[1 + length:]
            if kind in (b"Q", b"S"):
                self.count()


class RoundTripProxy:
    """``127.0.0.1:port`` → ``upstream``; ``round_trips`` counts every connection's round trips."""

    def __init__(self, upstream_host: str, upstream_port: int):
        self.upstream = (upstream_host, upstream_port)  # a host, or a Unix socket directory (libpq's way)
        self.round_trips = 0
        self._lock = threading.Lock()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="round-trip-proxy")
        self._thread.start()
        self._ready.wait(10)

    def _count(self) -> None:
        with self._lock:
            self.round_trips += 1

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", self.port))
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            host, port = self.upstream
            up_reader, up_writer = (await asyncio.open_unix_connection(f"{host}/.s.PGSQL.{port}")
                                    if host.startswith("/") else await asyncio.open_connection(host, port))
        except OSError:
            writer.close()
            return
        counter = _Counter(self._count)

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, parse: _Counter | None) -> None:
            try:
                while data := await src.read(65536):
                    if parse is not None:
                        parse.feed(data)
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pump(reader, up_writer, counter), pump(up_reader, writer, None))

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
