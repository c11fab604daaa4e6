"""HTTP plumbing for the sender: origins, persistent connections, compression.

Standard library only. A :class:`ConnectionPool` belongs to one sender thread and keeps one
keep-alive connection per origin; :meth:`ConnectionPool.abort` may be called from another
thread to interrupt a request that the server never answers (used by ``close(timeout)``).

Bounds on every request (``post`` and ``post_once``):

- **A total deadline.** ``timeout`` bounds the whole request, not each socket operation:
  connecting (TCP and TLS handshake), sending, and every read of the status line, headers
  and body get the time that is left, and the request fails with ``TimeoutError`` once it
  is spent. A server that drips one byte at a time cannot hold a request longer. (Name
  resolution is the resolver's: ``getaddrinfo`` takes no timeout.)
- **A capped reply.** At most :data:`MAX_REPLY_BYTES` of a body are read (more is never
  needed to interpret a reply); a longer body is cut (``Response.truncated``) and its
  connection closed rather than drained, so a huge or endless reply costs 1 MB.

Nothing here logs or formats request headers: they carry API keys. URLs are shown through
:func:`wideevents._core.secrets.mask`.
"""

from __future__ import annotations

import datetime
import email.utils
import http.client
import io
import math
import platform
import socket
import ssl
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from .._core.secrets import shown
from .._version import __version__

__all__ = [
    "COMPRESSIONS",
    "Compress",
    "Compression",
    "ConnectionPool",
    "MAX_REPLY_BYTES",
    "Origin",
    "Response",
    "USER_AGENT",
    "make_compression",
    "parse_origin",
    "post_once",
]

COMPRESSIONS = ("zstd", "gzip", "none")
#: Every request names the library, its version and the runtime, as libhoney-py
#: (``libhoney-py/2.4.0 python/3.11.9``) and the OpenTelemetry exporters
#: (``OTel-OTLP-Exporter-Python/1.45.2``) do.
USER_AGENT = f"wideevents/{__version__} python/{platform.python_version()}"
MAX_REPLY_BYTES = 1 << 20  # the most of a reply body ever read
_SEND_CHUNK = 256 * 1024  # bytes per sendall: the deadline is checked between chunks
_monotonic = time.monotonic

# Errors after which a request may be retried: the server did not (visibly) take it.
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (OSError, http.client.HTTPException)


class Origin(NamedTuple):
    """Where requests go: ``scheme://host:port`` plus an optional path prefix (no slash at end)."""

    scheme: str
    host: str
    port: int
    base_path: str

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}{self.base_path}"


def _shown(url: str) -> str:
    """The URL as an error message may show it: credentials, query values and key-shaped
    tokens masked (a key pasted anywhere in it must not reach logs)."""
    return shown(url.strip() if isinstance(url, str) else url)


def parse_origin(url: str) -> Origin:
    """Parse an ``http(s)://host[:port][/prefix]`` URL; raise ValueError saying what is wrong."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"{_shown(url)} is not an http:// or https:// URL")
    if not parts.hostname:
        raise ValueError(f"{_shown(url)} has no host name")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError(f"{_shown(url)} must not carry a query, fragment or credentials "
                         "(user:password@); pass keys in headers instead")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{_shown(url)} has an invalid port") from None
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    return Origin(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))


class Response(NamedTuple):
    """An HTTP response: status, body (at most :data:`MAX_REPLY_BYTES`: ``truncated`` when
    the server sent more), and ``Retry-After`` in seconds when given."""

    status: int
    body: bytes
    retry_after: float | None
    truncated: bool = False


def _retry_after(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (RFC 9110, section 10.2.3): a number
    of seconds, or an HTTP-date (then the time until it, 0 when it has passed). None when
    absent or unreadable (the usual backoff applies)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if seconds >= 0 and math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000" in an HTTP-date: UTC all the same
        when = when.replace(tzinfo=datetime.UTC)
    return max(0.0, when.timestamp() - now())


_ssl_context: ssl.SSLContext | None = None


def _context() -> ssl.SSLContext:
    global _ssl_context
    if _ssl_context is None:
        _ssl_context = ssl.create_default_context()
    return _ssl_context


class _DeadlineReader(io.RawIOBase):
    """The response's socket reads, each given the time left before the request's deadline
    (http.client only knows a per-read timeout: a drip of one byte per read never ends)."""

    def __init__(self, raw: io.RawIOBase, sock: socket.socket, conn: _Deadlined) -> None:
        super().__init__()
        self._raw = raw  # socket.SocketIO: keeps the socket open until the response closes
        self._sock = sock
        self._conn = conn

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        self._sock.settimeout(self._conn.remaining())
        return self._raw.readinto(buffer)

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


class _SocketView:
    """What ``HTTPResponse.__init__`` needs of the socket: a ``makefile`` under the deadline."""

    def __init__(self, sock: socket.socket, conn: _Deadlined) -> None:
        self._sock = sock
        self._conn = conn

    def makefile(self, mode: str) -> io.BufferedReader:
        raw = self._sock.makefile("rb", buffering=0)
        return io.BufferedReader(_DeadlineReader(raw, self._sock, self._conn))


class _Deadlined(http.client.HTTPConnection):
    """An HTTP connection whose every socket operation gets the time left before
    ``deadline`` (a ``time.monotonic()`` value, set before each request)."""

    deadline = 0.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._create_connection = self._connect_socket

    def remaining(self) -> float:
        """Seconds left; ``TimeoutError`` once the deadline has passed."""
        left = self.deadline - _monotonic()
        if left <= 0:
            raise TimeoutError("the request's deadline passed")
        return left

    def _connect_socket(self, address: tuple[str, int], timeout: Any = None,
                        source_address: Any = None) -> socket.socket:
        sock = socket.create_connection(address, self.remaining(), source_address)
        try:
            sock.settimeout(self.remaining())  # what is left for the TLS handshake
        except BaseException:
            sock.close()
            raise
        return sock

    def send(self, data: Any) -> None:
        if self.sock is None:
            self.connect()
        if isinstance(data, (bytes, bytearray, memoryview)):
            view = memoryview(data).cast("B")
            sock = self.sock
            for start in range(0, max(len(view), 1), _SEND_CHUNK):
                sock.settimeout(self.remaining())
                sock.sendall(view[start:start + _SEND_CHUNK])
            return
        super().send(data)

    def response_class(self, sock: Any, *args: Any, **kwargs: Any  # type: ignore[override]
                       ) -> http.client.HTTPResponse:
        view: Any = _SocketView(sock, self)  # HTTPResponse only calls its makefile("rb")
        return http.client.HTTPResponse(view, *args, **kwargs)


class _DeadlinedTLS(_Deadlined, http.client.HTTPSConnection):
    """The TLS variant: the handshake runs under what is left of the deadline too."""


def _new_connection(origin: Origin, timeout: float) -> _Deadlined:
    if origin.scheme == "https":
        return _DeadlinedTLS(origin.host, origin.port, timeout=timeout, context=_context())
    return _Deadlined(origin.host, origin.port, timeout=timeout)


def _read_capped(resp: http.client.HTTPResponse) -> tuple[bytes, bool]:
    """The body, at most :data:`MAX_REPLY_BYTES` of it, and whether it was cut.

    A body shorter than its Content-Length raises ``IncompleteRead`` (the reply was cut
    short: the request may be retried); a longer one is cut, never read to its end.
    """
    length = resp.length
    if resp.chunked or length is None:
        data = resp.read(MAX_REPLY_BYTES + 1)
    else:
        want = min(length, MAX_REPLY_BYTES + 1)
        data = resp.read(want)
        if len(data) < want:
            raise http.client.IncompleteRead(data, want - len(data))
    if len(data) > MAX_REPLY_BYTES:
        return data[:MAX_REPLY_BYTES], True
    return data, False


class ConnectionPool:
    """Keep-alive connections of one sender thread, one per origin.

    Not thread-safe except :meth:`abort`, which interrupts the request in progress.
    """

    def __init__(self) -> None:
        self._conns: dict[Origin, _Deadlined] = {}
        self._active: _Deadlined | None = None
        self._guard = threading.Lock()
        self.connects = 0  # how many connections were opened (keep-alive check in tests)
        self.in_backoff = False  # set by the delivery while it waits to retry
        self.request_started = 0.0  # monotonic time the current request began; 0: none

    def post(
        self,
        origin: Origin,
        path: str,
        body: bytes,
        headers: Mapping[str, str],
        timeout: float,
    ) -> Response:
        """POST and read the reply; transport failures raise (see ``TRANSPORT_ERRORS``).

        ``timeout`` bounds the whole request (``TimeoutError`` past it), the retry below
        included. A connection reused from an earlier request that fails before any reply
        arrives is retried once on a fresh connection: the server closed it while idle.
        """
        self.request_started = now = _monotonic()
        deadline = now + max(0.0, timeout)
        conn = self._conns.get(origin)
        reused = conn is not None
        try:
            try:
                return self._post(origin, conn, path, body, headers, deadline)
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                if not reused:
                    raise
            return self._post(origin, None, path, body, headers, deadline)
        finally:
            self.request_started = 0.0

    def _post(
        self,
        origin: Origin,
        conn: _Deadlined | None,
        path: str,
        body: bytes,
        headers: Mapping[str, str],
        deadline: float,
    ) -> Response:
        if conn is None:
            conn = _new_connection(origin, max(0.001, deadline - _monotonic()))
            self._conns[origin] = conn
            self.connects += 1
        conn.deadline = deadline
        with self._guard:
            self._active = conn
        try:
            conn.timeout = conn.remaining()
            # A memoryview is sent as is; bytes would be copied once more behind the headers.
            conn.request("POST", origin.base_path + path, memoryview(body), dict(headers))
            resp = conn.getresponse()
            data, truncated = _read_capped(resp)
            if truncated or resp.will_close or not resp.isclosed():
                with self._guard:
                    self._active = None
                self._drop(origin)  # the rest of a cut body is never read
            return Response(resp.status, data, _retry_after(resp.getheader("Retry-After")),
                            truncated)
        except BaseException:
            with self._guard:
                # abort() must not shut down a socket number we are about to release.
                self._active = None
            self._drop(origin)
            raise
        finally:
            with self._guard:
                self._active = None

    def _drop(self, origin: Origin) -> None:
        conn = self._conns.pop(origin, None)
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001, S110 - closing a broken connection
                pass

    def abort(self) -> None:
        """Interrupt the request in progress, from any thread (its ``post`` then raises)."""
        with self._guard:
            conn = self._active
            sock = conn.sock if conn is not None else None
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def backend_wait(self, now: float) -> float:
        """Seconds this pool's thread has been waiting on the backend: in the current
        request (0 while it has none), or ``inf`` while it backs off after a failure.
        Read from any thread (the sender's starved/blocked test)."""
        if self.in_backoff:
            return float("inf")
        started = self.request_started
        return now - started if started else 0.0

    def close(self) -> None:
        """Close every connection of this pool."""
        for origin in list(self._conns):
            self._drop(origin)

    def forget(self) -> None:
        """Release connections inherited across ``fork()`` without touching the parent's.

        Closing only releases this process's descriptor and sends nothing (``shutdown()``
        would end the parent's connection too, so it is never used here).
        """
        for conn in self._conns.values():
            try:
                conn.close()
            except Exception:  # noqa: BLE001, S110 - closing a broken connection
                pass
        self._conns.clear()
        self._active = None
        self._guard = threading.Lock()


def post_once(
    origin: Origin, path: str, body: bytes, headers: Mapping[str, str], timeout: float
) -> Response:
    """One POST on a short-lived connection (markers and other rare calls)."""
    pool = ConnectionPool()
    try:
        return pool.post(origin, path, body, headers, timeout)
    finally:
        pool.close()


Compress = Callable[[Iterable[bytes]], bytes]


class Compression(NamedTuple):
    """``encoding`` (the Content-Encoding, None for none), ``new_compressor()`` (one per
    thread: zstd contexts are not thread-safe) and ``decompress``.

    A compressor takes the body as chunks and compresses them as they come: the
    uncompressed body of a batch never exists whole. (Joining it first saves ~8% of zstd's
    time but costs far more resident memory: multi-megabyte temporaries make glibc keep
    per-thread arenas large.)
    """

    encoding: str | None
    new_compressor: Callable[[], Compress]
    decompress: Callable[[bytes], bytes]


def make_compression(name: str, level: int | None = None) -> Compression:
    """The :class:`Compression` for "zstd", "gzip" or "none"; ValueError for anything else."""
    if name == "zstd":
        import zstandard

        zlevel = 1 if level is None else level  # level 1: fastest here, and ratio ~4 on events

        def zstd_compressor() -> Compress:
            cctx = zstandard.ZstdCompressor(level=zlevel)

            def compress(chunks: Iterable[bytes]) -> bytes:
                stream = cctx.compressobj()
                out = [stream.compress(chunk) for chunk in chunks]
                out.append(stream.flush())
                return b"".join(out)

            return compress

        def zstd_decompress(data: bytes) -> bytes:
            return zstandard.ZstdDecompressor().decompressobj().decompress(data)

        return Compression("zstd", zstd_compressor, zstd_decompress)
    if name == "gzip":
        glevel = 1 if level is None else level
        deflate: Any = zlib
        if 0 <= glevel <= 3:
            # ISA-L (the optional ``isal`` package, in the otlp extra) writes the same gzip
            # format about 2.8x faster than zlib at its level 1, with a slightly better
            # ratio on events (4.1 against 11.5 µs per 63-field event: docs/benchmarks.md).
            try:
                from isal import isal_zlib as deflate
            except ImportError:  # pragma: no cover - depends on the environment
                pass

        def gzip_compress(chunks: Iterable[bytes]) -> bytes:
            stream = deflate.compressobj(glevel, deflate.DEFLATED, 31)  # wbits=31: gzip framing
            out = [stream.compress(chunk) for chunk in chunks]
            out.append(stream.flush())
            return b"".join(out)

        def gzip_decompress(data: bytes) -> bytes:
            return zlib.decompress(data, wbits=31)

        return Compression("gzip", lambda: gzip_compress, gzip_decompress)
    if name == "none":
        return Compression(None, lambda: b"".join, bytes)
    raise ValueError(f"unknown compression {shown(name)}; use one of {', '.join(COMPRESSIONS)}")
