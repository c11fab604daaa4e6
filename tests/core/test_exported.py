"""The public surface: ``__all__`` is exactly what docs/architecture.md, "Public surface"
names, and it resolves."""

from __future__ import annotations

import importlib.util

import pytest

import wideevents
import wideevents.sinks
import wideevents.testing

# Written by hand from docs/architecture.md, "Public surface", plus Limits (issue 2's
# configurable limits) and rollup (issue 22: child work sums into the request's event).
TOP_LEVEL = {
    "configure", "event", "add", "add_trace", "current_event", "in_context", "inject",
    "instrument", "feedback", "flush", "shutdown", "stats", "install_signal_handlers",
    "ConfigurationError", "Event", "Pipeline", "Limits", "rollup",
}
# The sinks of docs/architecture.md, "Public surface", plus the sink interface of
# docs/architecture.md, "Sinks" that custom sinks implement (Sink, the Record batches they
# receive, the SinkLedger binding sinks report to).
SINKS = {
    "StdoutSink", "FileSink", "MemorySink", "HoneycombSink", "OTLPSink", "OTelSink",
    "Record", "Sink", "SinkLedger",
    "PrometheusSink",  # issue 21: metrics derived from the same events
}
_PLANNED_SINK_MODULES = ("wideevents.sinks._otlp", "wideevents.sinks._otel")
_PLANNED_MISSING = [m for m in _PLANNED_SINK_MODULES if importlib.util.find_spec(m) is None]


def test_top_level_all_is_exactly_the_design_names() -> None:
    """wideevents.__all__ lists each name of docs/architecture.md, "Public surface" once, and
    nothing else."""
    assert sorted(wideevents.__all__) == sorted(TOP_LEVEL)


def test_top_level_names_resolve() -> None:
    """Every name in wideevents.__all__ is an attribute, and a star import gives exactly them."""
    for name in wideevents.__all__:
        assert getattr(wideevents, name) is not None, name
    namespace: dict[str, object] = {}
    exec("from wideevents import *", namespace)
    assert sorted(k for k in namespace if k != "__builtins__") == sorted(TOP_LEVEL)


def test_configuration_error_is_a_value_error() -> None:
    """ConfigurationError is the one exception users catch, a ValueError."""
    assert issubclass(wideevents.ConfigurationError, ValueError)


def test_sinks_all_is_exactly_the_design_names() -> None:
    """wideevents.sinks.__all__ lists the documented sinks and the sink interface, nothing else."""
    assert sorted(wideevents.sinks.__all__) == sorted(SINKS)


def test_local_sinks_resolve() -> None:
    """The always-available sinks and interface types are importable attributes."""
    for name in ("StdoutSink", "FileSink", "MemorySink", "HoneycombSink", "Record", "Sink",
                 "SinkLedger"):
        assert getattr(wideevents.sinks, name) is not None, name


@pytest.mark.xfail(bool(_PLANNED_MISSING), strict=True,
                   reason=f"sinks.__all__ lists OTLPSink/OTelSink but {_PLANNED_MISSING} do not "
                   "exist, so `from wideevents.sinks import *` raises AttributeError")
def test_sinks_star_import_works() -> None:
    """`from wideevents.sinks import *` binds every name of wideevents.sinks.__all__."""
    namespace: dict[str, object] = {}
    exec("from wideevents.sinks import *", namespace)
    assert sorted(k for k in namespace if k != "__builtins__") == sorted(SINKS)


def test_testing_all() -> None:
    """wideevents.testing exports capture_events only."""
    assert wideevents.testing.__all__ == ["capture_events"]
    assert callable(wideevents.testing.capture_events)


# Issue 22: the outgoing-call instrumentation and the pytest plugin, written by hand from
# docs/integrations.md and the README's "Testing" section.
CLIENTS = {"instrument", "instrumented", "uninstrument"}
PYTEST_PLUGIN = {"CapturedEvents", "wideevents_events"}


def test_clients_all_is_exactly_the_documented_names() -> None:
    """wideevents.integrations.clients exports instrument, uninstrument and instrumented."""
    from wideevents.integrations import clients

    assert sorted(clients.__all__) == sorted(CLIENTS)
    assert all(callable(getattr(clients, name)) for name in CLIENTS)


def test_pytest_plugin_all_is_exactly_the_documented_names() -> None:
    """wideevents.pytest_plugin exports the fixture and the type it yields."""
    import wideevents.pytest_plugin as plugin

    assert sorted(plugin.__all__) == sorted(PYTEST_PLUGIN)
