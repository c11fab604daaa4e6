"""Backend-controlled strings made bounded: rejection reasons and their log lines.

A backend decides what its replies say: per-event error texts, partial-success messages,
error bodies. Unbounded, they would become unbounded ``stats()`` keys and, past
``log_once``'s memory, one log line per event. :class:`Reasons` keeps both bounded:

- :meth:`Reasons.reason` turns a text into a reason: masked
  (:func:`wideevents._core.secrets.mask`), cut to :data:`REASON_CHARS` characters, and
  one of the first ``limit`` distinct texts seen; every later new text is ``"other"``.
- :meth:`Reasons.note` logs a detail line at most once per ``interval`` (60 s) per key
  (keys are bounded the same way), saying how many lines were suppressed since the last.
"""

from __future__ import annotations

import logging
import threading
import time

from .._core.log import logger
from .._core.secrets import mask

__all__ = ["OTHER", "REASON_CHARS", "Reasons"]

OTHER = "other"
REASON_CHARS = 100
_MAX_NOTE_KEYS = 64


class Reasons:
    """Bounded reasons and rate-limited detail lines for one sink; thread-safe."""

    def __init__(self, limit: int = 20, interval: float = 60.0) -> None:
        self._limit = limit
        self._interval = interval
        self._lock = threading.Lock()
        self._known: dict[str, str] = {}  # raw text -> reason (bounded by limit)
        self._notes: dict[str, list[float]] = {}  # key -> [next allowed time, suppressed]

    def reason(self, text: str) -> str:
        """The reason to count ``text`` under: itself (masked, cut) for the first ``limit``
        distinct texts, ``"other"`` after that."""
        with self._lock:
            found = self._known.get(text)
            if found is not None:
                return found
            if len(self._known) >= self._limit:
                return OTHER
        shown = mask(text, REASON_CHARS) or "rejected"
        with self._lock:
            if len(self._known) >= self._limit:
                return OTHER
            return self._known.setdefault(text, shown)

    def note(self, key: str, message: str, *args: object,
             level: int = logging.WARNING) -> bool:
        """Log ``message % args`` unless a line with ``key`` was logged less than
        ``interval`` ago (then count it as suppressed); True if logged. Never raises."""
        now = time.monotonic()
        with self._lock:
            entry = self._notes.get(key)
            if entry is None and len(self._notes) >= _MAX_NOTE_KEYS:
                key = OTHER
                entry = self._notes.get(key)
            if entry is not None and now < entry[0]:
                entry[1] += 1
                return False
            suppressed = int(entry[1]) if entry is not None else 0
            self._notes[key] = [now + self._interval, 0]
        if suppressed:
            message += " (%d similar reports suppressed in the last %d s)"
            args = (*args, suppressed, int(self._interval))
        try:
            logger.log(level, message, *args)
        except Exception:  # noqa: BLE001 - a broken handler of the host must not break us
            pass
        return True
