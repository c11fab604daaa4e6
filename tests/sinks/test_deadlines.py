"""Every request has a total deadline, and every reply is read up to 1 MB (issue 16,
items 16 and 6).

Real loopback servers misbehave on purpose (``tests/support/scripted_http.py``): one
drips the reply, status line or body, one byte every 0.5 s, so that no single socket
read ever times out; others send a 100 MB body, or a chunked one that goes on for 64 MB.
The request must end within its own deadline (``request_timeout`` / the OTLP ``timeout``,
never past ``retry_deadline``), ``close(timeout)`` and ``marker(timeout)`` within theirs,
and a long reply costs 1 MB, not its length. Time bounds are the deadline plus a margin
for a busy machine; the faults themselves are forced, not timed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import orjson
import pytest

from tests.support.honeycomb_receiver import ExactLedger
from tests.support.scripted_http import (
    Request,
    ScriptedServer,
    Writer,
    answer,
    drip,
    huge,
    reply,
)
from wideevents._transport import MAX_REPLY_BYTES
from wideevents.sinks import HoneycombSink, OTLPSink, Record

KEY = "deadline-key"
MARGIN = 1.5  # seconds allowed past a deadline on a busy 2-core machine
SOCKET_BUFFERS = 16 << 20  # what the kernel may take in before the reader stops reading


def records(n: int) -> list[Record]:
    out = []
    for i in range(n):
        fields = {"name": "e", "i": i, "timestamp": "2024-05-01T12:00:00.000000Z"}
        out.append(Record(fields, orjson.dumps(fields)))
    return out


def all_accepted(request: Request) -> bytes:
    count = len(orjson.loads(request.body)) if request.body.startswith(b"[") else 1
    return reply(200, b"[" + b",".join([b'{"status":202}'] * count) + b"]")


def head_of(full: bytes) -> int:
    return full.index(b"\r\n\r\n") + 4


def body_drip(request: Request, writer: Writer) -> None:
    """Headers at once, then the body one byte every 0.5 s."""
    full = all_accepted(request)
    drip(full, every=0.5, start=head_of(full))(request, writer)


@pytest.fixture(params=["status-line", "body"])
def dripping(request: pytest.FixtureRequest) -> Iterator[ScriptedServer]:
    script = drip(all_accepted, every=0.5) if request.param == "status-line" else body_drip
    with ScriptedServer(script) as server:
        yield server


def sink_for(url: str, **kwargs: object) -> tuple[HoneycombSink, ExactLedger]:
    settings: dict[str, object] = {"send_interval": 0.01, "backoff_initial": 0.05,
                                   "backoff_max": 0.1}
    settings.update(kwargs)
    sink = HoneycombSink(api_key=KEY, dataset="ds", api_host=url, **settings)  # type: ignore[arg-type]
    ledger = ExactLedger()
    sink.bind(ledger)
    return sink, ledger


# -- item 16: total deadlines ---------------------------------------------------------------
def test_retry_deadline_bounds_a_dripping_request(dripping: ScriptedServer) -> None:
    """request_timeout=10 and retry_deadline=2 against a drip: the batch is dropped
    retries_exhausted about 2 s after it left the buffer, not when the drip ends."""
    sink, ledger = sink_for(dripping.url, request_timeout=10.0, retry_deadline=2.0)
    ledger.expect(5)
    started = time.monotonic()
    sink.export(records(5))
    assert ledger.wait_reported(2.0 + MARGIN)
    assert time.monotonic() - started < 2.0 + MARGIN
    assert (0, {}, {"retries_exhausted": 5}) == ledger.outcome()
    assert sink.close(1.0) is False  # the loss is reported
    assert not ledger.overcounted


def test_request_timeout_bounds_each_attempt(dripping: ScriptedServer) -> None:
    """request_timeout=0.6: each attempt ends after ~0.6 s and is retried (three attempts
    fit in the 3 s deadline), then dropped: the timeout is per request, not per read."""
    sink, ledger = sink_for(dripping.url, request_timeout=0.6, retry_deadline=3.0,
                            max_attempts=3)
    ledger.expect(2)
    started = time.monotonic()
    sink.export(records(2))
    assert ledger.wait_reported(3 * 0.6 + 0.5 + MARGIN)
    assert time.monotonic() - started < 3 * 0.6 + 0.5 + MARGIN
    assert (0, {}, {"retries_exhausted": 2}) == ledger.outcome()
    assert dripping.count() == 3
    sink.close(0.5)


def test_otlp_timeout_setting_bounds_one_export_request() -> None:
    """OTLPSink(timeout=1) against a drip: an export request ends after ~1 s (the OTLP
    exporter specification: the timeout is the maximum time the exporter waits for each
    batch export), so two attempts end in ~2 s, not when the drip ends."""
    def otlp_drip(request: Request, writer: Writer) -> None:
        drip(reply(200, b"", "application/x-protobuf") + b"x" * 10, every=0.5)(request, writer)

    with ScriptedServer(otlp_drip) as server:
        sink = OTLPSink(server.url, timeout=1.0, max_attempts=2, backoff_initial=0.01,
                        backoff_max=0.02, send_interval=0.01)
        ledger = ExactLedger()
        sink.bind(ledger)
        ledger.expect(3)
        started = time.monotonic()
        sink.export(records(3))
        assert ledger.wait_reported(2 * 1.0 + MARGIN)
        assert time.monotonic() - started < 2 * 1.0 + MARGIN
        assert (0, {}, {"retries_exhausted": 3}) == ledger.outcome()
        sink.close(0.5)


def test_close_returns_within_its_timeout_against_a_drip(dripping: ScriptedServer) -> None:
    """close(1) returns in about a second while a request is being dripped; the batch is
    dropped "shutdown" and reported once."""
    sink, ledger = sink_for(dripping.url, request_timeout=30.0)
    ledger.expect(4)
    sink.export(records(4))
    deadline = time.monotonic() + 5.0
    while dripping.count() < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    assert sink.close(1.0) is False
    assert time.monotonic() - started < 1.0 + MARGIN
    assert (0, {}, {"shutdown": 4}) == ledger.outcome()


@pytest.mark.parametrize("where", ["status-line", "body"])
def test_marker_timeout_bounds_the_whole_request(where: str) -> None:
    """marker(timeout=2) against a drip returns None in about 2 s (it blocked for over
    12 s when the timeout applied to each read)."""
    def created(request: Request) -> bytes:
        return reply(201, orjson.dumps({"id": "m1", "message": "deploy"}))

    def script(request: Request, writer: Writer) -> None:
        full = created(request)
        drip(full, every=0.5, start=head_of(full) if where == "body" else 0)(request, writer)

    with ScriptedServer(script) as server:
        sink, _ = sink_for(server.url)
        started = time.monotonic()
        assert sink.marker("deploy", timeout=2.0) is None
        assert time.monotonic() - started < 2.0 + MARGIN
        sink.close(0.5)


# -- item 6: capped reply reads -------------------------------------------------------------
@pytest.mark.parametrize("shape", ["content-length-100MB", "chunked-64MB"])
def test_a_huge_success_reply_is_read_up_to_1mb_and_counts_as_sent(shape: str) -> None:
    """A 200 whose body is 100 MB (or a 64 MB chunked stream): the sink reads at most
    1 MB, closes the connection, and counts the batch sent (an unreadable 200 reply, as
    docs/reliability.md says); the server managed to push only what socket buffers hold."""
    script = (huge(200, 100 << 20) if shape.startswith("content-length")
              else huge(200, 64 << 20, chunked=True))
    with ScriptedServer(script) as server:
        sink, ledger = sink_for(server.url, max_attempts=1)
        ledger.expect(10)
        sink.export(records(10))
        assert ledger.wait_reported(10.0)
        assert (10, {}, {}) == ledger.outcome()
        assert server.wait_finished(1)
        assert server.bytes_sent < MAX_REPLY_BYTES + SOCKET_BUFFERS
        sink.close(0.5)


def test_a_huge_error_reply_is_read_up_to_1mb_and_rejected(
        caplog: pytest.LogCaptureFixture) -> None:
    """A 400 with a 100 MB body: rejected "400" after reading at most 1 MB; the log line
    quotes at most 200 characters of it."""
    caplog.set_level(logging.WARNING, logger="wideevents")
    with ScriptedServer(huge(400, 100 << 20)) as server:
        sink, ledger = sink_for(server.url)
        ledger.expect(3)
        sink.export(records(3))
        assert ledger.wait_reported(10.0)
        assert (0, {"400": 3}, {}) == ledger.outcome()
        assert server.wait_finished(1)
        assert server.bytes_sent < MAX_REPLY_BYTES + SOCKET_BUFFERS
        assert max(len(r.getMessage()) for r in caplog.records) < 500
        sink.close(0.5)


def test_a_huge_otlp_reply_is_read_up_to_1mb() -> None:
    """OTLP: a 200 with a 100 MB body is cut at 1 MB, counted sent (unreadable reply)."""
    with ScriptedServer(huge(200, 100 << 20)) as server:
        sink = OTLPSink(server.url, max_attempts=1, send_interval=0.01)
        ledger = ExactLedger()
        sink.bind(ledger)
        ledger.expect(4)
        sink.export(records(4))
        assert ledger.wait_reported(10.0)
        assert (4, {}, {}) == ledger.outcome()
        assert server.bytes_sent < MAX_REPLY_BYTES + SOCKET_BUFFERS
        sink.close(0.5)


def test_a_huge_marker_reply_is_read_up_to_1mb() -> None:
    """marker(): a 200 with a 100 MB body is cut at 1 MB; the marker counts as created."""
    with ScriptedServer(huge(200, 100 << 20)) as server:
        sink, _ = sink_for(server.url)
        created = sink.marker("deploy", timeout=10.0)
        assert created is not None and created["message"] == "deploy"
        assert server.wait_finished(1)
        assert server.bytes_sent < MAX_REPLY_BYTES + SOCKET_BUFFERS
        sink.close(0.5)


def test_a_reply_cut_short_is_still_retried() -> None:
    """A body shorter than its Content-Length (the server went away) is not a reply: the
    batch is sent again, as before the cap (docs/reliability.md, "Duplicates")."""
    state = {"n": 0}

    def script(request: Request, writer: Writer) -> None:
        state["n"] += 1
        full = all_accepted(request)
        writer.keep_alive = False
        writer.write(full[:-5] if state["n"] == 1 else full)

    with ScriptedServer(answer(lambda r: b"")) as server:
        server.script = script
        sink, ledger = sink_for(server.url)
        ledger.expect(6)
        sink.export(records(6))
        assert sink.flush(10.0) is True
        assert (6, {}, {}) == ledger.outcome()
        assert server.count() == 2
        sink.close(0.5)
