"""Where events go. Every sink implements ``export(batch)`` (the contract: docs/architecture.md).

``StdoutSink``, ``FileSink`` and ``MemorySink`` are always available; network sinks are
imported on first use so that ``import wideevents`` stays light.
"""

from __future__ import annotations

from typing import Any

from .._core.record import Record, Sink, SinkLedger
from ._file import FileSink
from ._memory import MemorySink
from ._stdout import StdoutSink

__all__ = [
    "FileSink", "HoneycombSink", "MemorySink", "OTLPSink", "OTelSink", "PrometheusSink",
    "Record", "Sink", "SinkLedger", "StdoutSink",
]

_LAZY = {
    "HoneycombSink": "._honeycomb",
    "OTLPSink": "._otlp",
    "OTelSink": "._otel",
    "PrometheusSink": "._prometheus",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'wideevents.sinks' has no attribute {name!r}")
    import importlib

    try:
        module = importlib.import_module(module_name, __name__)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("wideevents"):
            raise AttributeError(f"{name} is not available in this version of wideevents") from None
        raise
    return getattr(module, name)
