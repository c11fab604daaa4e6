"""Per-sink accounting and the deadline-bounded calls the pipeline makes into sinks.

:class:`Ledger` is the one implementation of the :class:`~wideevents._core.record.SinkLedger`
interface: the pipeline gives each sink one that shares the pipeline's lock, which is
what keeps the ``stats()`` equation exact in every snapshot; a sink used on its own (not
yet bound to a pipeline) counts into a detached one (``Ledger(name)``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from .log import log_once
from .normalize import safe_repr
from .threads import daemon

__all__ = ["Ledger", "call_with_deadline", "sink_name"]


class Ledger:
    """One sink's outcome counters (sent, rejected and dropped by reason).

    ``lock`` and ``field_drops`` are the pipeline's: a bound ledger counts under the
    pipeline's lock, and ``held`` (records the sink has and has not reported yet) is
    raised by the pipeline. Without them the ledger is detached: its own lock, its own
    field counts (see :meth:`snapshot`).
    """

    __slots__ = ("name", "lock", "sent_n", "rejected_by", "dropped_by", "held", "closed",
                 "orphans", "_absorb", "_field_drops")

    def __init__(self, name: str = "", lock: threading.Lock | None = None,
                 field_drops: dict[str, int] | None = None) -> None:
        self.name = name
        self.lock = lock if lock is not None else threading.Lock()
        self._field_drops = field_drops if field_drops is not None else {}
        self.sent_n = 0
        self.rejected_by: dict[str, int] = {}
        self.dropped_by: dict[str, int] = {}
        self.held = 0
        self.closed = False
        self.orphans = 0  # what close() counted as dropped "shutdown" (the sink still had it)
        self._absorb = 0  # reports still owed to a previous pipeline's ledger (take_over)

    def take_over(self, previous: Ledger) -> None:
        """The sink was bound to ``previous`` (of a pipeline configure() replaced), which
        closed while the sink still had items: those were counted there as dropped
        "shutdown". Their late reports arrive here first: absorb that many, so neither
        pipeline counts an item twice."""
        with self.lock:
            self._absorb += previous.orphans

    def _owed(self, n: int) -> int:
        """How many of ``n`` reports this ledger counts (called with the lock held): none
        once closed (close() counted them), and not those owed to a previous ledger."""
        if self.closed:
            self.orphans = max(0, self.orphans - n)  # resolved before a successor took over
            return 0
        if self._absorb:
            taken = min(self._absorb, n)
            self._absorb -= taken
            n -= taken
        return n

    def sent(self, n: int = 1) -> None:
        with self.lock:
            if n := self._owed(n):
                self.sent_n += n
                self.held -= n

    def rejected(self, reason: str, n: int = 1) -> None:
        with self.lock:
            if n := self._owed(n):
                self.rejected_by[reason] = self.rejected_by.get(reason, 0) + n
                self.held -= n

    def dropped(self, reason: str, n: int = 1) -> None:
        with self.lock:
            if n := self._owed(n):
                self.dropped_by[reason] = self.dropped_by.get(reason, 0) + n
                self.held -= n

    def fields_dropped(self, reason: str, n: int = 1) -> None:
        """A sink removed ``n`` fields from events (e.g. an SDK attribute limit): counted in
        ``stats()["fields"]["dropped"]``, never silent."""
        with self.lock:
            self._field_drops[reason] = self._field_drops.get(reason, 0) + n

    def snapshot(self) -> dict[str, object]:
        """``{"sent": n, "rejected": {...}, "dropped": {...}}`` (a detached sink's stats)."""
        with self.lock:
            return {"sent": self.sent_n, "rejected": dict(self.rejected_by),
                    "dropped": dict(self.dropped_by)}

    def close(self) -> None:
        """Whatever the sink still holds is lost: count it as dropped at shutdown."""
        with self.lock:
            if self.held > 0:
                self.dropped_by["shutdown"] = self.dropped_by.get("shutdown", 0) + self.held
                self.orphans = self.held
                self.held = 0
            self.closed = True


def call_with_deadline(fn: Callable[[float], Any], timeout: float) -> bool:
    """Call ``fn(timeout)`` in a helper thread: a hung sink cannot hold us past the deadline."""
    result: list[Any] = []

    def run() -> None:
        try:
            result.append(fn(timeout))
        except Exception as exc:  # noqa: BLE001 - a sink's flush/close: contained, logged
            log_once(f"sink-call:{type(exc).__name__}", "wideevents: a sink failed to flush/close: %s",
                     safe_repr(exc, 200))
            result.append(False)

    t = daemon(run, "wideevents-sink-call")
    t.start()
    t.join(max(0.0, timeout))
    return bool(result and result[0] is not False)


def sink_name(sink: object, taken: set[str]) -> str:
    base = getattr(sink, "name", None) or type(sink).__name__.lower()
    name, i = str(base), 2
    while name in taken:
        name, i = f"{base}#{i}", i + 1
    taken.add(name)
    return name
