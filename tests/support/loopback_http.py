"""The plumbing shared by the loopback receivers (``honeycomb_receiver``, ``otlp_receiver``).

:class:`LoopbackReceiver` runs a real HTTP/1.1 server on 127.0.0.1 in a daemon thread and
owns what both receivers fault-inject the same way: queued and timed faults, "hang" held
until :meth:`~LoopbackReceiver.release`, connection resets (RST, not FIN), refused
connections for a period (the listening socket is closed and the same port bound again)
and slow replies. :class:`LoopbackHandler` tracks open connections so a stop can reset
them, and serves ``GET /_receiver/stats``. A receiver subclass sets ``handler``,
``faults``, ``thread_name`` and ``stats_key`` and implements the protocol itself.
"""

from __future__ import annotations

import gzip
import socket
import struct
import sys
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

import orjson
import zstandard

SLOW_REPLY_SECONDS = 0.5  # the "slow" fault, when no delay is configured


def unused_ports(n: int = 1) -> list[int]:
    """``n`` distinct loopback ports nobody listens on: bound (never listened) all at once,
    then closed. One after the other, a closed port could be handed out again: 25 draws
    repeated a port in 37 of 2,000 tries. A port may of course be taken again later."""
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()


def decode_body(encoding: str, raw: bytes) -> bytes:
    """``raw`` decoded per its Content-Encoding; ValueError when it cannot be."""
    if encoding in ("", "identity"):
        return raw
    try:
        if encoding == "gzip":
            return gzip.decompress(raw)
        if encoding == "zstd":
            return zstandard.ZstdDecompressor().decompressobj().decompress(raw)
    except (OSError, EOFError, zstandard.ZstdError) as exc:
        raise ValueError(f"cannot decode {encoding} body") from exc
    raise ValueError(f"unsupported Content-Encoding {encoding!r}")


def reset(conn: socket.socket) -> None:
    """Abort ``conn`` with an RST: a zero linger makes the close skip the FIN handshake."""
    try:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def slow_reply(fault: str, seconds: float) -> None:
    """Sleep ``seconds`` when configured, else :data:`SLOW_REPLY_SECONDS` on the "slow" fault."""
    if fault == "slow" or seconds > 0:
        time.sleep(seconds if seconds > 0 else SLOW_REPLY_SECONDS)


class LoopbackServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True  # refuse_for binds the same port again at once
    request_queue_size = 64
    receiver: LoopbackReceiver


class LoopbackHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: LoopbackServer

    def setup(self) -> None:
        super().setup()
        receiver = self.server.receiver
        with receiver.lock:
            receiver.connections += 1
            receiver._open.add(self.connection)

    def finish(self) -> None:
        with self.server.receiver.lock:
            self.server.receiver._open.discard(self.connection)
        try:
            super().finish()
        except OSError:  # the connection was reset under us
            pass

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # quiet: the tests read what they need from the receiver

    def read_body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def send_body(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def not_found(self, message: str) -> None:
        self.send_body(404, message.encode(), "text/plain")

    def ended_by_fault(self, fault: str) -> bool:
        """Apply "hang" (wait for release, then reset) and "reset"; True when no reply is due."""
        if fault == "hang":
            self.server.receiver._release.wait()
            fault = "reset"
        if fault == "reset":
            reset(self.connection)
            self.close_connection = True
            return True
        return False

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        if self.path == "/_receiver/stats":
            self.send_body(200, orjson.dumps(self.server.receiver.stats()), "application/json")
        else:
            self.not_found("not found")


class LoopbackReceiver:
    """A started-on-demand loopback server; use as a context manager (``url``, ``port``)."""

    handler: type[LoopbackHandler] = LoopbackHandler
    faults: tuple[str, ...] = ()
    thread_name = "loopback-receiver"
    stats_key = "records"  # the name of ``counts`` in ``GET /_receiver/stats``
    requests: Sequence[Any]

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {}
        self.connections = 0
        self._faults: list[str] = []
        self._timed: tuple[str, float] | None = None
        self._release = threading.Event()
        self._open: set[socket.socket] = set()
        self._server: LoopbackServer | None = None
        self._thread: threading.Thread | None = None
        self._timer: threading.Timer | None = None
        self.port = 0

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, port: int = 0) -> Self:
        server = LoopbackServer(("127.0.0.1", port or self.port), self.handler)
        server.receiver = self
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True, name=self.thread_name)
        self._thread.start()
        return self

    def _stop_listening(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        with self.lock:
            conns = list(self._open)
        for conn in conns:
            reset(conn)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._release.set()
        self._stop_listening()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def serve_until_stdin_closes(self, port: int = 0) -> None:
        """Script mode: print ``PORT <n>``, serve until the parent closes stdin (or exits)."""
        self.start(port)
        print(f"PORT {self.port}", flush=True)
        try:
            sys.stdin.read()
        finally:
            self.stop()

    # -- faults ------------------------------------------------------------------------------
    def inject(self, fault: str, times: int = 1) -> None:
        """Apply ``fault`` to the next ``times`` requests."""
        assert fault in self.faults, fault
        with self.lock:
            self._faults.extend([fault] * times)

    def fault_for(self, fault: str, seconds: float) -> None:
        """Apply ``fault`` to every request for the next ``seconds``."""
        assert fault in self.faults, fault
        with self.lock:
            self._timed = (fault, time.monotonic() + seconds)

    def refuse_for(self, seconds: float) -> None:
        """Close the listening socket and open connections now; listen again after ``seconds``."""
        self._stop_listening()
        self._timer = threading.Timer(seconds, self.start, kwargs={"port": self.port})
        self._timer.daemon = True
        self._timer.start()

    def release(self) -> None:
        """Let requests held by the "hang" fault end (with a reset)."""
        self._release.set()

    def _next_fault(self) -> str:
        with self.lock:
            if self._faults:
                return self._faults.pop(0)
            if self._timed is not None:
                fault, until = self._timed
                if time.monotonic() < until:
                    return fault
                self._timed = None
        return ""

    # -- assertions --------------------------------------------------------------------------
    def total(self) -> int:
        """Records (events) accepted so far."""
        with self.lock:
            return sum(self.counts.values())

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        """Wait until ``count`` records (events) were accepted."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.total() >= count:
                return True
            time.sleep(0.01)
        return False

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {self.stats_key: dict(self.counts), "requests": len(self.requests),
                    "connections": self.connections}
