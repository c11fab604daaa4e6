"""Helpers for the OpenTelemetry / OTLP tests: SDK providers, a reference mapping, fixtures.

The reference mapping here is written from docs/backends.md, "OTLP" and the OTLP
specification, independently of ``wideevents.sinks._otlp._encode``: the tests compare what a
receiver decoded (with ``opentelemetry-proto``) against it.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from wideevents import _correlation as _otel
from wideevents._core import event as _event

from .honeycomb_receiver import ExactLedger  # noqa: F401 - re-exported: one ledger for all sinks

ROOT = Path(__file__).resolve().parent.parent.parent  # the repository root
RESOURCE_FIELDS = ("host.name", "process.pid", "deployment.environment.name")
IDENTITY_EXACT = {"name", "request.id", "prediction.id", "samplerate", "timestamp", "duration_ms",
                  "host.name", "process.pid", "deployment.environment.name"}
IDENTITY_PREFIXES = ("service.", "trace.", "model.", "error")


# The detected resource fields (issue 22) are resource attributes too: OpenTelemetry's
# resource semantic conventions (container.*, k8s.*, cloud.*, faas.*, process.runtime.*).
RESOURCE_PREFIXES = ("service.", "container.", "k8s.", "cloud.", "faas.", "process.runtime.")


def is_resource(key: str) -> bool:
    return key.startswith(RESOURCE_PREFIXES) or key in RESOURCE_FIELDS


def is_identity(key: str) -> bool:
    return key in IDENTITY_EXACT or key.startswith(IDENTITY_PREFIXES)


def rfc3339_to_ns(stamp: str) -> int:
    when = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    epoch = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    delta = when - epoch
    return (delta.days * 86_400 + delta.seconds) * 10**9 + delta.microseconds * 1000


def otlp_value(value: Any) -> Any:
    """What an event value must become in OTLP (int64 range kept, larger ints strings)."""
    if value is None:  # inside an array: an empty AnyValue
        return None
    if isinstance(value, bool) or isinstance(value, float) or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**63 else str(value)
    if isinstance(value, list):
        return [otlp_value(v) for v in value]
    raise AssertionError(f"unexpected value {value!r}")


def expected_otlp(event: dict[str, Any], signal: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(resource attributes, record attributes) that an event must map to."""
    resource: dict[str, Any] = {}
    attrs: dict[str, Any] = {}
    skip = {"timestamp", "trace.trace_id", "trace.span_id"}
    if signal == "traces":
        skip |= {"name", "duration_ms", "trace.parent_id"}
    for key, value in event.items():
        if key in skip or value is None:
            continue
        if is_resource(key):
            resource[key] = otlp_value(value)
        elif key == "samplerate":
            attrs["SampleRate"] = int(value)
        else:
            attrs[key] = otlp_value(value)
    return resource, attrs


def typed(mapping: dict[str, Any]) -> dict[str, tuple[str, Any]]:
    """Values with their types, so that 1 == 1.0 == True cannot pass for each other."""
    def tag(v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            return ("list", [tag(x) for x in v])
        return (type(v).__name__, v)
    return {k: tag(v) for k, v in mapping.items()}


def tracing() -> tuple[Any, Any]:
    """A fresh SDK ``TracerProvider`` with an in-memory exporter (never the global one)."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    provider = TracerProvider(shutdown_on_exit=False)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def logging_sdk() -> tuple[Any, Any]:
    """A fresh SDK ``LoggerProvider`` with an in-memory exporter."""
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor

    provider = LoggerProvider(shutdown_on_exit=False)
    exporter = InMemoryLogRecordExporter()
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    return provider, exporter


def _restore(saved: Any) -> None:
    from opentelemetry import context

    _otel.disable()
    _otel.live_span = None
    if context.get_current() is not saved:  # a failed test left a span attached
        context.attach(saved)


@pytest.fixture
def otel_enabled() -> Iterator[None]:
    """Correlation on for one test, and off again (it is process-wide state)."""
    from opentelemetry import context

    saved = context.get_current()
    _otel.enable()
    try:
        yield
    finally:
        _restore(saved)


@pytest.fixture
def otel_clean() -> Iterator[None]:
    """Whatever a test enabled (an OTelSink enables correlation) is undone afterwards."""
    from opentelemetry import context

    saved = context.get_current()
    try:
        yield
    finally:
        _restore(saved)


HAS_SCOPE_HOOKS = hasattr(_event, "scope_hooks")


class ScopedEvent(_event.Event):
    """Prototype of the core's proposed scope hook: what ``Event`` does once it has it."""

    def __enter__(self) -> _event.Event:
        ev = super().__enter__()
        self._scope_token = _otel.enter_scope(self)
        return ev

    def __exit__(self, *exc: Any) -> None:
        super().__exit__(*exc)
        _otel.exit_scope(self._scope_token)


def scoped_event(name: str, **fields: Any) -> _event.Event:
    """An event that makes its span current in OpenTelemetry (the core does, once hooked)."""
    if HAS_SCOPE_HOOKS:
        return _event.Event(name, fields)
    return ScopedEvent(name, fields)


def run_python(code: str, env: dict[str, str] | None = None, timeout: float = 60.0) -> str:
    """Run ``code`` in a fresh interpreter (no global OpenTelemetry provider set); its stdout."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "WIDEEVENTS_"))}
    full_env["PYTHONPATH"] = str(ROOT)  # wideevents and tests.support importable
    full_env.update(env or {})
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, env=full_env, cwd=str(ROOT))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout




def make_records(n: int, start: int = 0, **extra: Any) -> list[Any]:
    """``n`` finished records as the pipeline hands them to sinks."""
    import orjson

    from wideevents.sinks import Record

    out = []
    for i in range(start, start + n):
        fields = {"timestamp": "2024-11-03T12:00:00.000001Z", "name": "predict",
                  "service.name": "svc", "trace.trace_id": f"{i + 1:032x}",
                  "trace.span_id": f"{i + 1:016x}", "request.id": f"req-{i}", "i": i,
                  "duration_ms": 1.5, **extra}
        out.append(Record(fields, orjson.dumps(fields)))
    return out


def check_equation(stats: dict[str, Any]) -> None:
    """The accounting equation of docs/reliability.md, "stats()": for every sink, every
    emitted event is accounted for exactly once."""
    pipeline_dropped = sum(stats["dropped"].values())
    for name, s in stats["sinks"].items():
        total = (s["sent"] + sum(s["rejected"].values()) + sum(s["dropped"].values())
                 + s["pending"] + pipeline_dropped)
        assert stats["emitted"] == total, (name, stats)
