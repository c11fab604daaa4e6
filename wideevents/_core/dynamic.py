"""Dynamic fields: ``configure(dynamic_fields={"process.rss_mb": fn})``.

Each function is called with no argument **on the thread that starts an event**, when the
event starts (``Event.__init__``), and its return value becomes the field: libhoney's
dynamic fields (libhoney-py ``Client.add_dynamic_field``: "called every time an event is
created"), which Honeycomb's Beelines use. So a callback's cost is paid by every request:
keep them cheap, and watch ``stats()["dynamic_fields"]``, which shows, per field, the calls,
the exceptions and the total time spent. An exception (any ``Exception``) is caught,
logged once per field and counted; the event simply lacks that field. An event started
*by* a callback (an instrumented helper it calls) gets no dynamic fields: the callbacks are
not re-entered, so one event costs one call of each.

Precedence on the event: static fields < dynamic fields < fields inherited with
``add_trace`` < fields given to ``event(name, **fields)`` and added later.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any

from .log import log_once
from .normalize import safe_repr, snapshot

__all__ = ["DynamicFields"]

_PASS = frozenset({str, int, float, bool, type(None)})
_perf_ns = time.perf_counter_ns
_ALL: weakref.WeakSet[DynamicFields] = weakref.WeakSet()
# Set while this thread runs the callbacks: an event a callback starts does not run them
# again (without it, a callback that emits an event recursed to the recursion limit).
_running = threading.local()


class DynamicFields:
    """The configured callbacks and their counters (see the module docstring)."""

    __slots__ = ("_names", "_fns", "_calls", "_errors", "_ns", "_lock", "__weakref__")

    def __init__(self, fields: Mapping[str, Callable[[], Any]]) -> None:
        self._names = tuple(fields)
        self._fns = tuple(fields.values())
        n = len(self._names)
        self._calls = [0] * n
        self._errors = [0] * n
        self._ns = [0] * n
        self._lock = threading.Lock()
        _ALL.add(self)

    def __call__(self, f: dict[str, Any]) -> None:
        """Evaluate every callback into ``f`` (an event's fields). Never raises."""
        if getattr(_running, "on", False):
            return
        _running.on = True
        try:
            spent, failed = self._evaluate(f)
        finally:
            _running.on = False
        with self._lock:
            calls, ns = self._calls, self._ns
            for i, t in enumerate(spent):
                calls[i] += 1
                ns[i] += t
            for i in failed:
                self._errors[i] += 1

    def _evaluate(self, f: dict[str, Any]) -> tuple[list[int], list[int]]:
        spent: list[int] = []
        failed: list[int] = []
        for i, fn in enumerate(self._fns):
            t0 = _perf_ns()
            try:
                value = fn()
                f[self._names[i]] = value if type(value) in _PASS else snapshot(value)
            except Exception as exc:  # noqa: BLE001 - the user's callback: counted, logged
                failed.append(i)
                name = self._names[i]
                log_once(f"dynamic-field:{name}", "wideevents: dynamic field %r raised %s; the "
                         "event goes without it (counted in "
                         "stats()['dynamic_fields'][%r]['errors'])",
                         name, safe_repr(exc, 200), name)
            spent.append(_perf_ns() - t0)
        return spent, failed

    def stats(self) -> dict[str, dict[str, Any]]:
        """``{field: {"calls", "errors", "total_ms"}}``, one consistent snapshot."""
        with self._lock:
            return {name: {"calls": self._calls[i], "errors": self._errors[i],
                           "total_ms": round(self._ns[i] / 1e6, 6)}
                    for i, name in enumerate(self._names)}

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()  # a parent's thread may have held it at fork()


def _after_fork_in_child() -> None:
    for d in list(_ALL):
        d._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
