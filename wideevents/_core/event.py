"""The wide event: one flat dict per unit of work, grown while the work runs.

Everything here runs on the request thread, so it is kept to dictionary operations:
values are snapshotted (not normalised) when added, the timestamp is formatted later by
the worker, and ``finish`` hands the dict to the pipeline's queue.

Once finished, the dict is the worker's: every write path (``add``, ``[]=``, ``incr``,
``add_trace``, timers, ``set_timestamp``, the ML helpers via ``add``) checks ``_done`` and
stores with no call in between, so no other thread's ``finish()`` runs between the two
(CPython switches threads only at calls and backward jumps; the stores are C dict
operations on ``str`` keys). A write after ``finish()`` is dropped and counted ``late``.
In a forked child, an event the parent opened is not sent (the parent sends it).
"""

from __future__ import annotations

import contextvars
import os
import time
import traceback
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from . import rollup as _rollup
from . import runtime
from .hooks import inject_fallbacks, parent_resolvers, scope_hooks
from .ids import new_span_id, new_trace_id, uuid7
from .log import log_once
from .mlcalls import MLMethods
from .normalize import safe_repr, snapshot
from .timefmt import unix_ns

__all__ = ["Event", "add", "add_trace", "current_event", "event", "inject", "rollup"]

F = TypeVar("F", bound=Callable[..., Any])

_current: contextvars.ContextVar[Event | None] = contextvars.ContextVar(
    "wideevents_current_event", default=None
)
_PASS = frozenset({str, int, float, bool, type(None)})
_perf_ns = time.perf_counter_ns
_time_ns = time.time_ns
# This process's id, kept by a fork hook rather than asked of the kernel per event.
_pid = os.getpid()


def _after_fork_in_child() -> None:
    global _pid
    _pid = os.getpid()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class _Timer:
    __slots__ = ("_event", "_key", "_t0")

    def __init__(self, event: Event | None, key: str) -> None:
        self._event = event  # None: a timer that records nothing (a non-recording event)
        self._key = key
        self._t0 = 0

    def __enter__(self) -> _Timer:
        self._t0 = _perf_ns()
        return self

    def __exit__(self, *exc: object) -> None:
        ms = (_perf_ns() - self._t0) / 1e6
        ev = self._event
        if ev is None:
            return
        f = ev._fields
        prior = f.get(self._key)
        # Repeated timers of one stage add up (a stage run in a loop).
        value = prior + ms if type(prior) is float else ms
        if ev._done:  # exited after finish(): the dict is the worker's now
            ev._late(1)
        else:
            f[self._key] = value  # no call since the check (module docstring)


class Event(MLMethods):
    """One wide event. Create it with :func:`event`; use it as a context manager.

    Fields are added with :meth:`add`, ``ev[key] = value``, :meth:`incr`, :meth:`timer`
    and the ML helpers. On exit it records ``duration_ms`` (and ``error``,
    ``error.type``, ``error.message`` when the block raised; the exception propagates
    unchanged) and is sent. Nothing here raises into the caller.
    """

    __slots__ = (
        "_fields", "_trace", "_start_ns", "_t0", "_pipeline", "_done", "_token", "_ml",
        "_prediction_id", "_scope", "_pid", "_root", "_attached", "trace_id", "span_id",
        "parent_id",
    )

    recording = True
    trace_id: str
    span_id: str
    parent_id: str | None

    def __init__(self, name: str, fields: Mapping[str, Any] | None = None) -> None:
        parent = _current.get()
        if parent is not None and parent.recording:
            trace_id = parent.trace_id
            parent_id: str | None = parent.span_id
            inherited = parent._trace
            #: The outermost local event this one runs under, where rollups sum (.rollup);
            #: None for a root (not self: a cycle would outlive a dropped event until gc).
            self._root: Event | None = parent if parent._root is None else parent._root
        else:
            self._root = None
            trace_id, parent_id, inherited = "", None, None
            for resolve in parent_resolvers:
                try:
                    found = resolve()
                except Exception:  # noqa: BLE001 - an integration's resolver: no parent
                    found = None
                if found:
                    trace_id, parent_id = found
                    break
            if not trace_id:
                trace_id = new_trace_id()
        span_id = new_span_id()
        self.trace_id = trace_id
        self.span_id = span_id
        self.parent_id = parent_id
        if type(name) is not str:
            name = safe_repr(name, 200)
        pipeline = runtime.active_pipeline()
        f = pipeline.base_fields.copy()  # timestamp, name placeholders and the static fields
        f["name"] = name
        f["trace.trace_id"] = trace_id
        f["trace.span_id"] = span_id
        if parent_id is not None:
            f["trace.parent_id"] = parent_id
        dynamic = pipeline.dynamic_fields  # configure(dynamic_fields=...): on this thread
        if dynamic is not None:
            dynamic(f)
        if inherited:
            f.update(inherited)
        self._trace: dict[str, Any] | None = dict(inherited) if inherited else None
        if fields:
            if _PASS.issuperset(map(type, fields.values())):
                f.update(fields)
            else:
                for k, v in fields.items():
                    f[k] = v if type(v) in _PASS else snapshot(v)
        self._fields = f
        self._done = False
        self._token: contextvars.Token[Event | None] | None = None
        self._scope: list[tuple[Callable[[object], None], object]] | None = None
        self._ml: Any = None
        self._prediction_id: str | None = None
        #: Per-event state of integrations (the HTTP client peers seen); never emitted.
        self._attached: dict[str, Any] | None = None
        self._pipeline = pipeline
        self._pid = _pid
        self._start_ns = _time_ns()
        self._t0 = _perf_ns()
        for hook in self._pipeline.on_start_hooks:
            try:
                hook(self)
            except Exception as exc:  # noqa: BLE001 - a sink's hook: contained, logged
                log_once("on_start", "wideevents: a sink's on_start failed: %s", safe_repr(exc, 200))

    # -- context manager ------------------------------------------------------------------
    def __enter__(self) -> Event:
        self._token = _current.set(self)
        if scope_hooks:
            self._scope = enter_scope(self)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: Any) -> None:
        self.finish(exc)
        scope, self._scope = self._scope, None
        if scope is not None:
            exit_scope(scope)  # before resetting _current: the reverse of __enter__
        token, self._token = self._token, None
        if token is not None:
            try:
                _current.reset(token)
            except ValueError:  # exited in another context (e.g. an async generator)
                pass

    # -- adding fields --------------------------------------------------------------------
    def add(self, fields: Mapping[str, Any] | None = None, /, **kwargs: Any) -> Event:
        """Add fields: dotted keys in a mapping, plain names as keywords. Returns self."""
        if self._done:
            try:
                count = len(fields) if fields is not None else 0
            except Exception:  # noqa: BLE001 - a user mapping's __len__ may raise anything
                count = 1
            self._late(count + len(kwargs))
            return self
        if fields is not None:
            if type(fields) is dict and _PASS.issuperset(map(type, fields.values())):
                new: Mapping[str, Any] = fields  # all immutable scalars: nothing to snapshot
            else:
                new = staged = {}  # what was staged before a failure is still added
                try:
                    for k, v in fields.items():
                        staged[k] = v if type(v) in _PASS else snapshot(v)
                except Exception as exc:  # noqa: BLE001 - e.g. not a mapping
                    log_once("add-bad-mapping", "wideevents: Event.add() takes a mapping of "
                             "fields; got %s (%s)", type(fields).__name__, safe_repr(exc, 200))
            if self._done:  # finished meanwhile, on another thread
                self._late(len(new))
            else:
                self._fields.update(new)  # no call since the check (module docstring)
        if kwargs:
            if not _PASS.issuperset(map(type, kwargs.values())):
                kwargs = {k: v if type(v) in _PASS else snapshot(v) for k, v in kwargs.items()}
            if self._done:
                self._late(len(kwargs))
            else:
                self._fields.update(kwargs)
        return self

    def __setitem__(self, key: str, value: Any) -> None:
        if self._done:
            self._late(1)
            return
        if type(value) not in _PASS:
            value = snapshot(value)
        try:
            if not self._done:
                self._fields[key] = value  # no call since the check (module docstring)
                return
        except Exception as exc:  # noqa: BLE001 - a key whose __hash__ or __eq__ raises
            self._pipeline.note_dropped_field("bad_key")
            log_once("setitem-bad-key", "wideevents: a field with an unusable key was dropped "
                     "(counted in stats()['fields']['dropped']['bad_key']): %s",
                     safe_repr(exc, 200))
            return
        self._late(1)

    def __getitem__(self, key: str) -> Any:
        return self._fields[key]

    def __contains__(self, key: object) -> bool:
        return key in self._fields

    def get(self, key: str, default: Any = None) -> Any:
        """A field's value as added (snapshotted, not yet normalised)."""
        return self._fields.get(key, default)

    @property
    def fields(self) -> dict[str, Any]:
        """A copy of the fields added so far."""
        return dict(self._fields)

    def incr(self, key: str, by: int | float = 1) -> Event:
        """Add ``by`` to a numeric field (created at 0)."""
        if self._done:
            self._late(1)
            return self
        try:
            value = self._fields.get(key, 0) + by
            if not self._done:
                self._fields[key] = value  # no call since the check (module docstring)
                return self
        except Exception:  # noqa: BLE001 - a user object's __add__ (or a key's __hash__) may raise
            name = key if type(key) is str else safe_repr(key, 100)
            log_once(f"incr:{name}", "wideevents: incr(%r) on a non-numeric field; ignored", name)
            return self
        self._late(1)
        return self

    def rollup(self, field: str, value: int | float) -> Event:
        """Add ``value`` to ``field`` here and to ``rollup.<field>`` of the root event (the
        request's), as Honeycomb's Beelines do; concurrent children add safely. A value
        that is not a finite number is dropped and counted (``_core/rollup.py``)."""
        _rollup.add_one(self, field, value)
        return self

    def timer(self, stage: str) -> _Timer:
        """Context manager timing a stage into ``timing.<stage>_ms`` (repeats add up).

        A timer that exits after the event finished records nothing and counts ``late``.
        """
        name = stage if type(stage) is str else safe_repr(stage, 100)  # str() may raise
        return _Timer(self, f"timing.{name}_ms")

    def add_trace(self, fields: Mapping[str, Any] | None = None, /, **kwargs: Any) -> Event:
        """Add fields to this event and to every event started under it from now on."""
        self.add(fields, **kwargs)
        if self._done:
            return self  # counted late by add(); a finished event starts no children
        # Copy on write: a child starting on another thread reads the old dict unchanged.
        trace = dict(self._trace) if self._trace else {}
        try:
            if fields is not None:
                for k, v in fields.items():
                    trace[k] = snapshot(v)
        except Exception:  # noqa: BLE001 - add() above already reported the bad mapping
            pass
        for k, v in kwargs.items():
            trace[k] = snapshot(v)
        self._trace = trace
        return self

    def set_timestamp(self, value: Any) -> Event:
        """Override the start time: a datetime (naive = UTC), ISO 8601 text or a Unix time in
        the unit its magnitude says (docs/schema.md, ``timestamp``). Anything else (NaN, a
        bool, years outside 0001-9999) is logged once and counted
        ``stats()["fields"]["dropped"]["bad_timestamp"]``; the event keeps its start time."""
        if self._done:
            self._late(1)
            return self
        ns = unix_ns(value)  # never raises
        if ns is None:
            self._pipeline.note_dropped_field("bad_timestamp")
            log_once("bad-timestamp", "wideevents: set_timestamp(%s) is not a point in time in "
                     "the years 0001-9999; the event keeps its start time (counted in "
                     "stats()['fields']['dropped']['bad_timestamp'])", safe_repr(value, 100))
        elif self._done:
            self._late(1)
        else:
            self._start_ns = ns  # finish() reads it after setting _done
        return self

    @property
    def prediction_id(self) -> str:
        """A UUIDv7 string identifying this prediction (added as ``prediction.id``)."""
        pid = self._prediction_id
        if pid is None:
            given = self._fields.get("prediction.id")
            if type(given) is str:
                pid = self._prediction_id = given
                return pid
            pid = self._prediction_id = uuid7(self._start_ns // 1_000_000)
            if self._done:
                self._late(1)  # an id made after finish() is in no event
            else:
                self._fields["prediction.id"] = pid  # no call since the check
        return pid

    # The ML helpers (model, scores, features, ...) come from MLMethods (.mlcalls).

    # -- finishing ------------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        return self._done

    def finish(self, exc: BaseException | None = None) -> None:
        """Record the duration (and error) and send. Idempotent; never raises.

        Any exception is recorded (``KeyboardInterrupt``, ``SystemExit`` and
        ``asyncio.CancelledError`` included: the work did not complete) except
        ``GeneratorExit``, a generator closed early by its consumer.
        """
        if self._done:
            return
        self._done = True
        if self._pid != _pid:  # opened by the parent before a fork: the parent sends it.
            # Counted by the pipeline's public hook, as a dropped "field": not a loss.
            self._pipeline.note_dropped_field("forked")
            log_once("forked-event", "wideevents: event %r was opened before os.fork() and "
                     "finished in the child, which does not send it (the parent does; "
                     "counted in stats()['fields']['dropped']['forked'])", self._fields.get("name"))
            return
        f = self._fields
        try:
            f["duration_ms"] = (_perf_ns() - self._t0) / 1e6
            # type(), not isinstance(): an exception's __class__ property may raise
            if exc is not None and not issubclass(type(exc), GeneratorExit):
                self._record_error(exc)
        except BaseException as err:  # noqa: BLE001 - finish() never raises, nor loses the event
            log_once("finish", "wideevents: finishing an event failed: %s", safe_repr(err, 200))
        self._pipeline.enqueue(f, self._start_ns)

    def _record_error(self, exc: BaseException) -> None:
        f = self._fields
        f["error"] = True
        f["error.type"] = _error_type(exc)
        try:
            message = str(exc)
        except BaseException:  # noqa: BLE001 - a user exception's __str__ may raise anything
            message = safe_repr(exc)
        f["error.message"] = message[:1024] if type(message) is str else safe_repr(message, 1024)
        if self._pipeline.capture_stacktrace:
            try:
                f["exception.stacktrace"] = "".join(
                    traceback.format_exception(type(exc), exc, exc.__traceback__))[-16_384:]
            except BaseException:  # noqa: BLE001 - a user traceback's frames may raise anything
                pass

    def _late(self, n: int) -> None:
        self._pipeline.note_late_field(n)
        log_once("late-field", "wideevents: a field was added to event %r after it finished; "
                 "it was dropped (counted in stats()['fields']['dropped']['late'])",
                 self._fields.get("name"))

    def __repr__(self) -> str:
        state = "finished" if self._done else "open"
        return f"<Event {self._fields.get('name')!r} {state}, {len(self._fields)} fields>"


def _error_type(exc: BaseException) -> str:
    """The exception's class, module-qualified unless built in. Never raises."""
    t = type(exc)
    try:  # a metaclass may make __qualname__ or __module__ anything, or raise
        name, module = t.__qualname__, t.__module__
        if type(name) is str:
            return name if type(module) is not str or module in ("builtins", "") \
                else f"{module}.{name}"
    except BaseException:  # noqa: BLE001 - see above
        pass
    return safe_repr(t, 200)


def enter_scope(ev: Event) -> list[tuple[Callable[[object], None], object]]:
    """Run the scope hooks' enter for an event becoming current; what exit_scope needs."""
    entered = []
    for enter, leave in scope_hooks:
        try:
            entered.append((leave, enter(ev)))
        except Exception as exc:  # noqa: BLE001 - an integration's hook: contained, logged
            log_once("scope-enter", "wideevents: a scope hook failed: %s", safe_repr(exc, 200))
    return entered


def activate(ev: Event) -> tuple[Any, Any]:
    """Make ``ev`` current without a ``with`` block (middlewares); undo with deactivate()."""
    token = _current.set(ev)
    return token, (enter_scope(ev) if scope_hooks else None)


def deactivate(handle: tuple[Any, Any]) -> None:
    """Undo :func:`activate`; tolerates a context switched by the host."""
    token, scope = handle
    if scope is not None:
        exit_scope(scope)
    try:
        _current.reset(token)
    except ValueError:
        pass


def exit_scope(entered: list[tuple[Callable[[object], None], object]]) -> None:
    """Undo :func:`enter_scope`, innermost hook first."""
    for leave, token in reversed(entered):
        try:
            leave(token)
        except Exception as exc:  # noqa: BLE001 - an integration's hook: contained, logged
            log_once("scope-exit", "wideevents: a scope hook failed: %s", safe_repr(exc, 200))


class _NonRecordingEvent(Event):
    """What :func:`current_event` returns outside any event: accepts everything, keeps
    nothing (its ML helpers do nothing: they check ``recording``). Each call of
    :func:`current_event` gets a fresh one, whose ``prediction_id`` is stable for that object
    and shared with no other caller; it belongs to no recorded prediction (logged once)."""

    __slots__ = ()
    recording = False

    def __init__(self) -> None:  # noqa: D107 - deliberately does not call Event.__init__
        self.trace_id = "0" * 32
        self.span_id = "0" * 16
        self.parent_id = None
        self._fields = {}
        self._trace = None
        self._done = True
        self._token = None
        self._scope = None
        self._ml = None
        self._prediction_id = None
        self._pid = _pid
        self._start_ns = 0
        self._t0 = 0
        self._root = None
        self._attached = None

    def add(self, fields: Mapping[str, Any] | None = None, /, **kwargs: Any) -> Event:
        return self

    def __setitem__(self, key: str, value: Any) -> None:
        return None

    def incr(self, key: str, by: int | float = 1) -> Event:
        return self

    def rollup(self, field: str, value: int | float) -> Event:
        return self

    def timer(self, stage: str) -> _Timer:
        return _Timer(None, "")

    def add_trace(self, fields: Mapping[str, Any] | None = None, /, **kwargs: Any) -> Event:
        return self

    def set_timestamp(self, value: Any) -> Event:
        return self

    @property
    def prediction_id(self) -> str:
        pid = self._prediction_id
        if pid is None:
            pid = self._prediction_id = uuid7()
            log_once("stand-in-prediction-id", "wideevents: prediction_id was read outside any "
                     "event (current_event() returned a non-recording stand-in): the id is "
                     "stable for that object but no event records it, so feedback for it "
                     "cannot match; read it inside `with wideevents.event(...)`")
        return pid

    def finish(self, exc: BaseException | None = None) -> None:
        return None

    def __enter__(self) -> Event:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def __repr__(self) -> str:
        return "<Event (non-recording)>"


NON_RECORDING: Event = _NonRecordingEvent()


def event(name: str, /, **fields: Any) -> Event:
    """Start a wide event; use it as a context manager (``with event("predict") as ev:``).

    Keyword names are kept as written (``user_id=7`` -> ``user_id``); dotted keys go in
    ``ev.add({...})``. A nested event is a child of the enclosing one (same trace id, its
    parent id set to the enclosing span id).
    """
    try:
        return Event(name, fields)
    except Exception as exc:  # noqa: BLE001 - never break the caller
        log_once("event-start", "wideevents: could not start an event: %s", safe_repr(exc, 200))
        return _NonRecordingEvent()


def current_event() -> Event:
    """The innermost active event, or a fresh non-recording stand-in (never None): its
    ``prediction_id`` is stable for that object, and no other caller shares it."""
    ev = _current.get()
    return ev if ev is not None else _NonRecordingEvent()


def add(fields: Mapping[str, Any] | None = None, /, **kwargs: Any) -> None:
    """Add fields to the current event; a no-op when there is none."""
    ev = _current.get()
    if ev is not None:
        ev.add(fields, **kwargs)


def rollup(field: str, value: int | float) -> None:
    """Add ``value`` to ``field`` of the current event and to ``rollup.<field>`` of its root
    (the request's event); a no-op when there is none (see :meth:`Event.rollup`)."""
    ev = _current.get()
    if ev is not None:
        _rollup.add_one(ev, field, value)


def add_trace(fields: Mapping[str, Any] | None = None, /, **kwargs: Any) -> None:
    """Add fields to the current event and every event nested under it from now on."""
    ev = _current.get()
    if ev is not None:
        ev.add_trace(fields, **kwargs)


def inject(headers: dict[str, str]) -> dict[str, str]:
    """Add a W3C ``traceparent`` for the current event to outgoing request headers."""
    try:
        ev = _current.get()
        if ev is not None and ev.recording:
            headers["traceparent"] = f"00-{ev.trace_id}-{ev.span_id}-01"
        else:
            for hook in inject_fallbacks:
                hook(headers)
    except Exception as exc:  # noqa: BLE001 - inject() never raises into user code
        log_once("inject", "wideevents: inject() failed: %s", safe_repr(exc, 200))
    return headers

