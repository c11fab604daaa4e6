"""Test helpers shipped with wideevents (the way ``structlog.testing`` ships its own)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from . import _config
from ._limits import Redactor
from ._pipeline import Pipeline
from ._service import default_service_name, static_fields
from .sinks import MemorySink

__all__ = ["capture_events"]


class _SyncPipeline(Pipeline):
    """Processes each event on the finishing thread: tests see it as soon as it ends."""

    def enqueue(self, fields: dict[str, Any], start_ns: int) -> None:
        with self._lock:
            self._emitted += 1
            self._accepted += 1
            self._inflight += 1
        self._process([(fields, start_ns)])


@contextmanager
def capture_events(service_name: str | None = None) -> Iterator[list[dict[str, Any]]]:
    """Collect the events finished inside the block, delivered synchronously.

    Sampling is off, redaction and limits are on (as in production). The previous
    pipeline is restored on exit, untouched.
    """
    sink = MemorySink()
    name = default_service_name(service_name)
    pipeline = _SyncPipeline(sinks=[sink], static_fields=lambda: static_fields(name),
                             redactor=Redactor())
    previous = _config.swap_pipeline(pipeline)
    try:
        yield sink.events
    finally:
        _config.swap_pipeline(previous)
