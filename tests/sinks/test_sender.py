"""The generic sender: batching, limits, compression, retries, deadlines, exact accounting.

Driven with a small newline codec (not Honeycomb's) against a real loopback HTTP server,
to show the machinery is backend-neutral.
"""

from __future__ import annotations

import gzip
import os
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
import pytest
import zstandard

from wideevents._transport import (
    Destination,
    Reply,
    Response,
    Sender,
    SenderConfig,
    backoff_delay,
    parse_origin,
    reply_for_status,
)

# A test backend's retryable statuses (each real backend states its own: HONEYCOMB_RETRYABLE,
# OTLP_RETRYABLE).
RETRYABLE = frozenset({429, 500, 503})


class LineCodec:
    """Items joined by newlines; a 200 reply may list per-item rejections and retries."""

    content_type = "text/plain"

    def __init__(self, decodable: bool = True) -> None:
        if decodable:
            self.decode = lambda body: body.split(b"\n")

    def encode(self, items: Sequence[bytes]) -> list[bytes]:
        return [b"\n".join(items)]

    def interpret(self, response: Response, count: int) -> Reply:
        if response.status == 200 and response.body:
            spec = orjson.loads(response.body)
            return Reply("done", rejected=[(i, r) for i, r in spec.get("reject", [])],
                         retry=spec.get("retry", []))
        return reply_for_status(response.status, RETRYABLE)


class Outcomes:
    """A ledger that keeps every outcome the sender reports, with the tags it passed."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reports: list[tuple[str, str, int, list[object] | None]] = []

    def _add(self, outcome: str, reason: str, count: int) -> None:
        with self.lock:
            self.reports.append((outcome, reason, count, None))

    def sent(self, n: int = 1) -> None:
        self._add("sent", "", n)

    def rejected(self, reason: str, n: int = 1) -> None:
        self._add("rejected", reason, n)

    def dropped(self, reason: str, n: int = 1) -> None:
        self._add("dropped", reason, n)

    def fields_dropped(self, reason: str, n: int = 1) -> None:
        raise AssertionError("the sender never removes fields")

    def tagged(self, outcome: str, reason: str, tags: Sequence[object], status: int) -> None:
        """The sender's tagged-outcome callback: it follows the ledger call for the same items."""
        with self.lock:
            last = self.reports[-1]
            assert last[:2] == (outcome, reason if outcome != "sent" else "")
            assert last[2] == len(tags)
            self.reports[-1] = (*last[:3], list(tags))

    def totals(self) -> dict[tuple[str, str], int]:
        out: dict[tuple[str, str], int] = {}
        with self.lock:
            for outcome, reason, count, _ in self.reports:
                out[(outcome, reason)] = out.get((outcome, reason), 0) + count
        return out

    def count(self) -> int:
        with self.lock:
            return sum(r[2] for r in self.reports)


class LineServer:
    """Loopback server: decodes bodies, records items, answers from a script."""

    def __init__(self, max_body: int = 10**9) -> None:
        self.max_body = max_body
        self.lock = threading.Lock()
        self.requests: list[list[bytes]] = []
        self.encodings: list[str] = []
        self.script: deque[tuple[int, bytes]] = deque()
        self.hang = threading.Event()
        self.reset_next = 0
        self.connections = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with server.lock:
                    server.connections += 1

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                encoding = self.headers.get("Content-Encoding", "")
                if server.hang.is_set():
                    server.release.wait(30)
                    return
                with server.lock:
                    if server.reset_next:
                        server.reset_next -= 1
                        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                                   struct.pack("ii", 1, 0))
                        self.close_connection = True
                        return
                body = {"gzip": gzip.decompress,
                        "zstd": lambda b: zstandard.ZstdDecompressor().decompressobj()
                        .decompress(b)}.get(encoding, bytes)(raw)
                with server.lock:
                    status, reply = server.script.popleft() if server.script else (200, b"")
                    if len(body) > server.max_body:
                        status, reply = 413, b""
                    if status == 200:
                        server.requests.append(body.split(b"\n"))
                        server.encodings.append(encoding)
                self.send_response(status)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

        self.release = threading.Event()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def items(self) -> list[bytes]:
        with self.lock:
            return [item for request in self.requests for item in request]

    def stop(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[LineServer]:
    srv = LineServer()
    yield srv
    srv.stop()


def make(server_url: str, outcomes: Outcomes, codec: Any = None, **config: Any) -> Sender:
    config.setdefault("backoff_initial", 0.01)
    config.setdefault("backoff_max", 0.05)
    return Sender("test", codec or LineCodec(), SenderConfig(**config), ledger=outcomes,
                  on_tagged=outcomes.tagged)


def dest(url: str) -> Destination:
    return Destination(parse_origin(url), "/ingest", (("X-Secret", "s3cr3t"),))


def items_of(n: int, size: int = 100) -> list[bytes]:
    return [f"item-{i:06d}".encode().ljust(size, b".") for i in range(n)]


def test_every_item_arrives_once_in_batches_within_both_limits(server: LineServer) -> None:
    """1,000 items arrive exactly once; no request exceeds the count or byte limit."""
    out = Outcomes()
    sender = make(server.url, out, max_batch_events=64, max_batch_bytes=3000)
    items = items_of(1000)
    for i in range(0, 1000, 50):
        sender.submit(dest(server.url), items[i:i + 50])
    assert sender.flush(10.0) is True
    assert sorted(server.items()) == sorted(items)
    largest = max(len(r) for r in server.requests)
    assert largest <= min(64, 3000 // 100)
    assert out.totals() == {("sent", ""): 1000}
    sender.close(1.0)


def test_partial_batch_waits_for_the_send_interval(server: LineServer) -> None:
    """A partial batch is not sent at once, but is sent after send_interval without a flush."""
    out = Outcomes()
    sender = make(server.url, out, send_interval=0.5, max_batch_events=100)
    sender.submit(dest(server.url), items_of(5))
    time.sleep(0.05)
    assert server.items() == []
    deadline = time.monotonic() + 5.0
    while len(server.items()) < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sorted(server.items()) == sorted(items_of(5))
    sender.close(1.0)


def test_flush_sends_a_partial_batch_immediately(server: LineServer) -> None:
    """flush() does not wait for the send interval."""
    out = Outcomes()
    sender = make(server.url, out, send_interval=60.0)
    sender.submit(dest(server.url), items_of(3))
    assert sender.flush(5.0) is True
    assert sorted(server.items()) == sorted(items_of(3))
    assert sender.pending == 0
    sender.close(1.0)


def test_buffer_bounds_drop_exactly_the_overflow(server: LineServer) -> None:
    """Past buffer_events / buffer_bytes, exactly the overflow is dropped "buffer_full"."""
    out = Outcomes()
    sender = make(server.url, out, send_interval=60.0, buffer_events=100,
                  max_batch_events=1000)
    sender.submit(dest(server.url), items_of(250))
    sender.submit(dest(server.url), items_of(10))
    assert out.totals() == {("dropped", "buffer_full"): 150 + 10}
    assert sender.pending == 100
    by_bytes = Outcomes()
    small = make(server.url, by_bytes, send_interval=60.0, buffer_bytes=1000,
                 max_batch_events=1000)
    small.submit(dest(server.url), items_of(25, size=100))
    assert by_bytes.totals() == {("dropped", "buffer_full"): 25 - 1000 // 100}
    # Both dropped items since their last flush: False, once (docs/architecture.md, "Sinks").
    assert (sender.flush(5.0), small.flush(5.0)) == (False, False)
    assert out.totals()[("sent", "")] == 100 and by_bytes.totals()[("sent", "")] == 10
    sender.close(1.0)
    small.close(1.0)


@pytest.mark.parametrize("decodable", [True, False])
def test_413_splits_until_every_part_fits(decodable: bool) -> None:
    """A whole-batch 413 is split and resent; all items arrive once, each body under the limit."""
    srv = LineServer(max_body=2500)
    try:
        out = Outcomes()
        sender = make(srv.url, out, LineCodec(decodable), max_batch_events=100,
                      send_interval=60.0)
        items = items_of(100)
        sender.submit(dest(srv.url), items)
        assert sender.flush(10.0) is True
        assert sorted(srv.items()) == sorted(items)
        assert all(len(b"\n".join(r)) <= 2500 for r in srv.requests)
        assert out.totals() == {("sent", ""): 100}
        sender.close(1.0)
    finally:
        srv.stop()


def test_a_single_item_too_large_is_rejected_as_413() -> None:
    """An item the server refuses with 413 on its own is rejected with reason "413"."""
    srv = LineServer(max_body=50)
    try:
        out = Outcomes()
        sender = make(srv.url, out)
        sender.submit(dest(srv.url), items_of(1, size=100))
        assert sender.flush(5.0) is False  # rejected
        assert out.totals() == {("rejected", "413"): 1}
        sender.close(1.0)
    finally:
        srv.stop()


def test_transient_statuses_are_retried_until_accepted(server: LineServer) -> None:
    """503, 500 and 429 are retried; the batch is then sent once."""
    server.script.extend([(503, b""), (500, b""), (429, b"")])
    out = Outcomes()
    sender = make(server.url, out)
    sender.submit(dest(server.url), items_of(7))
    assert sender.flush(10.0) is True
    assert out.totals() == {("sent", ""): 7}
    assert sorted(server.items()) == sorted(items_of(7))
    sender.close(1.0)


def test_attempts_are_bounded(server: LineServer) -> None:
    """After max_attempts failures the items are dropped "retries_exhausted", no more requests."""
    server.script.extend([(503, b"")] * 10)
    out = Outcomes()
    sender = make(server.url, out, max_attempts=3)
    sender.submit(dest(server.url), items_of(4))
    assert sender.flush(10.0) is False  # dropped
    assert out.totals() == {("dropped", "retries_exhausted"): 4}
    assert len(server.script) == 10 - 3
    sender.close(1.0)


def test_the_batch_deadline_bounds_retries(server: LineServer) -> None:
    """With unlimited attempts, retry_deadline still ends the retries."""
    server.script.extend([(503, b"")] * 10_000)
    out = Outcomes()
    sender = make(server.url, out, max_attempts=10_000, retry_deadline=0.5,
                  backoff_initial=0.02, backoff_max=0.05)
    started = time.monotonic()
    sender.submit(dest(server.url), items_of(2))
    assert sender.flush(10.0) is False  # dropped
    assert time.monotonic() - started < 3.0
    assert out.totals() == {("dropped", "retries_exhausted"): 2}
    sender.close(1.0)


def test_non_retryable_status_rejects_the_batch_with_its_code(server: LineServer) -> None:
    """A whole-request 400 is not retried and counts as rejected "400"."""
    server.script.append((400, b""))
    out = Outcomes()
    sender = make(server.url, out)
    sender.submit(dest(server.url), items_of(5))
    assert sender.flush(5.0) is False  # rejected
    assert out.totals() == {("rejected", "400"): 5}
    assert server.script == deque() and server.items() == []
    sender.close(1.0)


@pytest.mark.parametrize("decodable", [True, False])
def test_per_item_rejections_and_retries(server: LineServer, decodable: bool) -> None:
    """Per-item results: one rejected with its reason, one resent alone, the rest sent."""
    server.script.append((200, orjson.dumps({"reject": [[1, "bad item"]], "retry": [2]})))
    out = Outcomes()
    sender = make(server.url, out, LineCodec(decodable), send_interval=60.0)
    items = items_of(5)
    sender.submit(dest(server.url), items, tags=["t0", "t1", "t2", "t3", "t4"])
    assert sender.flush(5.0) is False  # one item rejected
    assert out.totals() == {("sent", ""): 4, ("rejected", "bad item"): 1}
    assert server.requests[-1] == [items[2]]
    tags_by = {(o, r): t for o, r, _, t in out.reports if t is not None and len(t) == 1}
    assert tags_by[("rejected", "bad item")] == ["t1"]
    assert tags_by[("sent", "")] == ["t2"]
    sender.close(1.0)


@pytest.mark.parametrize("compression", ["zstd", "gzip", "none"])
def test_bodies_decode_to_the_items(server: LineServer, compression: str) -> None:
    """Each compression's body, decoded independently by the server, is exactly the items."""
    out = Outcomes()
    sender = make(server.url, out, compression=compression, max_batch_events=1000)
    items = items_of(300)
    sender.submit(dest(server.url), items)
    assert sender.flush(5.0) is True
    assert server.items() == items
    expected = {"zstd": "zstd", "gzip": "gzip", "none": ""}[compression]
    assert set(server.encodings) == {expected}
    sender.close(1.0)


def test_connections_are_kept_alive(server: LineServer) -> None:
    """Twenty sequential batches from one sender thread use one connection."""
    out = Outcomes()
    sender = make(server.url, out, max_in_flight=1)
    for _ in range(20):
        sender.submit(dest(server.url), items_of(3))
        assert sender.flush(5.0) is True
    assert len(server.requests) == 20
    assert server.connections == 1
    sender.close(1.0)


def test_resets_and_refused_connections_are_retried(server: LineServer) -> None:
    """A reset connection is retried; a port nobody listens on exhausts the attempts."""
    server.reset_next = 2
    out = Outcomes()
    sender = make(server.url, out)
    sender.submit(dest(server.url), items_of(3))
    assert sender.flush(5.0) is True
    assert out.totals() == {("sent", ""): 3}
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    closed_port = probe.getsockname()[1]
    probe.close()  # nobody listens there now: connections are refused
    refused = Outcomes()
    url = f"http://127.0.0.1:{closed_port}"
    dead = make(url, refused, max_attempts=2)
    dead.submit(dest(url), items_of(2))
    assert dead.flush(5.0) is False  # dropped
    assert refused.totals() == {("dropped", "retries_exhausted"): 2}
    sender.close(1.0)
    dead.close(1.0)


def test_close_honours_its_timeout_when_the_server_never_answers(server: LineServer) -> None:
    """close(1) returns in about a second; everything is dropped "shutdown", reported once."""
    server.hang.set()
    out = Outcomes()
    sender = make(server.url, out, request_timeout=30.0, max_batch_events=10)
    sender.submit(dest(server.url), items_of(35))
    time.sleep(0.3)  # let requests get stuck
    started = time.monotonic()
    assert sender.close(1.0) is False
    assert time.monotonic() - started < 1.75  # ~1 s, with room for a busy machine
    assert out.totals() == {("dropped", "shutdown"): 35}
    server.release.set()
    time.sleep(0.2)
    assert out.count() == 35
    sender.submit(dest(server.url), items_of(2))
    assert out.totals() == {("dropped", "shutdown"): 37}


def test_backoff_is_capped_exponential_with_jitter() -> None:
    """Delays follow min(max, initial * 2**(n-1)) scaled into [0.5, 1), or Retry-After."""
    for attempt in range(1, 12):
        ceiling = min(5.0, 0.1 * 2 ** (attempt - 1))
        low = backoff_delay(attempt, 0.1, 5.0, lambda: 0.0)
        high = backoff_delay(attempt, 0.1, 5.0, lambda: 0.999999)
        assert low == pytest.approx(ceiling * 0.5)
        assert high == pytest.approx(ceiling, rel=1e-5)
    assert backoff_delay(1, 0.1, 5.0, lambda: 0.5, retry_after=7.0) == 7.0
    assert backoff_delay(3, 0.1, 5.0, lambda: 0.0, retry_after=0.01) == pytest.approx(0.2)


def test_bad_settings_are_refused() -> None:
    """Invalid sender settings raise ValueError naming the setting."""
    for bad in ({"max_batch_events": 0}, {"send_interval": -1.0}, {"compression": "brotli"},
                {"buffer_bytes": 1.5}):
        with pytest.raises(ValueError, match=next(iter(bad)) if "compression" not in bad
                           else "brotli"):
            SenderConfig(**bad).check()  # type: ignore[arg-type]


def test_destination_repr_hides_headers() -> None:
    """A Destination's repr never shows its headers (they carry API keys)."""
    d = dest("http://127.0.0.1:1")
    assert "s3cr3t" not in repr(d) and "X-Secret" not in repr(d)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_forgets_the_parents_buffer(server: LineServer) -> None:
    """The child starts empty and reports nothing; the parent still delivers its items once."""
    out = Outcomes()
    sender = make(server.url, out, send_interval=60.0)
    items = items_of(10)
    sender.submit(dest(server.url), items)
    before = out.count()
    pid = os.fork()
    if pid == 0:  # the child: exit code 0 only if the buffer is gone and nothing was reported
        ok = sender.pending == 0 and out.count() == before
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert sender.flush(5.0) is True
    assert sorted(server.items()) == sorted(items)
    assert out.totals() == {("sent", ""): 10}
    sender.close(1.0)


@pytest.mark.parametrize("isal_present", [True, False])
def test_gzip_is_standard_with_or_without_isal(monkeypatch: pytest.MonkeyPatch,
                                                isal_present: bool) -> None:
    """The ISA-L accelerator (otlp extra) and the zlib fallback both write plain gzip that
    the standard library reads back; explicit levels past ISA-L's 0-3 use zlib."""
    import sys

    from wideevents._transport import make_compression

    if isal_present:
        pytest.importorskip("isal")
    else:
        monkeypatch.setitem(sys.modules, "isal", None)  # import isal -> ImportError
    chunks = [orjson.dumps({"i": i, "x": i / 7, "label": f"class_{i % 13}"}) for i in range(500)]
    for level in (None, 0, 3, 6, 9):
        compress = make_compression("gzip", level).new_compressor()
        body = compress(iter(chunks))
        assert body[:2] == b"\x1f\x8b"
        assert gzip.decompress(body) == b"".join(chunks)
