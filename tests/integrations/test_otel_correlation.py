"""Trace correlation with OpenTelemetry: active spans, traceparent headers, the event's span."""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
from typing import Any

import pytest

import wideevents
from tests.support.otel import (
    otel_clean,  # noqa: F401 - fixture
    otel_enabled,  # noqa: F401 - fixture
    run_python,
    scoped_event,
    tracing,
)
from wideevents import _correlation as _otel
from wideevents._core import hooks
from wideevents.sinks import MemorySink, OTelSink

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"


def span_ids(span: Any) -> tuple[str, str]:
    ctx = span.get_span_context()
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


@pytest.mark.usefixtures("otel_enabled")
def test_root_event_joins_the_active_sdk_span() -> None:
    """Under an active SDK span, a root event takes its trace id; its parent is the span."""
    provider, _ = tracing()
    memory = MemorySink()
    wideevents.configure(sinks=[memory])
    with provider.get_tracer("t").start_as_current_span("http") as span:
        with wideevents.event("handler") as outer:
            with wideevents.event("step"):
                pass
    assert wideevents.flush(5.0)
    trace_id, span_id = span_ids(span)
    step, handler = memory.events
    assert (trace_id, span_id) == (handler["trace.trace_id"], handler["trace.parent_id"])
    assert (trace_id, outer.span_id) == (step["trace.trace_id"], step["trace.parent_id"])


@pytest.mark.usefixtures("otel_clean")
def test_otel_false_keeps_events_in_their_own_trace() -> None:
    """configure(otel=False): an SDK span does not change the event's trace."""
    provider, _ = tracing()
    wideevents.configure(sinks=[MemorySink()], otel=False)
    with provider.get_tracer("t").start_as_current_span("http") as span:
        with wideevents.event("handler") as ev:
            pass
    assert (False, None) == (ev.trace_id == span_ids(span)[0], ev.parent_id)


@pytest.mark.usefixtures("otel_clean")
def test_configure_enables_correlation_when_opentelemetry_is_in_use() -> None:
    """configure() with opentelemetry.trace imported: an active SDK span parents the event."""
    provider, _ = tracing()
    wideevents.configure(sinks=[MemorySink()])
    with provider.get_tracer("t").start_as_current_span("http") as span:
        with wideevents.event("handler") as ev:
            pass
    assert (ev.trace_id, ev.parent_id) == span_ids(span)


@pytest.mark.usefixtures("otel_enabled")
def test_sdk_spans_inside_an_event_are_its_children() -> None:
    """While an event is current, OpenTelemetry sees its ids: new spans become its children."""
    from opentelemetry import trace

    provider, exporter = tracing()
    wideevents.configure(sinks=[MemorySink()])
    with scoped_event("handler") as ev:
        assert (ev.trace_id, ev.span_id) == span_ids(trace.get_current_span())
        with provider.get_tracer("t").start_as_current_span("db.query"):
            pass
    assert not trace.get_current_span().get_span_context().is_valid
    [child] = exporter.get_finished_spans()
    assert (ev.trace_id, ev.span_id) == (format(child.context.trace_id, "032x"),
                                         format(child.parent.span_id, "016x"))


@pytest.mark.usefixtures("otel_enabled")
def test_event_makes_its_span_current() -> None:
    """event() itself puts the event's span in OpenTelemetry's context (core scope hook)."""
    from opentelemetry import trace

    wideevents.configure(sinks=[MemorySink()])
    with wideevents.event("handler") as ev:
        assert (ev.trace_id, ev.span_id) == span_ids(trace.get_current_span())
    assert not trace.get_current_span().get_span_context().is_valid


@pytest.mark.usefixtures("otel_enabled")
def test_concurrent_tasks_see_their_own_event() -> None:
    """Each asyncio task's OpenTelemetry context holds its own event's span."""
    from opentelemetry import trace

    wideevents.configure(sinks=[MemorySink()])

    async def handle(i: int) -> tuple[bool, bool]:
        with scoped_event("task", i=i) as ev:
            await asyncio.sleep(0.01 * (3 - i))
            current = span_ids(trace.get_current_span())
            return current == (ev.trace_id, ev.span_id), ev.parent_id is None

    async def main() -> list[tuple[bool, bool]]:
        return await asyncio.gather(*(handle(i) for i in range(3)))

    assert [(True, True)] * 3 == asyncio.run(main())


@pytest.mark.usefixtures("otel_enabled")
def test_exit_in_another_context_is_quiet(caplog: pytest.LogCaptureFixture) -> None:
    """An event left in another context detaches nothing and logs no OpenTelemetry error."""
    from opentelemetry import trace

    wideevents.configure(sinks=[MemorySink()])
    ev = scoped_event("gen")
    entered = contextvars.copy_context()
    entered.run(ev.__enter__)
    with caplog.at_level(logging.DEBUG):
        entered.copy().run(ev.__exit__, None, None, None)
    assert [] == [r for r in caplog.records if r.name.startswith("opentelemetry")]
    # The context it was entered in keeps the event's span (as it keeps the event itself).
    still = entered.run(lambda: span_ids(trace.get_current_span()))
    assert (ev.trace_id, ev.span_id) == still
    assert not trace.get_current_span().get_span_context().is_valid


@pytest.mark.usefixtures("otel_enabled")
def test_inject_outside_events_uses_the_active_span() -> None:
    """wideevents.inject() with no event: the active OpenTelemetry span's traceparent."""
    provider, _ = tracing()
    with provider.get_tracer("t").start_as_current_span("client") as span:
        headers = wideevents.inject({})
    trace_id, span_id = span_ids(span)
    flags = span.get_span_context().trace_flags  # sampled, and "random" in recent SDKs
    assert {"traceparent": f"00-{trace_id}-{span_id}-{flags:02x}"} == headers
    assert {} == wideevents.inject({})


@pytest.mark.usefixtures("otel_clean")
def test_otel_sink_span_is_the_current_span() -> None:
    """With OTelSink (span mode) the live SDK span, not a stand-in, is current in the event."""
    from opentelemetry import trace

    provider, exporter = tracing()
    wideevents.configure(sinks=[OTelSink(tracer_provider=provider)])
    with scoped_event("handler") as ev:
        current = trace.get_current_span()
        recording = current.is_recording()
        with provider.get_tracer("t").start_as_current_span("inner"):
            pass
    assert wideevents.flush(5.0)
    inner, handler = exporter.get_finished_spans()
    assert (True, (ev.trace_id, ev.span_id)) == (recording, span_ids(current))
    assert (format(handler.context.span_id, "016x"), ev.span_id) == (
        format(inner.parent.span_id, "016x"), format(handler.context.span_id, "016x"))


@pytest.mark.parametrize(("headers", "want"), [
    ({"traceparent": f"00-{TRACE_ID}-{SPAN_ID}-01"}, (TRACE_ID, SPAN_ID)),
    ({"TraceParent": f"00-{TRACE_ID}-{SPAN_ID}-00"}, (TRACE_ID, SPAN_ID)),
    ([(b"traceparent", f"00-{TRACE_ID}-{SPAN_ID}-01".encode())], (TRACE_ID, SPAN_ID)),
    ({"traceparent": f"00-{TRACE_ID.upper()}-{SPAN_ID}-01"}, None),
    ({"traceparent": f"00-{'0' * 32}-{SPAN_ID}-01"}, None),
    ({"traceparent": f"00-{TRACE_ID}-{'0' * 16}-01"}, None),
    ({"traceparent": f"ff-{TRACE_ID}-{SPAN_ID}-01"}, None),
    ({"traceparent": f"00-{TRACE_ID}-{SPAN_ID}-01-extra"}, None),
    ({"traceparent": "garbage"}, None),
    ({"other": "x"}, None),
])
def test_extract_parent(headers: Any, want: tuple[str, str] | None) -> None:
    """extract_parent follows W3C Trace Context through the API's propagator."""
    assert want == _otel.extract_parent(headers)


def test_traceparent_with_the_api_alone() -> None:
    """No SDK imported or set: a traceparent header makes the event a child of the caller."""
    out = run_python(f"""
        import json, sys
        import wideevents
        from wideevents import _correlation as _otel
        from wideevents.sinks import MemorySink
        from opentelemetry import context, trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
        from tests.support.otel import scoped_event
        _otel.enable()
        memory = MemorySink()
        wideevents.configure(sinks=[memory])
        header = "00-{TRACE_ID}-{SPAN_ID}-01"
        parent = _otel.extract_parent({{"traceparent": header}})
        token = context.attach(TraceContextTextMapPropagator().extract({{"traceparent": header}}))
        outside = wideevents.inject({{}})
        with scoped_event("request") as ev:
            current = trace.get_current_span().get_span_context()
            inside = wideevents.inject({{}})
        context.detach(token)
        wideevents.flush(5.0)
        [event] = memory.events
        print(json.dumps({{
            "parent": parent, "outside": outside, "inside": inside,
            "event": [event["trace.trace_id"], event["trace.parent_id"], event["trace.span_id"]],
            "current": [format(current.trace_id, "032x"), format(current.span_id, "016x")],
            "sdk": [m for m in sys.modules if m.startswith("opentelemetry.sdk")],
        }}))
    """)
    got = json.loads(out)
    span_id = got["event"][2]
    assert {"parent": [TRACE_ID, SPAN_ID],
            "outside": {"traceparent": f"00-{TRACE_ID}-{SPAN_ID}-01"},
            "inside": {"traceparent": f"00-{TRACE_ID}-{span_id}-01"},
            "event": [TRACE_ID, SPAN_ID, span_id],
            "current": [TRACE_ID, span_id], "sdk": []} == got


def test_import_wideevents_loads_no_opentelemetry() -> None:
    """import wideevents and an event (correlation off) import nothing from OpenTelemetry."""
    out = run_python("""
        import sys, wideevents
        wideevents.configure(sinks=[])
        with wideevents.event("e"):
            pass
        print(sorted(m for m in sys.modules if m.startswith("opentelemetry")))
    """)
    assert "[]" == out.strip()


def test_disable_restores_the_hooks() -> None:
    """enable() registers its hooks once; disable() removes exactly them."""
    before = (list(hooks.parent_resolvers), list(hooks.inject_fallbacks))
    _otel.enable()
    _otel.enable()
    during = (hooks.parent_resolvers[0], hooks.inject_fallbacks.count(_otel.inject_current))
    _otel.disable()
    assert ((_otel.current_parent, 1), before) == (
        during, (list(hooks.parent_resolvers), list(hooks.inject_fallbacks)))
