"""The background pipeline: bounded queue, one worker, sinks, stats.

Request threads append the finished event's raw fields to a queue bounded in events and
in (estimated) bytes. One lazily started daemon worker takes them in chunks, prepares each
event (:mod:`.prepare`: normalise, processors, sample rate, sampler, redaction, limits, one
serialisation) and hands the batch to every sink. It is woken at 256 queued events (or
every 100 ms); if request threads keep the GIL so that it has not run 8 events later, the
thread emitting the 8th hands the GIL over (waits, at most 2 ms, until it runs) rather than
let it lose ~200 races for the GIL per drain (docs/benchmarks.md, core section).

A full queue drops and counts, never waiting on I/O, with one exception: a worker that is
*starved* (runnable, but request threads keep the GIL: a CPU-bound loop emitting as fast as
it can) is let run. Past the high-water mark (half the queue), the emitting thread waits
(at most 10 ms per event) while the worker works through the queue. A worker *blocked* in a
sink (one export call for more than 50 ms, no progress) is not waited for: its events are
dropped and counted as before (docs/reliability.md, "Guarantees").

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

from . import losses as _losses
from .admission import Admission
from .dynamic import DynamicFields
from .ledger import Ledger, call_with_deadline, sink_name
from .limits import Limits
from .log import log_once
from .normalize import safe_repr
from .prepare import Preparer, Processor, Sampler, Tally
from .record import Record
from .redact import Redactor
from .selfreport import estimate_size, sampler_stats, stats_event
from .threads import daemon

__all__ = ["Pipeline"]

_BATCH = 512
_INTERVAL_S = 0.1
_WAKE_AT = 256
_HANDOFF_S = 0.002
_HANDOFF_AFTER = 8  # events after the wake-up: more lose more races; fewer can stall a thread
#                     that would have let the worker run at its next I/O wait
_LOSS_REPORT_S = 60.0  # at most one loss summary line per minute while losses continue
_THREAD_RETRY_S = 1.0  # after a worker thread could not start, try again this much later
DEFAULT_QUEUE_BYTES = 64 * 1024 * 1024
_PIPELINES: weakref.WeakSet[Pipeline] = weakref.WeakSet()


class Pipeline(Admission):
    """One configured flow from finished events to sinks. Build it with ``configure()``."""

    def __init__(
        self,
        *,
        sinks: Sequence[Any],
        static_fields: Callable[[], dict[str, Any]],
        processors: Iterable[Processor] = (),
        sampler: Sampler | None = None,
        queue_size: int = 10_000,
        queue_bytes: int = DEFAULT_QUEUE_BYTES,
        enqueue_timeout: float = 0.0,
        limits: Limits | None = None,
        redactor: Redactor | None = None,
        batch_size: int = _BATCH,
        interval: float = _INTERVAL_S,
        bind: bool = True,
        self_report_interval: float | None = None,
        capture_stacktrace: bool = False,
        synchronous: bool = False,
        start: bool = True,
        loss_report_interval: float = _LOSS_REPORT_S,
        dynamic_fields: DynamicFields | None = None,
    ) -> None:
        """``synchronous=True``: no worker; each event is prepared and exported on the
        thread that finishes it (``wideevents.testing.capture_events`` uses it).
        ``start=False``: events queue up, but no worker runs until :meth:`activate`
        (``configure()`` binds the sinks first). ``loss_report_interval``: seconds between
        loss summary lines while losses continue. ``dynamic_fields``: callbacks each event
        runs when it starts (:mod:`.dynamic`), their counters in ``stats()``."""
        self._static_builder = static_fields
        self._set_static(static_fields())
        #: Run by ``Event.__init__`` on the emitting thread (``configure(dynamic_fields=)``).
        self.dynamic_fields = dynamic_fields
        self._sampler = sampler
        self._preparer = Preparer(processors=processors, sampler=sampler, limits=limits,
                                  redactor=redactor)
        self._capacity = queue_size
        self._max_bytes = queue_bytes
        self._high_water = max(1, queue_size // 2)
        self._low_water = max(0, self._high_water - batch_size)
        self._enqueue_timeout = enqueue_timeout
        self._synchronous = synchronous
        if synchronous:
            self.enqueue = self._enqueue_synchronous  # type: ignore[method-assign]
        #: Whether events record ``exception.stacktrace`` (``configure(capture_stacktrace=)``).
        self.capture_stacktrace = capture_stacktrace
        self._batch_size = batch_size
        self._interval = interval
        self._report_every = self_report_interval
        self._loss_every = loss_report_interval
        self._sinks = list(sinks)
        taken: set[str] = set()
        self._names = [sink_name(s, taken) for s in self._sinks]
        self.on_start_hooks: tuple[Callable[[Any], None], ...] = tuple(
            s.on_start for s in self._sinks if callable(getattr(s, "on_start", None))
        )
        self._held = not start
        self._successor: Pipeline | None = None
        self._shutdown_result: bool | None = None
        self._init_state()
        self._binds = [callable(getattr(s, "bind", None)) for s in self._sinks]
        if bind:
            self.bind_sinks()
        _PIPELINES.add(self)

    def bind_sinks(self, handover: dict[int, Ledger] | None = None) -> None:
        """Connect the binding sinks to this pipeline's ledgers (a sink reports to one).

        ``handover``: for a sink a previous pipeline still had items in when it shut down
        (by ``id(sink)``), that pipeline's ledger: its late reports are absorbed here, not
        counted twice (see :meth:`Ledger.take_over`).
        """
        for sink, ledger, binds in zip(self._sinks, self._ledgers, self._binds):
            if binds:
                previous = (handover or {}).get(id(sink))
                if previous is not None:
                    ledger.take_over(previous)
                sink.bind(ledger)

    def activate(self) -> None:
        """Let the worker start (a pipeline built with ``start=False``)."""
        with self._lock:
            self._held = False
            waiting = bool(self._queue)
        if waiting:
            self._start_worker()

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
        self._sizes: deque[int] = deque()  # estimated bytes of each queued event
        self._queued_bytes = 0
        self._avg_size = 4096
        self._count = 0
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
        self._retry_start_at = 0.0
        self._exporting_since = 0.0
        self._waiting = 0  # request threads waiting for a starved worker
        self._waits, self._waited_s = 0, 0.0  # such waits, and their total time
        self._blocked_at = -1  # _processed when the worker was last found blocked
        self._stopping = False
        self._closed = False
        self._pid = os.getpid()
        self._next_report = time.monotonic() + (self._report_every or 0.0)
        self._next_loss_report = time.monotonic() + self._loss_every
        self._losses = _losses.LossWatch()

    def _after_fork_in_child(self) -> None:
        self._init_state()
        try:
            self._set_static(self._static_builder())
        except Exception:  # noqa: BLE001 - a forked child must come up whatever happens
            self._set_static({**self._static, "process.pid": os.getpid()})
        hooks: list[tuple[Any, tuple[Any, ...]]] = [
            (getattr(sink, "reset_after_fork", None), ()) for sink in self._sinks]
        hooks += [(getattr(sink, "bind", None), (ledger,))
                  for sink, ledger in zip(self._sinks, self._ledgers)]
        hooks.append((getattr(self._sampler, "reset_after_fork", None), ()))
        for fn, args in hooks:
            if callable(fn):
                try:
                    fn(*args)
                except Exception as exc:  # noqa: BLE001 - a fork hook: contained, logged
                    log_once(f"fork:{getattr(fn, '__qualname__', fn)}", "wideevents: a sink "
                             "or sampler failed after fork: %s", safe_repr(exc, 200))

    # -- request thread -------------------------------------------------------------------
    def enqueue(self, fields: dict[str, Any], start_ns: int) -> None:
        """Hand a finished event to the worker. Never raises; waits only for a starved
        worker (at most 10 ms), or up to ``enqueue_timeout`` for space."""
        self._count += 1  # unlocked: a lost increment only shifts which event is measured
        if not self._count & 15 or self._queued_bytes * 4 >= self._max_bytes:
            # Every 16th event, and every event once the queue holds a quarter of its byte
            # bound, is measured; the others count as the running size (up at once, down
            # slowly: a burst of large events is caught by its first measured one).
            size = estimate_size(fields)
            avg = self._avg_size
            self._avg_size = size if size > avg else avg + ((size - avg) >> 4)
        else:
            size = self._avg_size
        with self._lock:
            if self._closed:
                successor = self._successor
                if successor is None or successor is self:
                    self._emitted += 1
                    self._dropped["shutdown"] = self._dropped.get("shutdown", 0) + 1
                    return
            else:
                successor = None
                self._emitted += 1
                q = self._queue
                if ((len(q) >= self._capacity or self._queued_bytes + size > self._max_bytes)
                        and not self._wait_for_space(size)):
                    self._dropped["queue_full"] = self._dropped.get("queue_full", 0) + 1
                    return
                q = self._queue
                q.append((fields, start_ns))
                self._sizes.append(size)
                self._queued_bytes += size
                self._accepted += 1
                n = len(q)
                if ((n >= self._high_water or self._queued_bytes * 2 >= self._max_bytes)
                        and self._worker is not None
                        and threading.current_thread() is not self._worker):
                    self._wait_while_starved()
        if successor is not None:
            # Finished after its pipeline was replaced by configure(): the new one delivers
            # it (and counts it), so events in flight across configure() are never lost.
            successor.enqueue(fields, start_ns)
            return
        if self._worker is None:
            self._start_worker()
        if n >= _WAKE_AT:
            if n == _WAKE_AT:
                self._wake.set()
            elif (n == _WAKE_AT + _HANDOFF_AFTER and not self._started.is_set()
                  and threading.current_thread() is not self._worker):
                # Woken 8 events ago and not running: request threads keep the GIL. Hand
                # it over once (at most 2 ms) rather than let the worker lose ~200 races
                # for it per drain (module docstring, docs/benchmarks.md core section).
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

    def note_late_field(self, count: int = 1) -> None:
        self.note_dropped_field("late", count)

    def note_dropped_field(self, reason: str, count: int = 1) -> None:
        """Count fields the request thread could not record (``stats()["fields"]["dropped"]``)."""
        with self._lock:
            self._fields_dropped[reason] = self._fields_dropped.get(reason, 0) + count

    def _start_worker(self) -> None:
        with self._lock:
            if (self._worker is not None or self._closed or self._held or self._synchronous
                    or time.monotonic() < self._retry_start_at):
                return
            worker = daemon(self._run, "wideevents-worker")
            try:
                worker.start()
            except Exception as exc:  # noqa: BLE001 - "can't start new thread" (pids limit,
                # memory): never raised into the caller; events wait in the queue (flush()
                # and shutdown() process them on their own thread) and the start is retried
                self._retry_start_at = time.monotonic() + _THREAD_RETRY_S
                self._errors["thread_start"] = self._errors.get("thread_start", 0) + 1
                log_once("worker-start", "wideevents: the worker thread could not start (%s); "
                         "events wait in the queue, flush() delivers them, and the start is "
                         "retried every %.0f s (counted in stats()['errors']['thread_start'])",
                         safe_repr(exc, 200), _THREAD_RETRY_S)
                return
            self._worker = worker

    # -- worker ---------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            try:
                self._wake.wait(self._interval)
                self._wake.clear()
                self._started.set()
                self._drain()
                self._started.clear()
                if self._stopping:
                    self._drain()
                    return
                now = time.monotonic()
                if self._report_every is not None and now >= self._next_report:
                    self._self_report(self._report_every)
                if now >= self._next_loss_report:
                    self._next_loss_report = now + self._loss_every
                    self._losses.report(self.stats(), f"in the last {self._loss_every:g} s")
            except BaseException as exc:  # noqa: BLE001 - the worker never dies: whatever
                # escaped the per-event and per-sink containment is logged, and it goes on
                log_once(f"worker:{type(exc).__name__}", "wideevents: the worker met %s and "
                         "carries on", safe_repr(exc, 200))
                if self._stopping:
                    return

    def _self_report(self, every: float) -> None:
        """Emit a ``wideevents.stats`` event (see :func:`.selfreport.stats_event`)."""
        self._next_report = time.monotonic() + every
        try:
            fields = stats_event(self.base_fields, self.stats())
        except Exception as exc:  # noqa: BLE001 - the worker never dies on its own report
            log_once("self-report", "wideevents: the stats event could not be built: %s",
                     safe_repr(exc, 200))
            return
        self.enqueue(fields, time.time_ns())

    def _drain(self, deadline: float | None = None) -> None:
        """Process queued events in chunks: everything queued when the pass began, then
        more only while a full wake-up's worth waits (or until ``deadline``)."""
        budget = -1
        while True:
            with self._lock:
                q = self._queue
                if not q or self._closed or (deadline is not None
                                             and time.monotonic() >= deadline):
                    self._progress.notify_all()
                    return
                if budget < 0:
                    budget = len(q)
                elif budget == 0:
                    if len(q) < _WAKE_AT and not self._stopping:
                        self._progress.notify_all()
                        return
                    budget = len(q)
                n = min(len(q), self._batch_size, budget)
                popleft, sizes = q.popleft, self._sizes.popleft
                chunk = [popleft() for _ in range(n)]
                self._queued_bytes -= sum([sizes() for _ in range(n)])
                self._inflight += n
                budget -= n
                if self._waiting:
                    self._progress.notify_all()
            self._process(chunk)

    def _process(self, chunk: list[tuple[dict[str, Any], int]]) -> None:
        tally = Tally()
        records = self._preparer.prepare_all(chunk, tally, self._is_closed)
        kept = len(records)
        with self._lock:
            if self._closed:
                # shutdown() counted these as dropped; do not count them twice.
                return
            self._inflight -= len(chunk)
            for target, src in ((self._dropped, tally.dropped), (self._errors, tally.errors),
                                (self._fields_dropped, tally.fields_dropped),
                                (self._fields_truncated, tally.fields_truncated)):
                for reason, n in src.items():
                    target[reason] = target.get(reason, 0) + n
            if kept:
                for ledger in self._ledgers:
                    ledger.held += kept
                self._exporting_since = time.monotonic()
        try:
            if kept:
                self._export(records)
        finally:
            with self._lock:
                self._exporting_since = 0.0
                # Counted only now, so that flush() also waits for synchronous sinks' writes.
                self._processed += len(chunk)
                if self._waiting:
                    self._progress.notify_all()

    def _export(self, records: list[Record]) -> None:
        for sink, ledger, binds in zip(self._sinks, self._ledgers, self._binds):
            try:
                sink.export(records)
            except BaseException as exc:  # noqa: BLE001 - a sink's failure, SystemExit and
                # GreenletExit included: counted, logged once, the other sinks still served
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
        if not self._synchronous:
            if self._worker is None:
                self._start_worker()
            if self._worker is None:
                # No worker (it could not start, or configure() has not activated this
                # pipeline yet): the calling thread does the work.
                self._drain(deadline)
            self._wake.set()
        with self._lock:
            while self._processed < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._progress.wait(min(remaining, 0.05))
                if not self._synchronous:
                    self._wake.set()
        return True

    def flush(self, timeout: float = 5.0) -> bool:
        """Deliver everything finished so far, within ``timeout``. Never raises.

        True only when every event finished before the call reached its final outcome in
        time and nothing was lost (dropped or rejected for a failure: not sampled or
        dropped by a processor) since the previous ``flush()``/``shutdown()`` returned.
        """
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
            return self._losses.unchanged_since_last_call(self.stats()) and ok and pending == 0
        except Exception as exc:  # noqa: BLE001 - flush() never raises into user code
            log_once("flush-error", "wideevents: flush failed: %s", safe_repr(exc, 200))
            return False

    def shutdown(self, timeout: float = 5.0, *, keep_open: frozenset[int] = frozenset()
                 ) -> bool:
        """Flush, stop the worker and close the sinks, all within ``timeout``. Never raises.

        True only as :meth:`flush`: everything delivered in time and nothing lost since the
        previous call. ``keep_open``: ids of sinks that are flushed but not closed (a new
        pipeline reuses them). A second call returns the first one's answer.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        with self._lock:
            if self._closed:
                return bool(self._shutdown_result)
        ok = self.flush(timeout)
        self._stopping = True
        self._wake.set()
        worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(max(0.0, min(0.5, deadline - time.monotonic())))
        with self._lock:
            self._closed = True
            # Queued after the flush: a successor (configure() again) delivers them.
            moved = list(self._queue) if self._successor is not None else []
            self._emitted -= len(moved)
            self._accepted -= len(moved)
            lost = len(self._queue) - len(moved) + self._inflight
            if lost:
                self._dropped["shutdown"] = self._dropped.get("shutdown", 0) + lost
                ok = False
            self._queue, self._sizes, self._queued_bytes, self._inflight = deque(), deque(), 0, 0
            self._progress.notify_all()
        for fields, start_ns in moved:
            self._successor.enqueue(fields, start_ns)  # type: ignore[union-attr]
        for sink in self._sinks:
            fn = getattr(sink, "flush" if id(sink) in keep_open else "close", None)
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
        stats = self.stats()
        ok = self._losses.unchanged_since_last_call(stats) and ok
        self._losses.report(stats, "since the last report, at shutdown")
        self._shutdown_result = ok
        return ok

    def retire(self, successor: Pipeline, timeout: float, keep_open: frozenset[int]
               ) -> dict[int, Ledger]:
        """Shut down in favour of ``successor`` (``configure()`` again): events that finish
        here afterwards go to it. Returns the ledgers of the ``keep_open`` sinks (by id),
        for the successor to take over."""
        with self._lock:
            self._successor = successor
        self.shutdown(timeout, keep_open=keep_open)
        return {id(s): lg for s, lg in zip(self._sinks, self._ledgers) if id(s) in keep_open}

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def redactor(self) -> Redactor:
        """This pipeline's redaction rules (defaults plus ``configure(redact=...)``): what the
        middlewares' ``url.query`` and ``feedback_context()`` use too."""
        return self._preparer.redactor

    def _is_closed(self) -> bool:
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
                "queue": {"size": len(self._queue), "capacity": self._capacity,
                          "bytes": self._queued_bytes, "max_bytes": self._max_bytes,
                          "starved_waits": self._waits,
                          "starved_wait_s": round(self._waited_s, 6)},
            }
        out["samplers"] = sampler_stats(self._sampler)
        if self.dynamic_fields is not None:  # its own lock: calls, errors and time per field
            out["dynamic_fields"] = self.dynamic_fields.stats()
        return out

    @property
    def sinks(self) -> list[Any]:
        return list(self._sinks)


def _after_fork_in_child() -> None:
    for pipeline in list(_PIPELINES):
        pipeline._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
