"""The background pipeline: bounded queue, one worker, sinks, stats.

Request threads only append the finished event's raw fields to a bounded deque (never
waiting for space by default: a full queue drops and counts). One lazily started daemon
worker prepares each event (:mod:`.prepare`: normalise, processors, sampler, redaction,
limits, one serialisation) and hands the batch to every sink. It is woken
at 256 queued events (or every 100 ms); if request threads keep the GIL so that it has
not run 8 events later, the thread emitting the 8th hands the GIL over (see enqueue).

Accounting is exact at all times: every counter moves under one lock, so that for each
sink ``sent + sum(rejected) + sum(dropped) + pending + sum(pipeline dropped) == emitted``
holds in every :meth:`Pipeline.stats` snapshot.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .ids import new_span_id, new_trace_id
from .ledger import Ledger, call_with_deadline, sink_name
from .limits import Limits
from .log import log_once
from .normalize import safe_repr
from .prepare import Preparer, Processor, Sampler, Tally
from .record import Record
from .redact import Redactor

__all__ = ["Pipeline"]

_BATCH = 512
_INTERVAL_S = 0.1
_WAKE_AT = 256
_HANDOFF_S = 0.002
_HANDOFF_AFTER = 8  # events after the wake-up: more lose more races; fewer can stall a thread
#                     that would have let the worker run at its next I/O wait
_PIPELINES: weakref.WeakSet[Pipeline] = weakref.WeakSet()


class Pipeline:
    """One configured flow from finished events to sinks. Build it with ``configure()``."""

    def __init__(
        self,
        *,
        sinks: Sequence[Any],
        static_fields: Callable[[], dict[str, Any]],
        processors: Iterable[Processor] = (),
        sampler: Sampler | None = None,
        queue_size: int = 10_000,
        enqueue_timeout: float = 0.0,
        limits: Limits | None = None,
        redactor: Redactor | None = None,
        batch_size: int = _BATCH,
        interval: float = _INTERVAL_S,
        bind: bool = True,
        self_report_interval: float | None = None,
        capture_stacktrace: bool = False,
        synchronous: bool = False,
    ) -> None:
        """``synchronous=True``: no worker; each event is prepared and exported on the
        thread that finishes it (``wideevents.testing.capture_events`` uses it)."""
        self._static_builder = static_fields
        self._set_static(static_fields())
        self._sampler = sampler
        self._preparer = Preparer(processors=processors, sampler=sampler, limits=limits,
                                  redactor=redactor)
        self._capacity = queue_size
        self._enqueue_timeout = enqueue_timeout
        self._synchronous = synchronous
        if synchronous:
            self.enqueue = self._enqueue_synchronous  # type: ignore[method-assign]
        #: Whether events record ``exception.stacktrace`` (``configure(capture_stacktrace=)``).
        self.capture_stacktrace = capture_stacktrace
        self._batch_size = batch_size
        self._interval = interval
        self._report_every = self_report_interval
        self._sinks = list(sinks)
        taken: set[str] = set()
        self._names = [sink_name(s, taken) for s in self._sinks]
        self.on_start_hooks: tuple[Callable[[Any], None], ...] = tuple(
            s.on_start for s in self._sinks if callable(getattr(s, "on_start", None))
        )
        self._init_state()
        self._binds = [callable(getattr(s, "bind", None)) for s in self._sinks]
        if bind:
            self.bind_sinks()
        _PIPELINES.add(self)

    def bind_sinks(self) -> None:
        """Connect the binding sinks to this pipeline's ledgers (a sink reports to one)."""
        for sink, ledger, binds in zip(self._sinks, self._ledgers, self._binds):
            if binds:
                sink.bind(ledger)

    def _set_static(self, static: dict[str, Any]) -> None:
        self._static = static
        #: The dict every event of this pipeline starts as a copy of (request thread).
        self.base_fields: dict[str, Any] = {"timestamp": None, "name": None, **static}

    # -- state that a forked child rebuilds -------------------------------------------------
    def _init_state(self) -> None:
        self._lock = threading.Lock()
        self._progress = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._started = threading.Event()  # set while the worker is draining
        self._queue: deque[tuple[dict[str, Any], int]] = deque()
        self._emitted = 0
        self._accepted = 0
        self._processed = 0
        self._inflight = 0
        self._dropped: dict[str, int] = {}
        self._errors: dict[str, int] = {}
        self._fields_dropped: dict[str, int] = {}
        self._fields_truncated: dict[str, int] = {}
        self._ledgers = [Ledger(n, self._lock, self._fields_dropped) for n in self._names]
        self._worker: threading.Thread | None = None
        self._stopping = False
        self._closed = False
        self._pid = os.getpid()
        self._next_report = time.monotonic() + (self._report_every or 0.0)

    def _after_fork_in_child(self) -> None:
        self._init_state()
        try:
            self._set_static(self._static_builder())
        except Exception:  # noqa: BLE001 - a forked child must come up whatever happens
            self._set_static({**self._static, "process.pid": os.getpid()})
        for sink, ledger in zip(self._sinks, self._ledgers):
            for hook in ("reset_after_fork", "bind"):
                fn = getattr(sink, hook, None)
                if callable(fn):
                    try:
                        fn() if hook == "reset_after_fork" else fn(ledger)
                    except Exception as exc:  # noqa: BLE001 - a sink's fork hook: contained, logged
                        log_once(f"fork:{hook}", "wideevents: sink %s failed after fork: %s",
                                 type(sink).__name__, safe_repr(exc, 200))
        reset = getattr(self._sampler, "reset_after_fork", None)
        if callable(reset):
            try:
                reset()
            except Exception:  # noqa: BLE001 - a sampler's fork hook must not stop the child
                pass

    # -- request thread -------------------------------------------------------------------
    def enqueue(self, fields: dict[str, Any], start_ns: int) -> None:
        """Hand a finished event to the worker. Never raises, never waits by default."""
        with self._lock:
            self._emitted += 1
            if self._closed:
                self._dropped["shutdown"] = self._dropped.get("shutdown", 0) + 1
                return
            if len(self._queue) >= self._capacity and not self._wait_for_space():
                self._dropped["queue_full"] = self._dropped.get("queue_full", 0) + 1
                return
            q = self._queue  # read after any wait: the worker swaps in a new deque
            q.append((fields, start_ns))
            self._accepted += 1
            n = len(q)
        if self._worker is None:
            self._start_worker()
        if n >= _WAKE_AT:
            if n == _WAKE_AT:
                self._wake.set()
            elif (n == _WAKE_AT + _HANDOFF_AFTER and not self._started.is_set()
                  and threading.current_thread() is not self._worker):
                # The worker was woken 8 events ago and has not run yet: request threads
                # are keeping the GIL. Hand it over: wait (at most 2 ms) until the worker
                # runs. Left to itself, such a worker gets the GIL only by winning a race
                # at one of the callers' brief releases (numpy calls release it for
                # microseconds); it loses most of them, each lost race costing a futex
                # wake and a wake-up of the other core: ~200 per drain, 7 µs of CPU per
                # event (docs/benchmarks.md). This thread would wait for the worker's
                # drain at its next release anyway; now it waits once, here. A service
                # whose threads wait on I/O lets the worker run before the 8th event and
                # never waits here.
                self._started.wait(_HANDOFF_S)

    def _enqueue_synchronous(self, fields: dict[str, Any], start_ns: int) -> None:
        """``enqueue`` of a synchronous pipeline: prepare and export on this thread."""
        with self._lock:
            self._emitted += 1
            if self._closed:
                self._dropped["shutdown"] = self._dropped.get("shutdown", 0) + 1
                return
            self._accepted += 1
            self._inflight += 1
        self._process([(fields, start_ns)])

    def _wait_for_space(self) -> bool:
        """Called with the lock held; waits up to ``enqueue_timeout`` for the worker."""
        if self._enqueue_timeout <= 0:
            return False
        deadline = time.monotonic() + self._enqueue_timeout
        self._wake.set()
        while len(self._queue) >= self._capacity:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._closed:
                return False
            self._progress.wait(remaining)
        return True

    def note_late_field(self, count: int = 1) -> None:
        self.note_dropped_field("late", count)

    def note_dropped_field(self, reason: str, count: int = 1) -> None:
        """Count fields the request thread could not record (``stats()["fields"]["dropped"]``)."""
        with self._lock:
            self._fields_dropped[reason] = self._fields_dropped.get(reason, 0) + count

    def _start_worker(self) -> None:
        with self._lock:
            if self._worker is not None or self._closed:
                return
            self._worker = threading.Thread(target=self._run, name="wideevents-worker", daemon=True)
            self._worker.start()

    # -- worker ---------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            self._wake.wait(self._interval)
            self._wake.clear()
            self._started.set()
            self._drain()
            self._started.clear()
            if self._stopping:
                self._drain()
                return
            if self._report_every is not None and time.monotonic() >= self._next_report:
                self._self_report(self._report_every)

    def _self_report(self, every: float) -> None:
        """Emit a ``wideevents.stats`` event: :meth:`stats` flattened to ``stats.*`` fields.

        It is an event like any other (processors, sampler, limits, every sink), so it is
        counted in the next report's ``stats.emitted``, not in its own.
        """
        self._next_report = time.monotonic() + every
        try:
            fields = self.base_fields.copy()
            fields["name"] = "wideevents.stats"
            fields["trace.trace_id"] = new_trace_id()
            fields["trace.span_id"] = new_span_id()
            fields["duration_ms"] = 0.0
            _flatten("stats", self.stats(), fields)
        except Exception as exc:  # noqa: BLE001 - the worker never dies on its own report
            log_once("self-report", "wideevents: the stats event could not be built: %s",
                     safe_repr(exc, 200))
            return
        self.enqueue(fields, time.time_ns())

    def _drain(self) -> None:
        first = True
        while True:
            with self._lock:
                if not self._queue or (not first and len(self._queue) < _WAKE_AT
                                       and not self._stopping):
                    self._progress.notify_all()
                    return
                first = False
                batch = self._queue
                self._queue = deque()
                self._inflight += len(batch)
                self._progress.notify_all()
            while batch:
                n = min(len(batch), self._batch_size)
                chunk = [batch.popleft() for _ in range(n)]
                self._process(chunk)

    def _process(self, chunk: list[tuple[dict[str, Any], int]]) -> None:
        tally = Tally()
        records = self._preparer.prepare_all(chunk, tally)
        kept = len(records)
        with self._lock:
            self._inflight -= len(chunk)
            if self._closed:
                # shutdown() already counted these as dropped; do not count them twice.
                self._processed += len(chunk)
                return
            for target, src in ((self._dropped, tally.dropped), (self._errors, tally.errors),
                                (self._fields_dropped, tally.fields_dropped),
                                (self._fields_truncated, tally.fields_truncated)):
                for reason, n in src.items():
                    target[reason] = target.get(reason, 0) + n
            if kept:
                for ledger in self._ledgers:
                    ledger.held += kept
        if kept:
            self._export(records)
        with self._lock:
            # Counted only now, so that flush() also waits for the synchronous sinks' writes.
            self._processed += len(chunk)

    def _export(self, records: list[Record]) -> None:
        for sink, ledger, binds in zip(self._sinks, self._ledgers, self._binds):
            try:
                sink.export(records)
            except Exception as exc:  # noqa: BLE001 - a sink's failure: counted, logged once
                log_once(f"export:{id(sink)}:{type(exc).__name__}",
                         "wideevents: sink %s failed; %d events dropped: %s",
                         ledger.name, len(records), safe_repr(exc, 200))
                if not binds:
                    ledger.dropped("export_error", len(records))
                continue
            if not binds:
                ledger.sent(len(records))

    # -- control --------------------------------------------------------------------------
    def _wait_processed(self, deadline: float) -> bool:
        with self._lock:
            target = self._accepted
            if self._processed >= target:
                return True
        worker = not self._synchronous  # synchronous: the finishing threads do the work
        if worker:
            if self._worker is None:
                self._start_worker()
            self._wake.set()
        with self._lock:
            while self._processed < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._progress.wait(min(remaining, 0.05))
                if worker:
                    self._wake.set()
        return True

    def flush(self, timeout: float = 5.0) -> bool:
        """Deliver everything finished so far; True when nothing is pending. Never raises."""
        try:
            deadline = time.monotonic() + max(0.0, timeout)
            ok = self._wait_processed(deadline)
            for sink in self._sinks:
                fn = getattr(sink, "flush", None)
                if callable(fn):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        ok = False
                        break
                    ok = call_with_deadline(fn, remaining) and ok
            with self._lock:
                pending = len(self._queue) + self._inflight + max(
                    (lg.held for lg in self._ledgers), default=0)
            return ok and pending == 0
        except Exception as exc:  # noqa: BLE001 - flush() never raises into user code
            log_once("flush-error", "wideevents: flush failed: %s", safe_repr(exc, 200))
            return False

    def shutdown(self, timeout: float = 5.0) -> bool:
        """Flush, stop the worker and close the sinks, all within ``timeout``. Never raises."""
        deadline = time.monotonic() + max(0.0, timeout)
        with self._lock:
            if self._closed:
                return True
        ok = self.flush(timeout)
        self._stopping = True
        self._wake.set()
        worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(max(0.0, min(0.5, deadline - time.monotonic())))
        with self._lock:
            self._closed = True
            lost = len(self._queue) + self._inflight
            if lost:
                self._dropped["shutdown"] = self._dropped.get("shutdown", 0) + lost
                self._queue = deque()
                self._inflight = 0
                ok = False
            self._progress.notify_all()
        for sink in self._sinks:
            fn = getattr(sink, "close", None)
            if callable(fn):
                ok = call_with_deadline(fn, max(0.0, deadline - time.monotonic())) and ok
        for ledger in self._ledgers:
            with self._lock:
                held = ledger.held
            ok = ok and held == 0
            ledger.close()
        close = getattr(self._sampler, "close", None)
        if callable(close):
            try:
                close()
            except Exception:  # noqa: BLE001 - a sampler's close must not stop shutdown
                pass
        return ok

    @property
    def closed(self) -> bool:
        return self._closed

    def stats(self) -> dict[str, Any]:
        """Counters (shape and equation: docs/reliability.md, "stats()"); one snapshot."""
        with self._lock:
            waiting = len(self._queue) + self._inflight
            out: dict[str, Any] = {
                "emitted": self._emitted,
                "dropped": dict(self._dropped),
                "sinks": {
                    lg.name: {
                        "sent": lg.sent_n,
                        "rejected": dict(lg.rejected_by),
                        "dropped": dict(lg.dropped_by),
                        "pending": waiting + lg.held,
                    }
                    for lg in self._ledgers
                },
                "fields": {"dropped": dict(self._fields_dropped),
                           "truncated": dict(self._fields_truncated)},
                "errors": dict(self._errors),
                "queue": {"size": len(self._queue), "capacity": self._capacity},
            }
        samplers: dict[str, Any] = {}
        if self._sampler is not None:
            name = getattr(self._sampler, "name", None) or type(self._sampler).__name__
            fn = getattr(self._sampler, "stats", None)
            try:
                samplers[str(name)] = fn() if callable(fn) else {}
            except Exception:  # noqa: BLE001 - a sampler's stats must not break stats()
                samplers[str(name)] = {}
        out["samplers"] = samplers
        return out

    @property
    def sinks(self) -> list[Any]:
        return list(self._sinks)


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}", inner, out)
    else:
        out[prefix] = value


def _after_fork_in_child() -> None:
    for pipeline in list(_PIPELINES):
        pipeline._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
