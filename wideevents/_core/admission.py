"""Admission: when a request thread may wait for the worker, and for how long.

The pipeline (:mod:`.pipeline`) inherits these; they run with its lock held, inside
``enqueue``. A request thread never waits on I/O. It waits:

- for a *starved* worker: past the high-water mark (half the queue in events or in bytes),
  when the worker is runnable but request threads keep the GIL (a CPU-bound loop emitting
  as fast as it can), at most 10 ms per event, until the worker has taken the queue back
  below the mark. A worker *blocked* in a sink (one export call for more than 50 ms with no
  progress) is not waited for until it makes progress again: events are dropped and
  counted when the queue is full. The first waits after a sink blocks tell the two apart.
- for space, when the user asked for it (``configure(enqueue_timeout=...)``).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Any

__all__ = ["STARVED_WAIT_S", "BLOCKED_AFTER_S", "Admission"]

STARVED_WAIT_S = 0.01  # the longest one finish() waits for a starved worker
BLOCKED_AFTER_S = 0.05  # one sink call this long, with no progress: the worker is blocked


class Admission:
    """The waiting rules of :class:`~wideevents._core.pipeline.Pipeline` (its state)."""

    _progress: threading.Condition
    _wake: threading.Event
    _queue: deque[tuple[dict[str, Any], int]]
    _queued_bytes: int
    _max_bytes: int
    _capacity: int
    _low_water: int
    _processed: int
    _blocked_at: int
    _exporting_since: float
    _waiting: int
    _waits: int
    _waited_s: float
    _held: bool
    _closed: bool
    _enqueue_timeout: float

    def _wait_while_starved(self) -> None:
        """Called with the lock held, past the high-water mark: let a starved worker run.

        The worker is starved when it is runnable but request threads keep the GIL (a
        CPU-bound loop emitting as fast as it can): waiting here, at most 10 ms, gives it
        the GIL until it has taken the queue below the mark. A worker stuck in one sink
        call for 50 ms with no progress is blocked, not starved: nobody waits for it until
        it makes progress again (its events are dropped when the queue is full).
        """
        if self._blocked_at == self._processed or self._held:
            return
        start = self._processed
        began = time.monotonic()
        deadline = began + STARVED_WAIT_S
        self._waits += 1
        self._waiting += 1
        self._wake.set()
        try:
            while (len(self._queue) > self._low_water
                   or self._queued_bytes * 4 > self._max_bytes) and not self._closed:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    since = self._exporting_since
                    if (self._processed == start and since
                            and time.monotonic() - since >= BLOCKED_AFTER_S):
                        self._blocked_at = self._processed
                    return
                self._progress.wait(remaining)
        finally:
            self._waiting -= 1
            self._waited_s += time.monotonic() - began

    def _wait_for_space(self, size: int) -> bool:
        """Called with the lock held; waits up to ``enqueue_timeout`` for the worker."""
        if self._enqueue_timeout <= 0 or self._held:
            return False
        deadline = time.monotonic() + self._enqueue_timeout
        self._wake.set()
        self._waiting += 1
        try:
            while (len(self._queue) >= self._capacity
                   or self._queued_bytes + size > self._max_bytes):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._closed:
                    return False
                self._progress.wait(remaining)
            return True
        finally:
            self._waiting -= 1
