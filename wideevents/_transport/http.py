"""HTTP plumbing for the sender: origins, persistent connections, compression.

Standard library only. A :class:`ConnectionPool` belongs to one sender thread and keeps one
keep-alive connection per origin; :meth:`ConnectionPool.abort` may be called from another
thread to interrupt a request that the server never answers (used by ``close(timeout)``).

Nothing here logs or formats request headers: they carry API keys.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import zlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple
from urllib.parse import urlsplit

__all__ = [
    "COMPRESSIONS",
    "Compress",
    "Compression",
    "ConnectionPool",
    "Origin",
    "Response",
    "make_compression",
    "parse_origin",
    "post_once",
]

COMPRESSIONS = ("zstd", "gzip", "none")

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
    """The URL as an error message may show it: credentials, query and fragment left out
    (a key pasted into any of them must not reach logs)."""
    try:
        parts = urlsplit(url.strip())
        host = parts.netloc.rpartition("@")[2]
        return repr(f"{parts.scheme}://{host}{parts.path}"[:200])
    except Exception:  # noqa: BLE001 - a message helper must never raise
        return "the URL"


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
    """A complete HTTP response: status, body, and ``Retry-After`` in seconds when given."""

    status: int
    body: bytes
    retry_after: float | None


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # HTTP-date form: rare for these APIs; our own backoff applies
    return seconds if seconds >= 0 else None


_ssl_context: ssl.SSLContext | None = None


def _context() -> ssl.SSLContext:
    global _ssl_context
    if _ssl_context is None:
        _ssl_context = ssl.create_default_context()
    return _ssl_context


def _new_connection(origin: Origin, timeout: float) -> http.client.HTTPConnection:
    if origin.scheme == "https":
        return http.client.HTTPSConnection(
            origin.host, origin.port, timeout=timeout, context=_context()
        )
    return http.client.HTTPConnection(origin.host, origin.port, timeout=timeout)


class ConnectionPool:
    """Keep-alive connections of one sender thread, one per origin.

    Not thread-safe except :meth:`abort`, which interrupts the request in progress.
    """

    def __init__(self) -> None:
        self._conns: dict[Origin, http.client.HTTPConnection] = {}
        self._active: http.client.HTTPConnection | None = None
        self._guard = threading.Lock()
        self.connects = 0  # how many connections were opened (keep-alive check in tests)

    def post(
        self,
        origin: Origin,
        path: str,
        body: bytes,
        headers: Mapping[str, str],
        timeout: float,
    ) -> Response:
        """POST and read the full reply; transport failures raise (see ``TRANSPORT_ERRORS``).

        A connection reused from an earlier request that fails before any reply arrives
        is retried once on a fresh connection: the server closed it while idle.
        """
        conn = self._conns.get(origin)
        reused = conn is not None
        try:
            return self._post(origin, conn, path, body, headers, timeout)
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            if not reused:
                raise
        return self._post(origin, None, path, body, headers, timeout)

    def _post(
        self,
        origin: Origin,
        conn: http.client.HTTPConnection | None,
        path: str,
        body: bytes,
        headers: Mapping[str, str],
        timeout: float,
    ) -> Response:
        if conn is None:
            conn = _new_connection(origin, timeout)
            self._conns[origin] = conn
            self.connects += 1
        else:
            conn.timeout = timeout
            if conn.sock is not None:
                conn.sock.settimeout(timeout)
        with self._guard:
            self._active = conn
        try:
            # A memoryview is sent as is; bytes would be copied once more behind the headers.
            conn.request("POST", origin.base_path + path, memoryview(body), dict(headers))
            resp = conn.getresponse()
            data = resp.read()
            if resp.will_close:
                self._drop(origin)
            return Response(resp.status, data, _retry_after(resp.getheader("Retry-After")))
        except BaseException:
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
    raise ValueError(f"unknown compression {name!r}; use one of {', '.join(COMPRESSIONS)}")
