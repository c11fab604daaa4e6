"""``MemorySink``: finished events kept in a list, for tests and notebooks.

``flush``/``close`` return False when events were dropped (``memory_full``) since the
previous ``flush``/``close`` returned (once per loss), True otherwise.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from .._core.record import Record

__all__ = ["MemorySink"]


class MemorySink:
    """Keeps the finished event dicts in ``.events`` (at most ``max_events``, oldest first).

    Past ``max_events`` new events are counted as dropped (reason ``memory_full``).
    """

    name = "memory"

    def __init__(self, max_events: int | None = None) -> None:
        self.events: list[dict[str, Any]] = []
        self.lines: list[bytes] = []
        self._max = max_events
        self._ledger: Any = None
        self._lock = threading.Lock()
        self._lost = False  # events dropped since flush/close last returned

    def bind(self, ledger: Any) -> None:
        self._ledger = ledger

    def export(self, batch: Sequence[Record]) -> None:
        with self._lock:
            room = len(batch) if self._max is None else max(0, self._max - len(self.events))
            kept = batch[:room]
            self.events.extend(r.fields for r in kept)
            # A copy: orjson's result keeps ~8 KB of spare capacity, too much to hold for long.
            self.lines.extend(bytes(memoryview(r.json)) for r in kept)
            if len(kept) < len(batch):
                self._lost = True
        if self._ledger is not None:
            if kept:
                self._ledger.sent(len(kept))
            if len(batch) > len(kept):
                self._ledger.dropped("memory_full", len(batch) - len(kept))

    def flush(self, timeout: float = 5.0) -> bool:
        """True unless events were dropped since the previous flush/close returned."""
        with self._lock:
            lost, self._lost = self._lost, False
        return not lost

    def close(self, timeout: float = 5.0) -> bool:
        """As :meth:`flush`; the events stay in ``events``."""
        return self.flush(timeout)

    def clear(self) -> None:
        with self._lock:
            self.events.clear()
            self.lines.clear()

    def reset_after_fork(self) -> None:
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MemorySink({len(self.events)} events)"
