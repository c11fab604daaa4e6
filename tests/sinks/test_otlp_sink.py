"""OTLPSink against a loopback OTLP/HTTP receiver: field equality, faults, exact accounting."""

from __future__ import annotations

import importlib.metadata
import time
from typing import Any

import numpy as np
import pytest

import wideevents
from tests.support.otel import (
    ExactLedger,
    check_equation,
    expected_otlp,
    make_records,
    rfc3339_to_ns,
    typed,
)
from tests.support.otlp_receiver import OTLPReceiver, running
from wideevents.sinks import MemorySink, OTLPSink

COMBOS = [(s, e) for s in ("logs", "traces") for e in ("protobuf", "json")]
# Required on every resource: OpenTelemetry semantic conventions, telemetry.sdk.*.
SDK = {"telemetry.sdk.name": "wideevents", "telemetry.sdk.language": "python",
       "telemetry.sdk.version": importlib.metadata.version("wideevents")}
FAST = {"send_interval": 0.01, "backoff_initial": 0.01, "backoff_max": 0.05}


@pytest.fixture
def rx() -> Any:
    with running() as receiver:
        yield receiver


def emit_events() -> None:
    """A root event with a nested one, a failed one, numpy values, and a 300-field one."""
    with wideevents.event("predict", user_id=7) as ev:
        ev.add({"request.id": "r-1", "model.name": "ranker", "score.top1": np.float64(0.75),
                "scores": np.array([0.5, 0.25]), "count": np.int64(3), "cache_hit": False,
                "nan": float("nan"), "big": 2**64 - 1, "labels": ["a", "b"], "nothing": None})
        with wideevents.event("fetch", backend="vector") as inner:
            inner.add({"samplerate": 4})
    try:
        with wideevents.event("explode"):
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    with wideevents.event("wide") as ev:
        ev.add({f"field.{i:03d}": i * 1.5 if i % 3 else f"v{i}" for i in range(300)})


@pytest.mark.parametrize(("signal", "encoding"), COMBOS)
def test_events_arrive_field_by_field(rx: OTLPReceiver, signal: str, encoding: str) -> None:
    """Every field arrives with its type; timestamps, ids and resource match the event."""
    memory = MemorySink()
    wideevents.configure(service_name="svc", sinks=[
        OTLPSink(rx.url, signal=signal, encoding=encoding, **FAST), memory])
    emit_events()
    assert wideevents.flush(10.0)
    received = {r.message.span_id.hex(): r for r in rx.received(signal)}
    assert len(memory.events) == len(received) == 4
    for event in memory.events:
        got = received[event["trace.span_id"]]
        resource, attrs = expected_otlp(event, signal)
        assert typed({**SDK, **resource}) == typed(got.resource)
        assert typed(attrs) == typed(got.attributes)
        msg = got.message
        start = rfc3339_to_ns(event["timestamp"])
        assert event["trace.trace_id"] == msg.trace_id.hex()
        if signal == "traces":
            assert (event["name"], start, start + int(event["duration_ms"] * 1e6)) == (
                msg.name, msg.start_time_unix_nano, msg.end_time_unix_nano)
            assert event.get("trace.parent_id", "") == msg.parent_span_id.hex()
            assert (2 if event.get("error") else 0) == msg.status.code
        else:
            assert (event["name"], start) == (msg.event_name, msg.time_unix_nano)
            assert (17 if event.get("error") else 9) == msg.severity_number
        assert start > 1_600_000_000 * 10**9
    wide = next(e for e in memory.events if e["name"] == "wide")
    assert 300 == sum(k.startswith("field.") for k in received[wide["trace.span_id"]].attributes)
    assert wideevents.stats()["sinks"]["otlp"]["sent"] == 4


def test_nested_events_form_one_trace(rx: OTLPReceiver) -> None:
    """As spans, a nested event is the child of its enclosing event in the same trace."""
    wideevents.configure(service_name="svc", sinks=[OTLPSink(rx.url, signal="traces", **FAST)])
    with wideevents.event("outer") as outer:
        with wideevents.event("inner"):
            pass
    assert wideevents.flush(10.0)
    spans = {r.message.name: r.message for r in rx.received()}
    assert (outer.trace_id, outer.trace_id, outer.span_id, b"") == (
        spans["inner"].trace_id.hex(), spans["outer"].trace_id.hex(),
        spans["inner"].parent_span_id.hex(), spans["outer"].parent_span_id)


def test_sdk_exporters_are_understood_by_the_receiver(rx: OTLPReceiver) -> None:
    """The receiver decodes what the SDK's own OTLP/HTTP exporters send (a known producer)."""
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    resource = Resource.create({"service.name": "sdk"})
    tp = TracerProvider(resource=resource, shutdown_on_exit=False)
    tp.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=rx.url + "/v1/traces")))
    lp = LoggerProvider(resource=resource, shutdown_on_exit=False)
    lp.add_log_record_processor(SimpleLogRecordProcessor(
        OTLPLogExporter(endpoint=rx.url + "/v1/logs")))
    with tp.get_tracer("t").start_as_current_span("op", attributes={"n": 3, "f": 0.5}):
        lp.get_logger("l").emit(event_name="ev", attributes={"ok": True}, body="hi")
    tp.shutdown()
    lp.shutdown()
    span = rx.received("traces")[0]
    log = rx.received("logs")[0]
    assert ("sdk", "op", {"n": 3, "f": 0.5}) == (span.resource["service.name"],
                                                 span.message.name, span.attributes)
    assert ("ev", {"ok": True}, span.message.trace_id) == (
        log.message.event_name, log.attributes, log.message.trace_id)


# -- faults and accounting ------------------------------------------------------------------
def sink_with_ledger(rx: OTLPReceiver, **kwargs: Any) -> tuple[OTLPSink, ExactLedger]:
    sink = OTLPSink(rx.url, **{**FAST, **kwargs})
    ledger = ExactLedger()
    sink.bind(ledger)
    return sink, ledger


def export(sink: OTLPSink, ledger: ExactLedger, n: int, start: int = 0) -> None:
    ledger.expect(n)
    sink.export(make_records(n, start))


@pytest.mark.parametrize("fault", ["503", "429", "reset"])
def test_transient_faults_are_retried_without_loss(rx: OTLPReceiver, fault: str) -> None:
    """503/429/reset twice, then success: all sent once, nothing lost or duplicated (a 500
    is not retried: OTLP specification, "Retryable Response Codes"; see
    test_fidelity_transport.py)."""
    sink, ledger = sink_with_ledger(rx, encoding="json")
    rx.inject(fault, times=2)
    export(sink, ledger, 20)
    assert sink.flush(10.0)
    assert (20, {}, {}) == ledger.outcome()
    assert (20, sorted(f"r{i}" for i in range(20))) == (
        rx.total(), sorted(f"r{r.attributes['i']}" for r in rx.received()))
    assert not ledger.overcounted


def test_bad_request_is_rejected_and_counted(rx: OTLPReceiver) -> None:
    """A 400 rejects the whole batch: counted as rejected "400", never retried."""
    sink, ledger = sink_with_ledger(rx)
    rx.inject("400")
    export(sink, ledger, 7)
    assert sink.flush(10.0) is False  # rejected since the last flush
    assert (0, {"400": 7}, {}) == ledger.outcome()
    assert (0, [400]) == (rx.total(), [r.status for r in rx.requests])


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
@pytest.mark.parametrize("signal", ["logs", "traces"])
def test_partial_success_is_counted_exactly(rx: OTLPReceiver, signal: str, encoding: str) -> None:
    """rejected_log_records / rejected_spans: that many rejected, the rest sent."""
    sink, ledger = sink_with_ledger(rx, signal=signal, encoding=encoding)
    rx.inject("partial", rejects=3, message="attribute too long")
    export(sink, ledger, 10)
    assert sink.flush(10.0) is False  # 3 rejected since the last flush
    export(sink, ledger, 5, start=10)
    assert sink.flush(10.0) is True  # the loss was reported once; these 5 all arrived
    assert (12, {"partial_success": 3}, {}) == ledger.outcome()
    assert 12 == rx.total()


def test_malformed_success_reply_counts_as_sent(rx: OTLPReceiver) -> None:
    """A 200 whose body cannot be read: the batch was taken, so sent (not resent)."""
    sink, ledger = sink_with_ledger(rx)
    rx.inject("malformed")
    export(sink, ledger, 4)
    assert sink.flush(10.0)
    assert (4, {}, {}) == ledger.outcome()
    assert 4 == rx.total()


def test_too_large_batches_are_split(rx: OTLPReceiver) -> None:
    """A 413 halves the batch and sends both halves."""
    sink, ledger = sink_with_ledger(rx)
    rx.inject("413")
    export(sink, ledger, 10)
    assert sink.flush(10.0)
    assert (10, {}, {}) == ledger.outcome()
    assert (10, [413, 200, 200], [5, 5]) == (rx.total(), [r.status for r in rx.requests],
                                             [r.records for r in rx.accepted_requests()])


def test_retries_exhausted_are_dropped_and_counted(rx: OTLPReceiver) -> None:
    """A collector that keeps answering 503: dropped "retries_exhausted" after max_attempts."""
    sink, ledger = sink_with_ledger(rx, max_attempts=3)
    rx.fault_for("503", 30.0)
    export(sink, ledger, 6)
    assert sink.flush(10.0) is False  # everything was dropped
    assert (0, {}, {"retries_exhausted": 6}) == ledger.outcome()


def test_slow_collector_times_out_then_delivers(rx: OTLPReceiver) -> None:
    """A reply slower than the timeout is retried; the sink reports each event once."""
    sink, ledger = sink_with_ledger(rx, timeout=0.2)
    rx.inject("slow")
    export(sink, ledger, 5)
    assert sink.flush(10.0)
    assert (5, {}, {}) == ledger.outcome()
    assert rx.wait_for(5)


def test_unanswered_requests_are_dropped_at_close(rx: OTLPReceiver) -> None:
    """A collector that never answers: close(timeout) returns in time, events dropped "shutdown"."""
    sink, ledger = sink_with_ledger(rx)
    rx.inject("hang", times=100)
    export(sink, ledger, 8)
    t0 = time.monotonic()
    assert sink.close(0.5) is False
    assert time.monotonic() - t0 < 2.0
    rx.release()
    assert (0, {}, {"shutdown": 8}) == ledger.outcome()
    assert not ledger.overcounted


def test_full_buffer_drops_new_events_and_counts_them(rx: OTLPReceiver) -> None:
    """Past buffer_events, new events are dropped "buffer_full" while the collector hangs."""
    sink, ledger = sink_with_ledger(rx, buffer_events=5, max_in_flight=1, max_batch_events=5)
    rx.inject("hang", times=100)
    export(sink, ledger, 5)
    deadline = time.monotonic() + 5
    while not rx.requests and time.monotonic() < deadline:  # the first batch is held
        time.sleep(0.01)
    export(sink, ledger, 5, start=5)
    export(sink, ledger, 3, start=10)
    sink.close(0.3)
    rx.release()
    assert (0, {}, {"buffer_full": 3, "shutdown": 10}) == ledger.outcome()


def test_refused_connections_are_retried() -> None:
    """No collector listening yet: the sender retries and delivers once it is up."""
    receiver = OTLPReceiver().start()
    port = receiver.port
    receiver.stop()
    sink = OTLPSink(f"http://127.0.0.1:{port}", **FAST, retry_deadline=20.0)
    ledger = ExactLedger()
    sink.bind(ledger)
    export(sink, ledger, 3)
    time.sleep(0.1)
    again = OTLPReceiver().start(port)
    try:
        assert sink.flush(15.0)
        assert (3, {}, {}) == ledger.outcome()
        assert 3 == again.total()
    finally:
        again.stop()


def test_pipeline_accounting_holds_under_faults(rx: OTLPReceiver) -> None:
    """stats(): sent + rejected + dropped + pending == emitted, before and after faults."""
    wideevents.configure(service_name="svc", sinks=[OTLPSink(rx.url, **FAST)])
    rx.inject("partial", rejects=2)
    rx.inject("400")
    for i in range(50):
        with wideevents.event("e", i=i):
            pass
        if i % 10 == 0:
            check_equation(wideevents.stats())
    assert wideevents.flush(10.0) is False  # some events were rejected
    stats = wideevents.stats()
    check_equation(stats)
    otlp = stats["sinks"]["otlp"]
    assert (50, 0) == (otlp["sent"] + sum(otlp["rejected"].values()), otlp["pending"])
    assert otlp["sent"] == rx.total()


def test_null_fields_are_left_out_and_counted(rx: OTLPReceiver) -> None:
    """None values are omitted from the attributes and counted (sink stats and ledger)."""
    sink, ledger = sink_with_ledger(rx)
    export(sink, ledger, 0)
    ledger.expect(2)
    sink.export(make_records(2, a=None, b=None, c=1))
    assert sink.flush(10.0)
    assert [{"c": 1}, {"c": 1}] == [{k: v for k, v in r.attributes.items() if k in "abc"}
                                    for r in rx.received()]
    assert ({"null": 4}, {"null": 4}) == (sink.stats()["fields_dropped"], ledger.fields)


def test_fork_child_forgets_the_parents_buffer(rx: OTLPReceiver) -> None:
    """reset_after_fork: nothing pending in the child (the parent delivers its own)."""
    import os

    sink, ledger = sink_with_ledger(rx, send_interval=10.0)
    export(sink, ledger, 3)
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            sink.reset_after_fork()
            os._exit(0 if sink.pending == 0 else 1)
        except BaseException:  # noqa: BLE001 - the forked child must exit, never return to pytest
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert 0 == os.waitstatus_to_exitcode(status)
    assert sink.flush(10.0)
    assert 3 == rx.total()
