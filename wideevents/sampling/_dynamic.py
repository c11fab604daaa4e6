"""Dynamic sampling: per-key rates that keep rare keys whole and thin out hot ones.

Every event is counted under its key (the values of ``key_fields``). Each adjustment the
counts, normalised to events per ``adjustment_interval``, are folded into an exponential
moving average per key, and the budget (``total / goal_rate`` events per interval) is
shared among the keys in proportion to ``log10`` of their average count: a key gets rate
1 while its count fits its share, otherwise ``ceil(count / share)``. Keys are visited from
the rarest up and the share a rare key leaves unused passes to the hotter ones, so the
budget is met while a new model version, a small tenant or an error class is kept whole.

Each event is kept with probability ``1 / rate`` and weighted ``rate``, so weighted counts
stay unbiased whatever the rates were when the event was decided.
"""

from __future__ import annotations

import math
import os
import random
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from wideevents._core.log import log_once
from wideevents._core.threads import daemon
from wideevents._errors import ConfigurationError

from ._validate import check_int, check_number, check_rate

__all__ = ["OVERFLOW_KEY", "DynamicSampler"]

# stats() name of the bucket shared by keys beyond max_keys.
OVERFLOW_KEY: Final = "__overflow__"
# A key whose moving average falls below this many events per interval is forgotten.
_AGE_OUT: Final = 0.5
# A burst never triggers on an interval with fewer events than this.
_MIN_BURST_EVENTS: Final = 10


class _Overflow:
    """The one bucket for keys beyond ``max_keys``; never equal to an event's key."""

    __slots__ = ()

    def __repr__(self) -> str:
        return OVERFLOW_KEY


_OVERFLOW: Final = _Overflow()


def _render(key: Any) -> str:
    if key is _OVERFLOW:
        return OVERFLOW_KEY
    parts = key if type(key) is tuple else (key,)
    return "•".join("null" if p is None else str(p) for p in parts)


def _hashable(key: Any) -> Any:
    """A hashable stand-in for a key holding a list (normalised events have flat lists)."""
    if type(key) is tuple:
        return tuple(_hashable(p) for p in key)
    try:
        hash(key)
    except TypeError:
        return repr(key)
    return key


def _key_function(fields: tuple[str, ...]) -> Callable[[Mapping[str, Any]], Any]:
    """``event -> key``, unrolled for up to three fields (a generic loop costs 3x more)."""
    if len(fields) == 1:
        (a,) = fields
        return lambda event: event.get(a)
    if len(fields) == 2:
        a, b = fields
        return lambda event: (event.get(a), event.get(b))
    if len(fields) == 3:
        a, b, c = fields
        return lambda event: (event.get(a), event.get(b), event.get(c))
    return lambda event: tuple([event.get(f) for f in fields])


def _allocate_rates(averages: Mapping[Any, float], goal_rate: int) -> dict[Any, int]:
    """Per-key rates for the given average counts per interval; keys at rate 1 are omitted."""
    budget = sum(averages.values()) / goal_rate
    ordered = sorted(averages.items(), key=lambda kv: kv[1])
    logs = [math.log10(count) if count > 1.0 else 0.0 for _, count in ordered]
    log_left = math.fsum(logs)
    rates: dict[Any, int] = {}
    for (key, count), lg in zip(ordered, logs, strict=True):
        share = budget * lg / log_left if log_left > 0.0 else budget
        log_left = max(0.0, log_left - lg)
        share = max(share, 1.0)
        if count <= share:
            budget -= count
            continue
        rate = math.ceil(count / share)
        budget -= count / rate
        rates[key] = rate
    return rates


class DynamicSampler:
    """Sample each key at its own rate so the whole stream averages ``goal_rate``.

    ``key_fields``: the field name(s) whose values form the key, e.g.
    ``("name", "http.response.status_code", "model.version")``; a missing field is part of
    the key as null. ``adjustment_interval``: seconds between recomputations, done by a
    daemon thread started on the first event (``background=False``: only when
    :meth:`update_rates` is called). ``weight``: how much the newest interval counts in the
    moving average (1: only the newest). ``max_keys``: keys tracked at once (a key is
    forgotten when its average falls below 0.5 events per interval); events of other keys
    share one overflow bucket, sampled at its own rate and counted in
    ``stats()["overflow"]``.
    ``min_events_per_sec``: below this overall volume every event is kept (rate 1).
    Burst detection: when the current interval already holds ``burst_multiple`` times the
    expected count, rates are recomputed at once. ``seed``: seeds the keep/drop draws.
    ``clock``: seconds, monotonic (inject one in tests).

    Thread-safe; the pipeline calls it from its worker thread. After :meth:`close` it
    keeps deciding with the last rates.
    """

    def __init__(
        self,
        goal_rate: int,
        key_fields: str | Sequence[str],
        *,
        adjustment_interval: float = 15.0,
        weight: float = 0.5,
        max_keys: int = 500,
        min_events_per_sec: float = 50,
        burst_multiple: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        seed: int | None = None,
        background: bool = True,
        name: str | None = None,
    ) -> None:
        self.goal_rate: Final[int] = check_rate(goal_rate, "goal_rate")
        fields = (key_fields,) if isinstance(key_fields, str) else key_fields
        if (
            not isinstance(fields, Sequence)
            or not fields
            or not all(isinstance(f, str) and f for f in fields)
        ):
            raise ConfigurationError(
                f"key_fields must be a field name or a non-empty list of field names, got "
                f"{key_fields!r}; e.g. key_fields=['name', 'http.response.status_code']"
            )
        self.key_fields: Final[tuple[str, ...]] = tuple(fields)
        self.adjustment_interval: Final = check_number(
            adjustment_interval,
            "adjustment_interval",
            minimum=0.0,
            inclusive=False,
            example="15.0",
        )
        self.weight: Final = check_number(
            weight, "weight", minimum=0.0, inclusive=False, example="0.5"
        )
        if self.weight > 1.0:
            raise ConfigurationError(f"weight must be in (0, 1], got {weight!r}; e.g. weight=0.5")
        self.max_keys: Final[int] = check_int(
            max_keys, "max_keys", minimum=1, meaning="keys tracked at most", example="500"
        )
        self.min_events_per_sec: Final = check_number(
            min_events_per_sec, "min_events_per_sec", minimum=0.0, example="50"
        )
        self.burst_multiple: Final = check_number(
            burst_multiple, "burst_multiple", minimum=1.0, inclusive=False, example="2.0"
        )
        if not callable(clock):
            raise ConfigurationError(f"clock must be callable, e.g. time.monotonic; got {clock!r}")
        self.name: str = name or type(self).__name__
        self._clock = clock
        self._seed = seed
        self._random = random.Random(seed)
        self._background = bool(background)
        self._key_of = _key_function(self.key_fields)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._fork_hook = False
        # Current interval: key -> [seen, kept].
        self._counts: dict[Any, list[int]] = {}
        self._total = 0
        self._averages: dict[Any, float] = {}
        # Keys that may still be tracked: max_keys - averaged keys - new keys this interval.
        self._room = self.max_keys
        self._rates: dict[Any, int] = {}
        self._key_totals: dict[Any, list[int]] = {}  # key -> [kept, dropped] while tracked
        self._burst_at = self._burst_threshold(0.0)
        self._last_update = clock()
        self._kept = 0
        self._dropped = 0
        self._overflow = 0
        self._updates = 0
        self._bursts = 0
        self._errors = 0

    # -- deciding ------------------------------------------------------------------------

    def __call__(self, event: Mapping[str, Any]) -> int:
        """The event's key's current rate to keep it (with probability 1/rate), else 0."""
        try:
            if self._thread is None and self._background and not self._closed:
                self._start_thread()
            key = self._key_of(event)
            with self._lock:
                counts = self._counts
                try:
                    entry = counts.get(key)
                except TypeError:
                    key = _hashable(key)
                    entry = counts.get(key)
                if entry is None:
                    if key in self._averages:
                        pass
                    elif self._room > 0:
                        self._room -= 1
                    else:
                        self._overflow += 1
                        key = _OVERFLOW
                        entry = counts.get(key)
                    if entry is None:
                        entry = counts[key] = [0, 0]
                entry[0] += 1
                self._total += 1
                rate = self._rates.get(key, 1)
                if rate == 1 or self._random.random() * rate < 1.0:
                    entry[1] += 1
                    self._kept += 1
                else:
                    self._dropped += 1
                    rate = 0
                if self._total >= self._burst_at:
                    self._bursts += 1
                    self._update(self._clock())
            return rate
        except Exception as exc:  # noqa: BLE001 -- fail open: losing the event is worse
            self._errors += 1
            log_once(
                f"sampling.{self.name}.error",
                "wideevents: sampler %s failed (%r); keeping the event at rate 1",
                self.name,
                exc,
            )
            return 1

    # -- adjusting -----------------------------------------------------------------------

    def update_rates(self) -> None:
        """Recompute the rates now from the counts since the last recomputation."""
        with self._lock:
            self._update(self._clock())

    def _burst_threshold(self, total_average: float) -> float:
        floor = self.min_events_per_sec * self.adjustment_interval
        return max(self.burst_multiple * max(total_average, floor), _MIN_BURST_EVENTS)

    def _update(self, now: float) -> None:
        """Fold the interval into the averages and recompute the rates (lock held)."""
        interval = self.adjustment_interval
        elapsed = max(now - self._last_update, interval / 100.0)
        self._last_update = now
        scale = interval / elapsed
        counts, self._counts, self._total = self._counts, {}, 0
        w = self.weight
        averages: dict[Any, float] = {}
        for key, old in self._averages.items():
            entry = counts.get(key)
            avg = w * (entry[0] * scale if entry else 0.0) + (1.0 - w) * old
            if avg >= _AGE_OUT:
                averages[key] = avg
        for key, entry in counts.items():
            if key not in self._averages:
                averages[key] = entry[0] * scale
        if len(averages) > self.max_keys:
            averages = self._cap(averages)
        totals = self._key_totals
        for key, entry in counts.items():
            tracked = key if key in averages else _OVERFLOW
            kd = totals.get(tracked)
            if kd is None:
                kd = totals[tracked] = [0, 0]
            kd[0] += entry[1]
            kd[1] += entry[0] - entry[1]
        self._key_totals = {k: v for k, v in totals.items() if k in averages or k is _OVERFLOW}
        self._averages = averages
        self._room = self.max_keys - sum(1 for k in averages if k is not _OVERFLOW)
        total_average = math.fsum(averages.values())
        if total_average < self.min_events_per_sec * interval:
            self._rates = {}
        else:
            self._rates = _allocate_rates(averages, self.goal_rate)
        self._burst_at = self._burst_threshold(total_average)
        self._updates += 1

    def _cap(self, averages: dict[Any, float]) -> dict[Any, float]:
        """The ``max_keys`` busiest keys; the rest are merged into the overflow bucket."""
        ranked = sorted(
            (kv for kv in averages.items() if kv[0] is not _OVERFLOW),
            key=lambda kv: kv[1],
            reverse=True,
        )
        kept = dict(ranked[: self.max_keys])
        rest = math.fsum(v for _, v in ranked[self.max_keys :])
        kept[_OVERFLOW] = averages.get(_OVERFLOW, 0.0) + rest
        return kept

    # -- background thread and lifecycle -------------------------------------------------

    def _start_thread(self) -> None:
        with self._lock:
            if self._thread is not None or self._closed:
                return
            if not self._fork_hook:
                self._fork_hook = True
                ref = weakref.WeakMethod(self.reset_after_fork)

                def after_fork_in_child() -> None:
                    method = ref()
                    if method is not None:
                        method()

                os.register_at_fork(after_in_child=after_fork_in_child)
            thread = daemon(self._run, f"wideevents-{self.name}", (self._stop,))
            self._thread = thread
        thread.start()

    def _run(self, stop: threading.Event) -> None:
        while True:
            with self._lock:
                due = self._last_update + self.adjustment_interval
            delay = due - self._clock()
            if delay > 0.0:
                if stop.wait(min(delay, self.adjustment_interval)):
                    return
                continue
            try:
                self.update_rates()
            except Exception as exc:  # noqa: BLE001 -- contained, logged once
                self._errors += 1
                log_once(
                    f"sampling.{self.name}.update",
                    "wideevents: sampler %s could not update its rates (%r)",
                    self.name,
                    exc,
                )
                if stop.wait(self.adjustment_interval):
                    return

    def close(self, timeout: float = 1.0) -> bool:
        """Stop the background thread; True when it has stopped within ``timeout``."""
        self._closed = True
        self._stop.set()
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def reset_after_fork(self) -> None:
        """In a forked child: new lock and draws; the thread restarts on the next event."""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        self._random = random.Random(None if self._seed is None else f"{self._seed}:{os.getpid()}")

    # -- reporting -----------------------------------------------------------------------

    def rates(self) -> dict[str, int]:
        """The current rate of every key sampled above rate 1 (others keep everything)."""
        with self._lock:
            return {_render(k): r for k, r in self._rates.items()}

    def stats(self) -> dict[str, Any]:
        """Totals, and per tracked key (at most ``max_keys`` + the overflow bucket) its
        current rate and the events kept and dropped while it has been tracked."""
        with self._lock:
            keys: dict[str, dict[str, int]] = {}
            merged: dict[Any, list[int]] = {k: list(v) for k, v in self._key_totals.items()}
            for key, (seen, kept) in self._counts.items():
                kd = merged.setdefault(key, [0, 0])
                kd[0] += kept
                kd[1] += seen - kept
            for key, (kept, dropped) in merged.items():
                row = keys.setdefault(_render(key), {"rate": 1, "kept": 0, "dropped": 0})
                row["rate"] = max(row["rate"], self._rates.get(key, 1))
                row["kept"] += kept
                row["dropped"] += dropped
            return {
                "kept": self._kept,
                "dropped": self._dropped,
                "overflow": self._overflow,
                "errors": self._errors,
                "updates": self._updates,
                "bursts": self._bursts,
                "sampling": bool(self._rates),
                "keys": keys,
            }

    def __repr__(self) -> str:
        return f"DynamicSampler({self.goal_rate}, key_fields={list(self.key_fields)!r})"
