"""The background sender shared by the network sinks (Honeycomb, OTLP).

::

    submit(dest, items) ──▶ one buffer per Destination, bounded in events and bytes
       (caller's thread:      (full: the new items are reported dropped "buffer_full")
        append + notify)          │ ready at max_batch_events / max_batch_bytes, after
                                  │ send_interval, or at once while flush/close waits
                                  ▼
                        sender threads (up to max_in_flight, started lazily, one
                        keep-alive connection per origin each)
                          codec.encode(items) ─▶ compress ─▶ POST ─▶ codec.interpret(reply)
                                  │
            done: per item sent / rejected / retried · split (413): halve and resend ·
            reject: whole batch · retry (the codec's retryable statuses, timeouts, resets,
            refused): exponential backoff with jitter, bounded attempts, a per-batch deadline
                                  ▼
                        ledger.sent / rejected / dropped: every item exactly once
                        (and on_tagged(...) for items submitted with tags)

A backend plugs in with a :class:`Destination` (where: origin, path, headers) and a
:class:`Codec` (how: the request body from pre-encoded items, and what a reply means).
Items are bytes encoded once by the sink (a Honeycomb batch element, an OTLP log record),
so a batch is a join, and its size is known before it is built. A batch is compressed
once; in flight it keeps only the compressed body when the codec can ``decode`` it back.

Accounting: an item is *pending* from ``submit`` until it is reported. ``flush(timeout)``
waits until nothing is pending; ``close(timeout)`` flushes, then reports whatever is still
buffered or in flight as dropped ``"shutdown"`` and interrupts requests in progress, so a
server that never answers cannot hold it past its deadline. Both return True only when
nothing is pending at the deadline *and* nothing was dropped or rejected since the
previous ``flush``/``close`` returned (a loss makes the next one return False, once).
Reports are made under the sender's lock, so a claim and its report are one step (an
interrupted request that later returns reports nothing). ``reset_after_fork()`` forgets
the parent's items unreported.

Threads that cannot start (``RuntimeError: can't start new thread`` under a pids limit or
memory pressure) are contained: the items stay buffered (pending, counted once), the
failure is logged once and counted in ``thread_start_failures``, and the start is tried
again on a later ``submit`` (at most every 50 ms) and by ``flush``/``close``.

Starved or blocked. When the buffer is above half of ``buffer_events``/``buffer_bytes``,
``submit`` tells two cases apart. *Blocked*: every request slot waits on the backend
(backing off after a failure, or in a request outstanding for :data:`SLOW_REQUEST`, 0.1 s,
or more): new items are dropped ``"buffer_full"`` when they do not fit, and ``submit``
does not wait. *Starved*: otherwise (a CPU-bound producer holds the GIL; the sender
threads are runnable, not running; a reply that has arrived cannot be told from one that
has not, since the socket is drained before the thread gets the GIL back): ``submit``
waits for the senders to take batches, at most :data:`STARVED_WAIT` (20 ms) per call.
That hands them the GIL instead of dropping events a backend that keeps up would have
taken, and slows a producer that outpaces a backend answering within 0.1 s to the
backend's pace. A backend that stops answering costs each call at most 20 ms for 0.1 s.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence

from .._core.ledger import Ledger
from .._core.log import log_once
from .._core.record import SinkLedger
from .._core.threads import daemon
from .contract import (
    SENT,
    Codec,
    Destination,
    Reply,
    SenderConfig,
    backoff_delay,
    reply_for_status,
)
from .delivery import Batch, Delivery
from .http import ConnectionPool

__all__ = [
    "SENT",
    "SLOW_REQUEST",
    "STARVED_WAIT",
    "Codec",
    "Destination",
    "Reply",
    "Sender",
    "TaggedOutcome",
    "SenderConfig",
    "backoff_delay",
    "reply_for_status",
]

_monotonic = time.monotonic

#: The most ``submit`` waits, per call, for starved sender threads (module docstring).
STARVED_WAIT = 0.020
#: A request outstanding this long (seconds) means its slot waits on the backend.
SLOW_REQUEST = 0.1
_START_RETRY = 0.05  # seconds between attempts to start a sender thread after a failure

#: ``(outcome, reason, tags, status)`` for items submitted with tags: outcome is "sent",
#: "rejected" or "dropped"; ``status`` the HTTP status when there was one, else 0. Called
#: under the sender's lock: it must be quick, must not block, must not call the sender.
TaggedOutcome = Callable[[str, str, Sequence[object], int], None]


class _Queue:
    __slots__ = ("items", "nbytes", "since", "tags")

    def __init__(self) -> None:
        self.items: list[bytes] = []
        self.tags: list[object] | None = None
        self.nbytes = 0
        self.since = 0.0


class _Worker:
    __slots__ = ("pool", "thread")

    def __init__(self) -> None:
        self.pool = ConnectionPool()
        self.thread: threading.Thread | None = None


_SENDERS: weakref.WeakSet[Sender] = weakref.WeakSet()


def _reset_all_after_fork() -> None:
    for sender in list(_SENDERS):
        try:
            sender.reset_after_fork()
        except Exception:  # noqa: BLE001, S110 - a child must come up whatever happens
            pass


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_all_after_fork)


class Sender:
    """Bounded, batching, retrying background sender; see the module docstring.

    ``submit`` never waits on the network and never raises; threads start on first use.
    Outcomes go to ``ledger`` (a detached :class:`~wideevents._core.ledger.Ledger` until a
    sink rebinds the attribute to the pipeline's).
    """

    def __init__(self, name: str, codec: Codec, config: SenderConfig | None = None, *,
                 ledger: SinkLedger | None = None,
                 on_tagged: TaggedOutcome | None = None) -> None:
        self.name = name
        self._codec = codec
        self.ledger: SinkLedger = ledger if ledger is not None else Ledger(name)
        self._on_tagged = on_tagged
        self._config = config = config or SenderConfig()
        config.check()
        self._delivery = Delivery(name, codec, config, self._settle)
        self._generation = 0
        self._init_state()
        _SENDERS.add(self)

    def _init_state(self) -> None:
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)  # sender threads wait here
        self._drained = threading.Condition(self._lock)  # flush/close wait here
        self._abort = threading.Event()
        self._queues: dict[Destination, _Queue] = {}
        self._buffered = 0
        self._buffered_bytes = 0
        self._in_flight: set[Batch] = set()
        self._in_flight_items = 0
        self._workers: list[_Worker] = []
        self._idle = 0
        self._urgent = 0
        self._closing = False
        self._closed = False
        self._lost = False  # something was dropped or rejected since flush/close returned
        self._room_cond = threading.Condition(self._lock)  # starved submit() waits here
        self._room_waiters = 0
        self._start_retry_at = 0.0  # 0: no failed start to retry
        self.thread_start_failures = 0
        self._generation += 1
        self._pid = os.getpid()

    # -- caller side --------------------------------------------------------------------
    @property
    def pending(self) -> int:
        """Items submitted and not yet reported."""
        with self._lock:
            return self._buffered + self._in_flight_items

    def submit(self, dest: Destination, items: Sequence[bytes],
               tags: Sequence[object] | None = None) -> None:
        """Buffer ``items`` for ``dest`` (with optional per-item ``tags``). Never raises and
        never waits on the network; waits at most STARVED_WAIT when the sender threads are
        starved (module docstring)."""
        n = len(items)
        if n == 0:
            return
        cfg = self._config
        nbytes = sum(map(len, items))
        with self._lock:
            if self._closing:
                self._report("dropped", "shutdown", n, _opt(tags), 0)
                return
            if (self._buffered * 2 >= cfg.buffer_events
                    or self._buffered_bytes * 2 >= cfg.buffer_bytes):
                self._wait_if_starved_locked()
                if self._closing:  # close() ran while we waited
                    self._report("dropped", "shutdown", n, _opt(tags), 0)
                    return
            accept = n
            if (self._buffered + n > cfg.buffer_events
                    or self._buffered_bytes + nbytes > cfg.buffer_bytes):
                accept, nbytes = self._room(items, n)
                if accept < n:
                    self._report("dropped", "buffer_full", n - accept,
                                          _opt(tags, accept), 0)
                    log_once(f"{self.name}:buffer_full",
                             "wideevents: %s buffer is full (%d events, %d bytes); new events "
                             "are dropped and counted until it drains", self.name,
                             self._buffered, self._buffered_bytes)
                if accept == 0:
                    return
            q = self._queues.get(dest)
            if q is None:
                q = self._queues[dest] = _Queue()
            was_empty = not q.items
            if was_empty:
                q.since = _monotonic()
            if accept == n:
                q.items.extend(items)
            else:
                q.items.extend(items[:accept])
            if tags is not None or q.tags is not None:
                if q.tags is None:
                    q.tags = [None] * (len(q.items) - accept)
                q.tags.extend(tags[:accept] if tags is not None else [None] * accept)
            before = len(q.items) - accept
            q.nbytes += nbytes
            self._buffered += accept
            self._buffered_bytes += nbytes
            if (was_empty or self._urgent
                    or (before < cfg.max_batch_events <= len(q.items))
                    or (q.nbytes - nbytes < cfg.max_batch_bytes <= q.nbytes)):
                self._wake_locked()
            elif self._start_retry_at and _monotonic() >= self._start_retry_at:
                self._wake_locked()  # a sender thread failed to start: try again

    def drop(self, reason: str, count: int, tags: Sequence[object] | None = None) -> None:
        """Report ``count`` items the sink could not even submit (encode errors...) as
        dropped ``reason``: counted like the sender's own losses (flush/close see them)."""
        if count > 0:
            with self._lock:
                self._report("dropped", reason, count, tags, 0)

    def _wait_if_starved_locked(self) -> None:
        """Above the high-water mark: wait (at most STARVED_WAIT) while the sender threads
        are starved of the CPU rather than blocked on the backend; see the module docstring."""
        cfg = self._config
        deadline = _monotonic() + STARVED_WAIT
        self._wake_locked()
        self._room_waiters += 1
        try:
            while ((self._buffered * 2 >= cfg.buffer_events
                    or self._buffered_bytes * 2 >= cfg.buffer_bytes)
                   and not self._closing and self._starved_locked()):
                remaining = deadline - _monotonic()
                if remaining <= 0:
                    return
                self._room_cond.wait(remaining)
        finally:
            self._room_waiters -= 1

    def _starved_locked(self) -> bool:
        """True when waiting could let a sender thread move a batch: not every slot is
        waiting on the backend, and a thread has work."""
        workers = self._workers
        if not workers:
            return False  # no thread could start: waiting would not help
        current = threading.current_thread()
        now = _monotonic()
        on_backend = 0
        for worker in workers:
            if worker.thread is current:
                return False  # a sender thread itself: never wait for ourselves
            if worker.pool.backend_wait(now) >= SLOW_REQUEST:
                on_backend += 1
        if on_backend == len(workers) and (len(workers) >= self._config.max_in_flight
                                           or self._start_retry_at):
            return False  # blocked: every slot waits on a slow or failing backend
        return len(workers) > self._idle or self._ready_locked()

    def _ready_locked(self) -> bool:
        """True when some destination has a batch a sender thread would take now."""
        cfg = self._config
        now = _monotonic()
        urgent = self._urgent > 0 or self._closing
        for q in self._queues.values():
            if q.items and (urgent or q.since + cfg.send_interval <= now
                            or len(q.items) >= cfg.max_batch_events
                            or q.nbytes >= cfg.max_batch_bytes):
                return True
        return False

    def _room(self, items: Sequence[bytes], n: int) -> tuple[int, int]:
        cfg = self._config
        events_left = cfg.buffer_events - self._buffered
        bytes_left = cfg.buffer_bytes - self._buffered_bytes
        accept = size = 0
        while accept < n and accept < events_left:
            s = len(items[accept])
            if size + s > bytes_left:
                break
            size += s
            accept += 1
        return accept, size

    def _wake_locked(self) -> None:
        if self._idle:
            self._cond.notify()
        elif len(self._workers) < self._config.max_in_flight:
            self._start_worker_locked()

    def _start_worker_locked(self) -> None:
        """Start one more sender thread; a failure is contained, counted, retried later."""
        worker = _Worker()
        try:
            thread = daemon(self._run, f"wideevents-{self.name}-sender",
                            (worker, self._generation))
            worker.thread = thread
            self._workers.append(worker)
            thread.start()
        except Exception as exc:  # noqa: BLE001 - RuntimeError "can't start new thread", MemoryError
            if worker in self._workers:
                self._workers.remove(worker)  # a worker that never ran holds no slot
            self.thread_start_failures += 1
            self._start_retry_at = _monotonic() + _START_RETRY
            log_once(f"{self.name}:thread-start",
                     "wideevents: %s could not start a sender thread (%s: %s); events stay "
                     "buffered and the start is retried", self.name, type(exc).__name__,
                     str(exc)[:100])
        else:
            self._start_retry_at = 0.0

    def flush(self, timeout: float) -> bool:
        """Send everything buffered now. True when nothing is pending at the deadline and
        nothing was dropped or rejected since the previous flush/close returned. Never raises."""
        deadline = _monotonic() + max(0.0, timeout)
        with self._lock:
            return self._outcome_locked(self._wait_drained_locked(deadline))

    def _outcome_locked(self, drained: bool) -> bool:
        """The flush/close result; a loss is reported by one call, then forgotten."""
        lost, self._lost = self._lost, False
        return drained and not lost

    def _wait_drained_locked(self, deadline: float) -> bool:
        if self._buffered + self._in_flight_items == 0:
            return True
        self._urgent += 1
        try:
            for _ in range(min(len(self._queues), self._config.max_in_flight)):
                self._wake_locked()
            self._cond.notify_all()
            while self._buffered + self._in_flight_items > 0:
                remaining = deadline - _monotonic()
                if remaining <= 0:
                    return False
                if self._buffered and not self._workers:
                    # No sender thread could start: try again every _START_RETRY.
                    self._wake_locked()
                    remaining = min(remaining, _START_RETRY)
                self._drained.wait(remaining)
            return True
        finally:
            self._urgent -= 1

    def close(self, timeout: float) -> bool:
        """Flush within ``timeout``, then drop what is left as "shutdown"; True if all delivered."""
        deadline = _monotonic() + max(0.0, timeout)
        with self._lock:
            if self._closed:
                return self._outcome_locked(self._buffered + self._in_flight_items == 0)
            self._closing = True
            delivered = self._wait_drained_locked(deadline)
            self._closed = True
            if not delivered:
                self._abort_locked()
            self._cond.notify_all()
            self._room_cond.notify_all()
            workers = list(self._workers)
            result = self._outcome_locked(delivered)
        for worker in workers:
            thread = worker.thread
            if thread is not None and thread is not threading.current_thread():
                thread.join(max(0.0, min(0.2, deadline - _monotonic())))
        return result

    def _abort_locked(self) -> None:
        report = self._report
        for batch in self._in_flight:
            if not batch.aborted and batch.unreported:
                report("dropped", "shutdown", batch.unreported, None, 0)
                self._in_flight_items -= batch.unreported
                batch.unreported = 0
            batch.aborted = True
        for q in self._queues.values():
            if q.items:
                report("dropped", "shutdown", len(q.items), q.tags, 0)
        self._queues.clear()
        self._buffered = self._buffered_bytes = 0
        self._abort.set()
        for worker in self._workers:
            worker.pool.abort()
        self._drained.notify_all()

    def reset_after_fork(self) -> None:
        """In a forked child: forget the parent's items (unreported), threads and connections."""
        if self._pid == os.getpid():
            return
        workers = self._workers
        self._init_state()
        for worker in workers:
            worker.pool.forget()

    # -- sender threads -----------------------------------------------------------------
    def _run(self, worker: _Worker, generation: int) -> None:
        try:
            while True:
                batch = self._next_batch(generation)
                if batch is None:
                    return
                try:
                    self._delivery.deliver(worker.pool, batch, self._abort)
                except Exception as exc:  # noqa: BLE001 - never leave items unaccounted
                    log_once(f"{self.name}:internal:{type(exc).__name__}",
                             "wideevents: %s sender failed (%s); its batch was dropped",
                             self.name, type(exc).__name__)
                    self._settle(batch, "dropped", "internal_error", batch.unreported, None, 0)
                finally:
                    self._finish(batch)
        finally:
            with self._lock:
                if generation == self._generation and worker in self._workers:
                    self._workers.remove(worker)
            worker.pool.close()

    def _next_batch(self, generation: int) -> Batch | None:
        cfg = self._config
        with self._lock:
            while True:
                if generation != self._generation or self._abort.is_set():
                    return None
                now = _monotonic()
                urgent = self._urgent > 0 or self._closing
                best: tuple[Destination, _Queue] | None = None
                wait: float | None = None
                for dest, q in self._queues.items():
                    if not q.items:
                        continue
                    due = q.since + cfg.send_interval - now
                    if (urgent or due <= 0 or len(q.items) >= cfg.max_batch_events
                            or q.nbytes >= cfg.max_batch_bytes):
                        if best is None or q.since < best[1].since:
                            best = (dest, q)
                    elif wait is None or due < wait:
                        wait = due
                if best is not None:
                    q = best[1]
                    batch = self._take(best[0], q, now)
                    if urgent or len(q.items) >= cfg.max_batch_events or (
                            q.nbytes >= cfg.max_batch_bytes):
                        self._wake_locked()  # another full batch is ready: one more in flight
                    return batch
                if self._closing:
                    return None
                if self._room_waiters:
                    self._room_cond.notify_all()  # a starved submit() re-checks
                self._idle += 1
                try:
                    self._cond.wait(wait)
                finally:
                    self._idle -= 1

    def _take(self, dest: Destination, q: _Queue, now: float) -> Batch:
        cfg = self._config
        items = q.items
        if len(items) <= cfg.max_batch_events and q.nbytes <= cfg.max_batch_bytes:
            n, size = len(items), q.nbytes
        else:
            n = size = 0
            limit = min(len(items), cfg.max_batch_events)
            while n < limit:
                s = len(items[n])
                if n and size + s > cfg.max_batch_bytes:
                    break
                size += s
                n += 1
        taken = items[:n]
        del items[:n]
        tags = None
        if q.tags is not None:
            tags = q.tags[:n]
            del q.tags[:n]
        q.nbytes -= size
        if items:
            q.since = now  # the rest waits a fresh interval unless a full batch is ready
        else:
            del self._queues[dest]
        self._buffered -= n
        self._buffered_bytes -= size
        if self._room_waiters:
            self._room_cond.notify_all()
        self._in_flight_items += n
        batch = Batch(dest, taken, tags, now + cfg.retry_deadline)
        self._in_flight.add(batch)
        return batch

    def _finish(self, batch: Batch) -> None:
        with self._lock:
            self._in_flight.discard(batch)
            if batch.unreported and not batch.aborted:
                # A path above forgot to report: count rather than leak (never expected).
                self._report("dropped", "internal_error", batch.unreported, None, 0)
                self._in_flight_items -= batch.unreported
                batch.unreported = 0
            if self._buffered + self._in_flight_items == 0:
                self._drained.notify_all()

    def _settle(self, batch: Batch, outcome: str, reason: str, count: int,
                tags: Sequence[object] | None, status: int) -> None:
        if count <= 0:
            return
        with self._lock:
            if batch.aborted:
                return  # close() already reported these as dropped "shutdown"
            batch.unreported -= count
            self._in_flight_items -= count
            self._report(outcome, reason, count, tags, status)
            if self._buffered + self._in_flight_items == 0:
                self._drained.notify_all()


    def _report(self, outcome: str, reason: str, count: int,
                tags: Sequence[object] | None, status: int) -> None:
        """Count ``count`` items' outcome in the ledger (called under the sender's lock)."""
        ledger = self.ledger
        if outcome == "sent":
            ledger.sent(count)
        elif outcome == "rejected":
            self._lost = True
            ledger.rejected(reason, count)
        else:
            self._lost = True
            ledger.dropped(reason, count)
        if tags is not None and self._on_tagged is not None:
            self._on_tagged(outcome, reason, tags, status)


def _opt(tags: Sequence[object] | None, start: int = 0) -> Sequence[object] | None:
    return None if tags is None else tags[start:]
