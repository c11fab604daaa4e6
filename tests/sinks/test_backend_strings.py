"""What a backend says is bounded and masked before it reaches stats() or the logs
(issue 16, items 13 and 12).

A real loopback server answers every event with a distinct error text, every OTLP export
with a distinct partial-success message, or reflects the API key it was sent in its error
bodies (some proxies and mock servers do). ``stats()`` keys stay few (the first 20
distinct texts, then ``other``), log lines stay few (at most one per reason per minute,
with a count of those suppressed), and no key appears in either.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time

import orjson
import pytest

from tests.support.honeycomb_receiver import ExactLedger
from tests.support.scripted_http import Request, ScriptedServer, answer, reply
from wideevents._transport import OTHER, Reasons
from wideevents.sinks import HoneycombSink, OTLPSink, Record

KEY = "hcaik_01jbackendreflectsTHEkey9q8w7e6r5t4y3u2i1o0pmnbvcxz"  # shaped like an ingest key


def records(n: int, start: int = 0) -> list[Record]:
    out = []
    for i in range(start, start + n):
        fields = {"name": "e", "i": i, "timestamp": "2024-05-01T12:00:00.000000Z"}
        out.append(Record(fields, orjson.dumps(fields)))
    return out


def fragments(key: str) -> list[str]:
    """The key and its 12-character windows (a key shown cut or wrapped still leaks)."""
    return [key] + [key[i:i + 12] for i in range(0, len(key) - 11, 6)]


def leaked(text: str) -> list[str]:
    return [f for f in fragments(KEY) if f in text]


def wideevents_lines(caplog: pytest.LogCaptureFixture, needle: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "wideevents" and needle in r.getMessage()]


def honeycomb(url: str, **kwargs: object) -> tuple[HoneycombSink, ExactLedger]:
    sink = HoneycombSink(api_key=KEY, dataset="ds", api_host=url, send_interval=0.01,
                         max_batch_events=500, **kwargs)  # type: ignore[arg-type]
    ledger = ExactLedger()
    sink.bind(ledger)
    return sink, ledger


# -- item 13 --------------------------------------------------------------------------------
def test_distinct_per_event_error_texts_give_bounded_reasons_and_log_lines(
        caplog: pytest.LogCaptureFixture) -> None:
    """5,000 events, each rejected with its own error text: 21 rejected reasons (20 texts
    and "other") holding all 5,000, and one log line per reason."""
    counter = itertools.count()
    lock = threading.Lock()

    def per_event(request: Request) -> bytes:
        events = orjson.loads(request.body)
        with lock:
            statuses = [{"status": 400, "error": f"field f{next(counter)} is not allowed"}
                        for _ in events]
        return reply(200, orjson.dumps(statuses))

    caplog.set_level(logging.WARNING, logger="wideevents")
    with ScriptedServer(answer(per_event)) as server:
        sink, ledger = honeycomb(server.url)
        ledger.expect(5000)
        for start in range(0, 5000, 500):
            sink.export(records(500, start))
        flushed = sink.flush(30.0)
        sent, rejected, dropped = ledger.outcome()
        assert (0, 5000, {}) == (sent, sum(rejected.values()), dropped)
        assert 21 == len(rejected)
        assert OTHER in rejected and rejected[OTHER] == 5000 - 20
        assert len(wideevents_lines(caplog, "rejected")) <= 21
        assert flushed is False  # everything was rejected
        sink.close(1.0)


def test_distinct_otlp_partial_success_messages_log_a_bounded_number_of_lines(
        caplog: pytest.LogCaptureFixture) -> None:
    """300 exports, each answered with a partial success carrying its own message: the
    rejected reason stays "partial_success" and one line is logged, not 300."""
    counter = itertools.count()

    def partial(request: Request) -> bytes:
        body = orjson.dumps({"partialSuccess": {"rejectedLogRecords": "1",
                                                "errorMessage": f"record {next(counter)} "
                                                                "has a bad attribute"}})
        return reply(200, body)

    caplog.set_level(logging.WARNING, logger="wideevents")
    with ScriptedServer(answer(partial)) as server:
        sink = OTLPSink(server.url, encoding="json", max_batch_events=2, send_interval=0.01)
        ledger = ExactLedger()
        sink.bind(ledger)
        ledger.expect(600)
        for start in range(0, 600, 2):
            sink.export(records(2, start))
        flushed = sink.flush(30.0)
        assert (300, {"partial_success": 300}, {}) == ledger.outcome()
        assert len(wideevents_lines(caplog, "OTLP endpoint rejected")) == 1
        assert flushed is False
        sink.close(1.0)


def test_per_event_status_codes_without_text_are_bounded() -> None:
    """Per-event errors without text, with 129 different codes (300-428: none is retried)
    and negative ones: 21 reasons (20 and "other") hold all 1,000 events."""
    codes = itertools.count()

    def coded(request: Request) -> bytes:
        events = orjson.loads(request.body)
        statuses = [{"status": (300 + n % 129) if n % 2 else -n}
                    for n in itertools.islice(codes, len(events))]
        return reply(200, orjson.dumps(statuses))

    with ScriptedServer(answer(coded)) as server:
        sink, ledger = honeycomb(server.url)
        ledger.expect(1000)
        sink.export(records(1000))
        sink.flush(10.0)
        sent, rejected, dropped = ledger.outcome()
        assert (0, 1000, {}, 21) == (sent, sum(rejected.values()), dropped, len(rejected))
        sink.close(1.0)


def test_a_suppressed_reason_is_reported_with_its_count(
        caplog: pytest.LogCaptureFixture) -> None:
    """Reasons.note: the first line is logged, repeats within the interval are counted,
    and the next line after the interval says how many were suppressed."""
    caplog.set_level(logging.WARNING, logger="wideevents")
    notes = Reasons(interval=0.2)
    logged = [notes.note("k", "wideevents: test line %d", i) for i in range(5)]
    assert logged == [True, False, False, False, False]
    time.sleep(0.25)
    assert notes.note("k", "wideevents: test line %d", 5) is True
    lines = wideevents_lines(caplog, "test line")
    assert lines == ["wideevents: test line 0",
                     "wideevents: test line 5 (4 similar reports suppressed in the last 0 s)"]


# -- item 12: replies that reflect the key ------------------------------------------------
def test_error_bodies_reflecting_the_key_are_masked_in_logs_and_stats(
        caplog: pytest.LogCaptureFixture) -> None:
    """A 400 body, per-event error texts and a marker refusal that echo the API key: the
    log lines and rejected reasons show it masked, still recognisable by its start."""
    def reflect(request: Request) -> bytes:
        sent_key = request.headers.get("x-honeycomb-team", "")
        if request.path.startswith("/1/markers/"):
            return reply(403, orjson.dumps({"error": f"key {sent_key} may not create markers"}))
        events = orjson.loads(request.body)
        if len(events) == 3:
            return reply(400, f"<html>bad request from {sent_key}</html>".encode())
        return reply(200, orjson.dumps([{"status": 400, "error": f"unknown key {sent_key}"}
                                        for _ in events]))

    caplog.set_level(logging.DEBUG)
    with ScriptedServer(answer(reflect)) as server:
        sink, ledger = honeycomb(server.url)
        ledger.expect(3)
        sink.export(records(3))
        sink.flush(10.0)
        ledger.expect(5)
        sink.export(records(5, 3))
        sink.flush(10.0)
        assert sink.marker("deploy") is None
        _, rejected, _ = ledger.outcome()
        text = "\n".join(r.getMessage() for r in caplog.records) + repr(rejected)
        assert [] == leaked(text)
        assert {"400": 3, f"unknown key hcai***({len(KEY)} chars)": 5} == rejected
        assert "bad request from hcai***" in text and "may not create markers" in text
        sink.close(1.0)


def test_otlp_status_and_partial_messages_reflecting_the_key_are_masked(
        caplog: pytest.LogCaptureFixture) -> None:
    """OTLP: a 400 Status message and a partial-success message that echo the key are
    logged masked."""
    state = {"n": 0}

    def reflect(request: Request) -> bytes:
        state["n"] += 1
        sent_key = request.headers.get("x-honeycomb-team", "")
        if state["n"] == 1:
            return reply(400, orjson.dumps({"code": 3, "message": f"bad key {sent_key}"}))
        return reply(200, orjson.dumps({"partialSuccess": {
            "rejectedLogRecords": "1", "errorMessage": f"dropped for {sent_key}"}}))

    caplog.set_level(logging.DEBUG)
    with ScriptedServer(answer(reflect)) as server:
        sink = OTLPSink(server.url, encoding="json", headers={"x-honeycomb-team": KEY},
                        send_interval=0.01)
        ledger = ExactLedger()
        sink.bind(ledger)
        for start in (0, 2):
            ledger.expect(2)
            sink.export(records(2, start))
            sink.flush(10.0)
        assert (1, {"400": 2, "partial_success": 1}, {}) == ledger.outcome()
        text = "\n".join(r.getMessage() for r in caplog.records)
        assert [] == leaked(text)
        assert "bad key hcai***" in text and "dropped for hcai***" in text
        sink.close(1.0)
