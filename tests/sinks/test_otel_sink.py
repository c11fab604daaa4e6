"""OTelSink with the real OpenTelemetry SDK: spans, log records, limits, the SDK's exporter."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import wideevents
from tests.support.otel import (
    check_equation,
    expected_otlp,
    is_identity,
    logging_sdk,
    otel_clean,  # noqa: F401 - fixture
    rfc3339_to_ns,
    run_python,
    tracing,
    typed,
)
from tests.support.otlp_receiver import running
from wideevents import ConfigurationError
from wideevents.sinks import MemorySink, OTelSink

pytestmark = pytest.mark.usefixtures("otel_clean")


def sdk_value(value: Any) -> Any:
    """The SDK stores sequences as tuples."""
    return tuple(value) if isinstance(value, list) else value


def expected_attributes(event: dict[str, Any], signal: str) -> dict[str, Any]:
    """The attributes OTelSink must set: OTLP's, plus the resource fields (the SDK has its own)."""
    resource, attrs = expected_otlp(event, signal)
    return {k: sdk_value(v) for k, v in {**resource, **attrs}.items()}


def test_span_mode_spans_match_events() -> None:
    """One span per event: the event's ids, times, attributes with their types, parentage."""
    provider, exporter = tracing()
    memory = MemorySink()
    wideevents.configure(service_name="svc", sinks=[OTelSink(tracer_provider=provider), memory])
    with wideevents.event("outer", user_id=7) as outer:
        outer.add({"request.id": "r1", "score": 0.5, "ok": True, "tags": ["a", "b"],
                   "big": 2**63, "nothing": None, "samplerate": 5})
        with wideevents.event("inner", n=1):
            pass
    assert wideevents.flush(5.0)
    spans = {format(s.context.span_id, "016x"): s for s in exporter.get_finished_spans()}
    assert 2 == len(spans) == len(memory.events)
    for event in memory.events:
        span = spans[event["trace.span_id"]]
        start = rfc3339_to_ns(event["timestamp"])
        assert (event["name"], event["trace.trace_id"]) == (
            span.name, format(span.context.trace_id, "032x"))
        assert typed(expected_attributes(event, "traces")) == typed(dict(span.attributes))
        assert start == span.start_time
        assert start + int(event["duration_ms"] * 1e6) == span.end_time
        parent = event.get("trace.parent_id")
        assert parent == (None if span.parent is None else format(span.parent.span_id, "016x"))
    assert outer.trace_id == memory.events[0]["trace.trace_id"]


def test_span_mode_continues_a_remote_parent() -> None:
    """Under an incoming traceparent, the event's span joins the caller's trace."""
    from opentelemetry import context
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    trace_id, parent_id = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    provider, exporter = tracing()
    memory = MemorySink()
    wideevents.configure(sinks=[OTelSink(tracer_provider=provider), memory])
    carrier = {"traceparent": f"00-{trace_id}-{parent_id}-01"}
    token = context.attach(TraceContextTextMapPropagator().extract(carrier))
    try:
        with wideevents.event("request", n=np.int64(3)):
            pass
    finally:
        context.detach(token)
    assert wideevents.flush(5.0)
    [span] = exporter.get_finished_spans()
    [event] = memory.events
    assert (trace_id, parent_id, True) == (
        format(span.context.trace_id, "032x"), format(span.parent.span_id, "016x"),
        span.parent.is_remote)
    assert (trace_id, parent_id, format(span.context.span_id, "016x"), 3) == (
        event["trace.trace_id"], event["trace.parent_id"], event["trace.span_id"],
        span.attributes["n"])


def test_failed_event_has_error_status_and_exception_event() -> None:
    """error: status ERROR with the message, and an exception event with type and message."""
    from opentelemetry.trace import StatusCode

    provider, exporter = tracing()
    wideevents.configure(sinks=[OTelSink(tracer_provider=provider)])
    with pytest.raises(ValueError):
        with wideevents.event("fails"):
            raise ValueError("bad input")
    assert wideevents.flush(5.0)
    [span] = exporter.get_finished_spans()
    [exc] = span.events
    assert (StatusCode.ERROR, "bad input") == (span.status.status_code, span.status.description)
    assert ("exception", {"exception.type": "ValueError", "exception.message": "bad input"},
            span.end_time) == (exc.name, dict(exc.attributes), exc.timestamp)


def test_identity_fields_survive_the_sdk_attribute_limit() -> None:
    """300 fields under the default limit of 128: every identity field kept, the rest counted."""
    provider, exporter = tracing()
    memory = MemorySink()
    sink = OTelSink(tracer_provider=provider)
    wideevents.configure(service_name="svc", sinks=[sink, memory])
    with wideevents.event("wide") as ev:
        ev.add({f"x.{i:03d}": i for i in range(300)})
        ev.add({"request.id": "r", "prediction.id": "p", "model.name": "m",
                "model.version": "v1", "samplerate": 2})
    assert wideevents.flush(5.0)
    [span] = exporter.get_finished_spans()
    [event] = memory.events
    attrs = dict(span.attributes)
    candidates = expected_attributes(event, "traces")
    identity = {k: v for k, v in candidates.items() if is_identity(k) or k == "SampleRate"}
    others = [k for k in candidates if k not in identity]
    room = 128 - 2 - len(identity)
    want = {**{k: candidates[k] for k in others[:room]}, **identity,
            "meta.dropped_fields": tuple(others[room:][:20]),
            "meta.dropped_count": len(others) - room}
    assert want == attrs
    assert (0, 128) == (span.dropped_attributes, len(attrs))
    assert {"attribute_limit": len(others) - room} == sink.stats()["fields_dropped"]


def test_log_mode_records_match_events() -> None:
    """One log record per event: event_name, explicit timestamp, trace context, attributes."""
    provider, exporter = logging_sdk()
    memory = MemorySink()
    wideevents.configure(service_name="svc", sinks=[OTelSink("log", logger_provider=provider),
                                                    memory])
    with wideevents.event("predict", user_id=3) as ev:
        ev.add({"request.id": "r1", "score": 0.25, "flags": [True, False]})
    with pytest.raises(KeyError):
        with wideevents.event("lookup"):
            raise KeyError("k")
    assert wideevents.flush(5.0)
    logs = exporter.get_finished_logs()
    assert len(memory.events) == len(logs) == 2
    for event, data in zip(memory.events, logs, strict=True):
        rec = data.log_record
        assert (event["name"], rfc3339_to_ns(event["timestamp"])) == (rec.event_name, rec.timestamp)
        assert (event["trace.trace_id"], event["trace.span_id"]) == (
            format(rec.trace_id, "032x"), format(rec.span_id, "016x"))
        assert ("ERROR" if event.get("error") else "INFO") == rec.severity_text
        assert typed(expected_attributes(event, "logs")) == typed(dict(rec.attributes))


def test_log_mode_keeps_identity_under_the_limit() -> None:
    """Log records obey the SDK's log attribute limit the same way: identity first, named drops."""
    from opentelemetry.sdk._logs import LoggerProvider, LogRecordLimits
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

    provider = LoggerProvider(shutdown_on_exit=False,
                              log_record_limits=LogRecordLimits(max_log_record_attributes=20))
    exporter = InMemoryLogRecordExporter()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    memory = MemorySink()
    wideevents.configure(service_name="svc", sinks=[OTelSink("log", logger_provider=provider),
                                                    memory])
    with wideevents.event("wide") as ev:
        ev.add({f"y{i}": i for i in range(50)})
        ev.add({"request.id": "r", "model.version": "v"})
    assert wideevents.flush(5.0)
    [data] = exporter.get_finished_logs()
    [event] = memory.events
    candidates = expected_attributes(event, "logs")
    identity = {k: v for k, v in candidates.items() if is_identity(k)}
    others = [k for k in candidates if k not in identity]
    room = 20 - 2 - len(identity)
    want = {**{k: candidates[k] for k in others[:room]}, **identity,
            "meta.dropped_fields": tuple(others[room:][:20]),
            "meta.dropped_count": len(others) - room}
    assert want == dict(data.log_record.attributes)
    assert 0 == data.dropped_attributes


def test_sdk_sampler_declines_are_counted() -> None:
    """A span the SDK's sampler does not record is counted dropped "not_recording"."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    provider = TracerProvider(sampler=ALWAYS_OFF, shutdown_on_exit=False)
    wideevents.configure(sinks=[OTelSink(tracer_provider=provider)])
    for _ in range(3):
        with wideevents.event("e"):
            pass
    assert wideevents.flush(5.0) is False  # the sink dropped events since the last flush
    stats = wideevents.stats()
    check_equation(stats)
    assert {"not_recording": 3} == stats["sinks"]["otel"]["dropped"]


def test_spans_of_events_dropped_by_the_pipeline_are_bounded() -> None:
    """Events the pipeline samples out never end their span; at most max_open_spans are kept."""
    provider, exporter = tracing()
    sink = OTelSink(tracer_provider=provider, max_open_spans=5)
    wideevents.configure(sinks=[sink], sampler=lambda e: 0)
    for _ in range(12):
        with wideevents.event("sampled-out"):
            pass
    assert wideevents.flush(5.0)
    assert (5, 7, ()) == (sink.stats()["open_spans"], sink.stats()["abandoned_spans"],
                          exporter.get_finished_spans())


def test_sdk_otlp_exporter_delivers_the_events() -> None:
    """OTelSink -> SDK BatchSpanProcessor -> its OTLP/HTTP exporter -> the loopback receiver."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    with running() as rx:
        provider = TracerProvider(shutdown_on_exit=False)
        provider.add_span_processor(BatchSpanProcessor(
            OTLPSpanExporter(endpoint=rx.url + "/v1/traces")))
        memory = MemorySink()
        wideevents.configure(service_name="svc", sinks=[OTelSink(tracer_provider=provider),
                                                        memory])
        for i in range(20):
            with wideevents.event("req", i=i, f=i / 4, ok=i % 2 == 0):
                pass
        assert wideevents.flush(10.0)
        provider.shutdown()
        got = {r.message.span_id.hex(): r for r in rx.received("traces")}
        assert 20 == len(got)
        for event in memory.events:
            rec = got[event["trace.span_id"]]
            resource_keys = ("service.", "host.", "process.")
            assert typed(expected_otlp(event, "traces")[1]) == typed(
                {k: v for k, v in rec.attributes.items() if not k.startswith(resource_keys)})
            assert rfc3339_to_ns(event["timestamp"]) == rec.message.start_time_unix_nano


def test_bad_mode_is_a_configuration_error() -> None:
    """An unknown mode fails at construction."""
    with pytest.raises(ConfigurationError, match="span"):
        OTelSink("metric")


def test_without_an_sdk_events_are_counted_no_sdk() -> None:
    """With opentelemetry-api alone (no provider set), both modes count events as "no_sdk"."""
    out = run_python("""
        import json, wideevents
        from wideevents.sinks import OTelSink, MemorySink
        memory = MemorySink()
        wideevents.configure(sinks=[OTelSink(), OTelSink("log"), memory])
        with wideevents.event("a") as ev:
            pass
        wideevents.flush(5.0)
        s = wideevents.stats()["sinks"]
        same = memory.events[0]["trace.trace_id"] == ev.trace_id
        print(json.dumps([s["otel"]["dropped"], s["otel#2"]["dropped"], same]))
    """)
    assert '[{"no_sdk": 1}, {"no_sdk": 1}, true]' == out.strip()
