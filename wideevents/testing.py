"""Test helpers shipped with wideevents (the way ``structlog.testing`` ships its own)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ._core import runtime
from ._core.pipeline import Pipeline
from ._core.redact import Redactor
from ._core.service import default_service_name, static_fields
from .sinks import MemorySink

__all__ = ["capture_events"]


@contextmanager
def capture_events(service_name: str | None = None) -> Iterator[list[dict[str, Any]]]:
    """Collect the events finished inside the block, delivered synchronously.

    Sampling is off, redaction and limits are on (as in production). The previous
    pipeline is restored on exit, untouched.
    """
    sink = MemorySink()
    name = default_service_name(service_name)
    pipeline = Pipeline(sinks=[sink], static_fields=lambda: static_fields(name),
                        redactor=Redactor(), synchronous=True)
    previous = runtime.swap(pipeline)
    try:
        yield sink.events
    finally:
        runtime.swap(previous)
