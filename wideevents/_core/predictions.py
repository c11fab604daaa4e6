"""Recent predictions, kept for ``wideevents.feedback()``: filled by the pipeline's worker.

Memory: at most ``max_size`` entries (10,000 by default), each the copied fields of one
prediction (``data.oor_features`` is at most 20 names).

The worker calls :func:`remember` for every event with a string ``prediction.id`` (off
the request thread, before sampling, so feedback for a sampled-away prediction still
matches); ``wideevents.ml``'s ``feedback()`` reads it with :func:`lookup`. The cache is
an insertion-ordered dict under one lock: every operation is O(1) (amortised for
evictions); entries leave it when it is full (oldest first) or ``ttl_s`` after they were
stored. It lives in the core because the worker fills it: the ML layer above uses it.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from .log import log_once

__all__ = ["PredictionCache", "cache", "lookup", "remember"]

_COPY_PREFIXES = ("model.", "slice.", "data.")
_COPY_KEYS = ("prediction.label", "prediction.score", "prediction.p_positive", "score.bin")


class PredictionCache:
    """Recent predictions' fields by ``prediction.id``: bounded in size and age, thread-safe."""

    def __init__(
        self, max_size: int, ttl_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_size = max_size
        self.ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def configure(self, max_size: int, ttl_s: float) -> None:
        with self._lock:
            self.max_size, self.ttl_s = max_size, ttl_s
            self._evict(self._clock())

    def put(self, key: str, fields: dict[str, Any]) -> None:
        now = self._clock()
        with self._lock:
            if self.max_size <= 0:
                return
            # Re-inserting moves the key to the end, keeping expiry times in order.
            self._entries.pop(key, None)
            self._entries[key] = (now + self.ttl_s, fields)
            self._evict(now)

    def get(self, key: str) -> dict[str, Any] | None:
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry[0] <= now:
                del self._entries[key]
                return None
            return entry[1]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def after_fork(self) -> None:
        # A thread of the parent may have held the lock at fork time.
        self._lock = threading.Lock()

    def _evict(self, now: float) -> None:
        entries = self._entries
        while len(entries) > self.max_size:
            entries.popitem(last=False)
        while entries and next(iter(entries.values()))[0] <= now:
            entries.popitem(last=False)


cache = PredictionCache(10_000, 3600.0)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=cache.after_fork)


def remember(fields: Mapping[str, Any]) -> None:
    """Keep a finished prediction's ``model.*``, ``slice.*``, ``data.*`` (its input's
    integrity counts), ``prediction.label``, ``prediction.score``, ``prediction.p_positive``
    and ``score.bin`` for later feedback. Events without a string ``prediction.id``, and
    ``feedback`` events themselves, are ignored. Never raises."""
    try:
        key = fields.get("prediction.id")
        if type(key) is not str or fields.get("name") == "feedback" or cache.max_size <= 0:
            return
        kept = {name: value for name, value in fields.items() if name.startswith(_COPY_PREFIXES)}
        for name in _COPY_KEYS:
            if name in fields:
                kept[name] = fields[name]
        cache.put(key, kept)
    except Exception as exc:  # noqa: BLE001 - runs on the worker: contained, logged once
        log_once("ml:feedback.remember", "wideevents.ml: cannot cache prediction (%r)", exc)


def lookup(prediction_id: str) -> dict[str, Any] | None:
    """The fields :func:`remember` kept for ``prediction_id``, or None."""
    return cache.get(prediction_id)
