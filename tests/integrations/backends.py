"""Real loopback HTTP backends for the outgoing-call tests (issue 22).

:class:`Backend` is a threading HTTP/1.1 server on 127.0.0.1 with one behaviour:

- ``ok``: 200 at once;
- ``slow``: 200 after ``delay`` seconds;
- ``error``: 500 at once;
- ``stall``: no answer until :meth:`Backend.release` (or 30 s): the client times out.

It records every request it received (method, path, headers with lower-case names) before
answering, so a test reads what really went over the wire.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    names: tuple[str, ...] = ()  # every header name as sent, lower case, repeats kept


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512
    backend: Backend


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def _answer(self) -> None:
        backend = self.server.backend
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        with backend.lock:
            backend.received.append(Received(
                self.command, self.path, {k.lower(): v for k, v in self.headers.items()},
                tuple(k.lower() for k in self.headers.keys())))
        if backend.behaviour == "slow":
            time.sleep(backend.delay)
        elif backend.behaviour == "stall":
            backend.released.wait(30.0)
        status = 500 if backend.behaviour == "error" else 200
        body = orjson.dumps({"backend": backend.behaviour, "path": self.path})
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:  # the client gave up (a timeout): nobody to answer
            self.close_connection = True

    do_GET = _answer
    do_POST = _answer


class Backend:
    """One loopback backend (module docstring); use :func:`running`."""

    def __init__(self, behaviour: str, delay: float = 0.05) -> None:
        self.behaviour = behaviour
        self.delay = delay
        self.lock = threading.Lock()
        self.received: list[Received] = []
        self.released = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.backend = self
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.hostport = f"127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def traceparents(self) -> list[str | None]:
        with self.lock:
            return [r.headers.get("traceparent") for r in self.received]

    def raw_header_names(self, path: str) -> tuple[str, ...]:
        """The header names of the request for ``path``, as sent (repeats kept)."""
        with self.lock:
            (found,) = [r for r in self.received if r.path == path]
        return found.names

    def release(self) -> None:
        self.released.set()

    def close(self) -> None:
        self.released.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5.0)


@contextmanager
def running(*behaviours: str, delay: float = 0.05) -> Iterator[list[Backend]]:
    """Start one backend per behaviour; close them all afterwards."""
    with ExitStack() as stack:
        backends = []
        for behaviour in behaviours:
            backend = Backend(behaviour, delay)
            stack.callback(backend.close)
            backends.append(backend)
        yield backends


def parse_traceparent(value: str | None) -> tuple[str, str]:
    """``(trace_id, parent_span_id)`` of a ``00-`` traceparent (W3C Trace Context, 3.2)."""
    assert value is not None, "no traceparent header"
    version, trace_id, span_id, flags = value.split("-")
    assert (2, 32, 16, 2) == (len(version), len(trace_id), len(span_id), len(flags))
    return trace_id, span_id
