"""A loopback HTTP/1.1 server (``http.server``, a real TCP server) that keeps every request
with all its header lines (repeated names included) and answers from a script.

For the fidelity tests: what exactly went over the wire (``User-Agent``, which key a marker
carried), and replies a well-behaved receiver does not give (a 403 on the batch endpoint,
``Retry-After`` as an HTTP-date, 501 or 505).

    def script(request: Seen) -> tuple[int, dict[str, str], bytes]: ...
    with RecordingServer(script) as server:
        ... server.url ... server.requests ...
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

import orjson

from tests.support.loopback_http import decode_body


@dataclass
class Seen:
    """One request as received; ``at`` is its ``time.monotonic()`` arrival."""

    method: str
    path: str
    header_lines: list[tuple[str, str]]
    body: bytes  # decoded per Content-Encoding
    at: float

    def all(self, name: str) -> list[str]:
        """Every value of header ``name`` (case-insensitive), in the order sent."""
        return [v for k, v in self.header_lines if k.lower() == name.lower()]

    def header(self, name: str) -> str:
        values = self.all(name)
        assert len(values) == 1, (name, values)
        return values[0]


Reply = tuple[int, dict[str, str], bytes]
Script = Callable[[Seen], Reply]


def honeycomb_ok(request: Seen) -> Reply:
    """The Events API's usual answers: one 202 per batch element; a marker echoed, 201."""
    if request.path.startswith("/1/markers/"):
        marker = orjson.loads(request.body)
        return 201, {}, orjson.dumps({**marker, "id": "m1"})
    count = len(orjson.loads(request.body))
    return 200, {}, orjson.dumps([{"status": 202}] * count)


def otlp_ok(request: Seen) -> Reply:
    """An OTLP/HTTP full success: 200 with an empty body (an empty export response)."""
    return 200, {"Content-Type": "application/x-protobuf"}, b""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = decode_body((self.headers.get("Content-Encoding") or "").lower(), raw)
        except ValueError:
            body = raw
        seen = Seen("POST", self.path, list(self.headers.items()), body, time.monotonic())
        owner = self.server.owner
        with owner.lock:
            owner.requests.append(seen)
        status, headers, data = owner.script(seen)
        try:
            self.send_response(status)
            for name, value in {"Content-Type": "application/json", **headers}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client gave up on this request (its deadline passed)
            self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: RecordingServer


class RecordingServer:
    """The server; use as a context manager (``url``, ``requests``)."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.lock = threading.Lock()
        self.requests: list[Seen] = []
        self._server: _Server | None = None

    def __enter__(self) -> Self:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.owner = self
        self._server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True, name="recording-http").start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def seen(self, prefix: str = "") -> list[Seen]:
        """The requests so far whose path starts with ``prefix``."""
        with self.lock:
            return [r for r in self.requests if r.path.startswith(prefix)]


def sequence(*replies: Reply, then: Script) -> Script:
    """Answer the first requests with ``replies`` in order, the rest with ``then``."""
    queue = list(replies)
    lock = threading.Lock()

    def script(request: Seen) -> Reply:
        with lock:
            if queue:
                return queue.pop(0)
        return then(request)
    return script
