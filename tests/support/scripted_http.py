"""A loopback HTTP/1.1 server whose replies are scripted byte by byte (a real TCP server).

For the faults a well-behaved test server cannot produce: a reply dripped one byte every
half second (status line, headers or body), a body of hundreds of megabytes or one that
never ends, replies that echo what the client sent. Each request is parsed (request line,
headers, ``Content-Length`` body, decoded from gzip/zstd) into a :class:`Request`; the
script (``respond(request, writer)``) writes the reply through a :class:`Writer`, which
counts the bytes that reached the socket and stops when the client has gone or the server
stops.

    with ScriptedServer(drip(b"HTTP/1.1 200 OK\\r\\n...", every=0.5)) as server:
        ... server.url ...
"""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

from .loopback_http import decode_body, reset


@dataclass
class Request:
    """One request as received."""

    method: str
    path: str
    headers: dict[str, str]  # names lowercased
    body: bytes  # decoded per Content-Encoding


class Writer:
    """Writes a reply to the client; ``ok`` turns False once the client is gone."""

    def __init__(self, conn: socket.socket, server: ScriptedServer) -> None:
        self._conn = conn
        self._server = server
        self.ok = True
        self.keep_alive = True

    def write(self, data: bytes) -> bool:
        """Send ``data``; False (and nothing more is sent) once the client is gone."""
        if not self.ok or self._server.stopping.is_set():
            self.ok = False
            return False
        try:
            self._conn.sendall(data)
        except OSError:
            self.ok = False
            return False
        with self._server.lock:
            self._server.bytes_sent += len(data)
        return True

    def sleep(self, seconds: float) -> bool:
        """Wait ``seconds`` unless the server stops; False when it does."""
        return not self._server.stopping.wait(seconds)


Script = Callable[[Request, Writer], None]


class _Handler(socketserver.BaseRequestHandler):
    server: _TCPServer

    def handle(self) -> None:
        owner = self.server.owner
        conn: socket.socket = self.request
        with owner.lock:
            owner.connections += 1
            owner.open.add(conn)
        reader = conn.makefile("rb")
        try:
            while not owner.stopping.is_set():
                request = _read_request(reader)
                if request is None:
                    return
                with owner.lock:
                    owner.requests.append(request)
                writer = Writer(conn, owner)
                owner.script(request, writer)
                if not writer.ok or not writer.keep_alive:
                    return
        except OSError:
            return
        finally:
            with owner.lock:
                owner.open.discard(conn)
                owner.finished += 1
            reader.close()


def _read_request(reader: Any) -> Request | None:
    line = reader.readline(65537)
    if not line:
        return None
    method, path, _ = line.decode("latin-1").split(" ", 2)
    headers: dict[str, str] = {}
    while True:
        line = reader.readline(65537)
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    raw = reader.read(int(headers.get("content-length") or 0))
    try:
        body = decode_body(headers.get("content-encoding", "").lower(), raw)
    except ValueError:
        body = raw
    return Request(method, path, headers, body)


class _TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: ScriptedServer


@dataclass
class ScriptedServer:
    """The server; use as a context manager (``url``). ``bytes_sent`` counts reply bytes
    that reached the socket; ``finished`` counts connections the server has let go of."""

    script: Script
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: list[Request] = field(default_factory=list)
    open: set[socket.socket] = field(default_factory=set)
    stopping: threading.Event = field(default_factory=threading.Event)
    bytes_sent: int = 0
    connections: int = 0
    finished: int = 0
    port: int = 0

    def __post_init__(self) -> None:
        self._server: _TCPServer | None = None

    def start(self) -> Self:
        server = _TCPServer(("127.0.0.1", 0), _Handler)
        server.owner = self
        self._server = server
        self.port = server.server_address[1]
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True, name="scripted-http").start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        with self.lock:
            conns = list(self.open)
        for conn in conns:
            reset(conn)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def count(self) -> int:
        with self.lock:
            return len(self.requests)

    def wait_finished(self, n: int, timeout: float = 10.0) -> bool:
        """Wait until ``n`` connections have ended on the server's side."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if self.finished >= n:
                    return True
            time.sleep(0.01)
        return False


# -- ready-made scripts ------------------------------------------------------------------
def reply(status: int, body: bytes, content_type: str = "application/json") -> bytes:
    """A complete HTTP/1.1 reply with Content-Length."""
    return (f"HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def drip(data: bytes | Callable[[Request], bytes], every: float = 0.5,
         start: int = 0) -> Script:
    """Send the first ``start`` bytes at once, then one byte every ``every`` seconds."""
    def script(request: Request, writer: Writer) -> None:
        payload = data(request) if callable(data) else data
        writer.keep_alive = False
        if start and not writer.write(payload[:start]):
            return
        for i in range(start, len(payload)):
            if not writer.write(payload[i:i + 1]) or not writer.sleep(every):
                return
    return script


def huge(status: int = 200, total: int = 600 * 1024 * 1024, *, chunked: bool = False,
         endless: bool = False) -> Script:
    """A reply whose body is ``total`` bytes of JSON-ish filler (``endless``: no end), sent
    as fast as the client reads it; with Content-Length unless ``chunked`` or ``endless``."""
    block = b"[" + b'{"status":202},' * 4000  # ~60 KB

    def script(request: Request, writer: Writer) -> None:
        writer.keep_alive = False
        head = f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
        if chunked:
            head += "Transfer-Encoding: chunked\r\n"
        elif not endless:
            head += f"Content-Length: {total}\r\n"
        else:
            head += "Connection: close\r\n"
        if not writer.write(head.encode() + b"\r\n"):
            return
        sent = 0
        while endless or sent < total:
            piece = block if endless else block[:total - sent]
            data = (b"%x\r\n%b\r\n" % (len(piece), piece)) if chunked else piece
            if not writer.write(data):
                return
            sent += len(piece)
        if chunked:
            writer.write(b"0\r\n\r\n")
    return script


def answer(make: Callable[[Request], bytes]) -> Script:
    """Reply with ``make(request)`` (a complete reply: see :func:`reply`)."""
    def script(request: Request, writer: Writer) -> None:
        writer.write(make(request))
    return script


def silent() -> Script:
    """Take the request, never answer (until the server stops)."""
    def script(request: Request, writer: Writer) -> None:
        writer.keep_alive = False
        writer.sleep(3600)
    return script
