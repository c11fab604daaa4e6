"""The process-wide "current pipeline" slot, below the code that configures it.

The get/set-provider pattern of the OpenTelemetry API (``get_tracer_provider`` /
``set_tracer_provider``): events read the slot through :func:`active_pipeline`;
``configure()`` (in :mod:`wideevents._config`, above the core) fills it with
:func:`install` and registers the factory of the default pipeline with
:func:`set_default_factory`, so the core never imports its configuration.

:func:`flush`, :func:`shutdown` and :func:`stats` act on whatever the slot holds.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .log import log_once

if TYPE_CHECKING:
    from .pipeline import Pipeline

__all__ = [
    "active_pipeline", "current", "flush", "install", "set_default_factory",
    "shutdown", "stats", "swap",
]

_active: Pipeline | None = None
_lock = threading.RLock()
_default_factory: Callable[[], Pipeline] | None = None


def set_default_factory(factory: Callable[[], Pipeline]) -> None:
    """Register what builds the pipeline used when nothing was configured."""
    global _default_factory
    _default_factory = factory


def current() -> Pipeline | None:
    """The installed pipeline, or None (never builds one)."""
    return _active


def active_pipeline() -> Pipeline:
    """The installed pipeline, building the default one on first use."""
    p = _active
    if p is not None:
        return p
    with _lock:
        if _active is None:
            _install_default()
        return _active  # type: ignore[return-value]


def _install_default() -> None:
    global _active
    factory = _default_factory
    if factory is None:  # only if wideevents/__init__.py (which wires configure) never ran
        from .pipeline import Pipeline

        log_once("no-default-factory", "wideevents: no default pipeline is registered; "
                 "events are counted and dropped until configure() is called")
        _active = Pipeline(sinks=[], static_fields=dict)
        return
    _active = factory()


def install(pipeline: Pipeline) -> Pipeline | None:
    """Put ``pipeline`` in the slot; return the previous one (not shut down)."""
    return swap(pipeline)


def swap(pipeline: Pipeline | None) -> Pipeline | None:
    """Install ``pipeline`` (or empty the slot) without shutting the previous one down."""
    global _active
    with _lock:
        previous, _active = _active, pipeline
        return previous


def flush(timeout: float = 5.0) -> bool:
    """Deliver every finished event within ``timeout``; True when nothing is pending."""
    p = _active
    return True if p is None else p.flush(timeout)


def shutdown(timeout: float = 5.0) -> bool:
    """Flush and close the sinks within ``timeout``; later events are dropped and counted."""
    p = _active
    return True if p is None else p.shutdown(timeout)


def stats() -> dict[str, Any]:
    """Counters of the active pipeline (shape and equation: docs/reliability.md, "stats()")."""
    p = _active
    if p is None:
        return {"emitted": 0, "dropped": {}, "sinks": {}, "samplers": {},
                "fields": {"dropped": {}, "truncated": {}}, "errors": {}}
    return p.stats()
