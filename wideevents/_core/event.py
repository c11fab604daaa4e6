"""The wide event: one flat dict per unit of work, grown while the work runs.

Everything here runs on the request thread, so it is kept to dictionary operations:
values are snapshotted (not normalised) when added, the timestamp is formatted later by
the worker, and ``finish`` hands the dict to the pipeline's queue.
"""

from __future__ import annotations

import contextvars
import datetime as _dt
import time
import traceback
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from . import hooks, runtime
from .hooks import inject_fallbacks, parent_resolvers, scope_hooks
from .ids import new_span_id, new_trace_id, uuid7
from .log import log_once
from .normalize import safe_repr, snapshot

__all__ = ["Event", "add", "add_trace", "current_event", "event", "inject"]

F = TypeVar("F", bound=Callable[..., Any])

_current: contextvars.ContextVar[Event | None] = contextvars.ContextVar(
    "wideevents_current_event", default=None
)
_PASS = frozenset({str, int, float, bool, type(None)})
_perf_ns = time.perf_counter_ns
_time_ns = time.time_ns


class _Timer:
    __slots__ = ("_fields", "_key", "_t0")

    def __init__(self, fields: dict[str, Any], key: str) -> None:
        self._fields = fields
        self._key = key
        self._t0 = 0

    def __enter__(self) -> _Timer:
        self._t0 = _perf_ns()
        return self

    def __exit__(self, *exc: object) -> None:
        ms = (_perf_ns() - self._t0) / 1e6
        prior = self._fields.get(self._key)
        # Repeated timers of one stage add up (a stage run in a loop).
        self._fields[self._key] = prior + ms if type(prior) is float else ms


class Event:
    """One wide event. Create it with :func:`event`; use it as a context manager.

    Fields are added with :meth:`add`, ``ev[key] = value``, :meth:`incr`, :meth:`timer`
    and the ML helpers. On exit it records ``duration_ms`` (and ``error``,
    ``error.type``, ``error.message`` when the block raised; the exception propagates
    unchanged) and is sent. Nothing here raises into the caller.
    """

    __slots__ = (
        "_fields", "_trace", "_start_ns", "_t0", "_pipeline", "_done", "_token", "_ml",
        "_prediction_id", "_scope", "trace_id", "span_id", "parent_id",
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
        else:
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
        self._pipeline = pipeline
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
        f = self._fields
        if fields is not None:
            try:
                if type(fields) is dict and _PASS.issuperset(map(type, fields.values())):
                    f.update(fields)  # all immutable scalars: nothing to snapshot
                else:
                    for k, v in fields.items():
                        f[k] = v if type(v) in _PASS else snapshot(v)
            except Exception as exc:  # noqa: BLE001 - e.g. not a mapping
                log_once("add-bad-mapping", "wideevents: Event.add() takes a mapping of fields; "
                         "got %s (%s)", type(fields).__name__, safe_repr(exc, 200))
        if kwargs:
            if _PASS.issuperset(map(type, kwargs.values())):
                f.update(kwargs)
            else:
                for k, v in kwargs.items():
                    f[k] = v if type(v) in _PASS else snapshot(v)
        return self

    def __setitem__(self, key: str, value: Any) -> None:
        if self._done:
            self._late(1)
            return
        try:
            self._fields[key] = value if type(value) in _PASS else snapshot(value)
        except Exception as exc:  # noqa: BLE001 - a key whose __hash__ or __eq__ raises
            self._pipeline.note_dropped_field("bad_key")
            log_once("setitem-bad-key", "wideevents: a field with an unusable key was dropped "
                     "(counted in stats()['fields']['dropped']['bad_key']): %s",
                     safe_repr(exc, 200))

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
            self._fields[key] = self._fields.get(key, 0) + by
        except Exception:  # noqa: BLE001 - a user object's __add__ (or a key's __hash__) may raise
            name = key if type(key) is str else safe_repr(key, 100)
            log_once(f"incr:{name}", "wideevents: incr(%r) on a non-numeric field; ignored", name)
        return self

    def timer(self, stage: str) -> _Timer:
        """Context manager timing a stage into ``timing.<stage>_ms`` (repeats add up)."""
        name = stage if type(stage) is str else safe_repr(stage, 100)  # str() may raise
        return _Timer(self._fields if not self._done else {}, f"timing.{name}_ms")

    def add_trace(self, fields: Mapping[str, Any] | None = None, /, **kwargs: Any) -> Event:
        """Add fields to this event and to every event started under it from now on."""
        self.add(fields, **kwargs)
        if self._trace is None:
            self._trace = {}
        try:
            if fields is not None:
                for k, v in fields.items():
                    self._trace[k] = snapshot(v)
        except Exception:  # noqa: BLE001 - add() above already reported the bad mapping
            pass
        for k, v in kwargs.items():
            self._trace[k] = snapshot(v)
        return self

    def set_timestamp(self, value: float | _dt.datetime) -> Event:
        """Override the event's start time (Unix seconds or a datetime; naive means UTC)."""
        try:
            if isinstance(value, _dt.datetime):
                if value.tzinfo is None:
                    value = value.replace(tzinfo=_dt.UTC)
                ns = round(value.timestamp() * 1e6) * 1000
            else:
                ns = round(float(value) * 1e6) * 1000  # microseconds: what RFC 3339 shows
            self._start_ns = ns
        except Exception as exc:  # noqa: BLE001 - a user value's __float__ may raise anything
            log_once("set_timestamp", "wideevents: set_timestamp(%s) ignored: %s",
                     safe_repr(value, 100), safe_repr(exc, 200))
        return self

    @property
    def prediction_id(self) -> str:
        """A UUIDv7 string identifying this prediction (added as ``prediction.id``)."""
        pid = self._prediction_id
        if pid is None:
            given = self._fields.get("prediction.id")
            pid = given if type(given) is str else uuid7(self._start_ns // 1_000_000)
            self._prediction_id = pid
            if not self._done:
                self._fields["prediction.id"] = pid
        return pid

    # -- ML helpers (wideevents.ml); never raise, even if the module cannot load ----------
    def model(self, name: str, version: str, **kwargs: Any) -> Event:
        """``model.*`` fields; see :func:`wideevents.ml._bind.model`."""
        _ml_call("model", self, name, version, **kwargs)
        return self

    def scores(self, values: Any, **kwargs: Any) -> Event:
        """``prediction.*`` and ``score.*`` fields; see :func:`wideevents.ml.score_fields`."""
        _ml_call("scores", self, values, **kwargs)
        return self

    def features(self, values: Any, **kwargs: Any) -> Event:
        """``feature.*``, ``feature_bin.*`` and ``data.*`` fields."""
        _ml_call("features", self, values, **kwargs)
        return self

    def ranking(self, ids: Any, scores: Any, **kwargs: Any) -> Event:
        """``result.*`` fields; the event's primary result."""
        _ml_call("ranking", self, ids, scores, **kwargs)
        return self

    def retrieval(self, backend: str, **kwargs: Any) -> Event:
        """``retrieval.<backend>.*`` and ``timing.retrieval.<backend>_ms``."""
        _ml_call("retrieval", self, backend, **kwargs)
        return self

    def shadow(self, version: str, **kwargs: Any) -> Event:
        """``shadow.*``: agreement of a dark-launched model with the primary result."""
        _ml_call("shadow", self, version, **kwargs)
        return self

    # -- finishing ------------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        return self._done

    def finish(self, exc: BaseException | None = None) -> None:
        """Record the duration (and error) and send. Idempotent; never raises."""
        if self._done:
            return
        self._done = True
        f = self._fields
        try:
            f["duration_ms"] = (_perf_ns() - self._t0) / 1e6
            if exc is not None and not isinstance(exc, GeneratorExit):
                self._record_error(exc)
        except Exception as err:  # noqa: BLE001 - finish() never raises into user code
            log_once("finish", "wideevents: finishing an event failed: %s", safe_repr(err, 200))
        self._pipeline.enqueue(f, self._start_ns)

    def _record_error(self, exc: BaseException) -> None:
        f = self._fields
        f["error"] = True
        t = type(exc)
        module = getattr(t, "__module__", "")
        f["error.type"] = t.__qualname__ if module in ("builtins", "") else f"{module}.{t.__qualname__}"
        try:
            message = str(exc)
        except BaseException:  # noqa: BLE001 - a user exception's __str__ may raise anything
            message = safe_repr(exc)
        f["error.message"] = message[:1024] if type(message) is str else safe_repr(message)
        if self._pipeline.capture_stacktrace:
            try:
                f["exception.stacktrace"] = "".join(
                    traceback.format_exception(t, exc, exc.__traceback__))[-16_384:]
            except Exception:  # noqa: BLE001 - a user traceback's frames may raise anything
                pass

    def _late(self, n: int) -> None:
        self._pipeline.note_late_field(n)
        log_once("late-field", "wideevents: a field was added to event %r after it finished; "
                 "it was dropped (counted in stats()['fields']['dropped']['late'])",
                 self._fields.get("name"))

    def __repr__(self) -> str:
        state = "finished" if self._done else "open"
        return f"<Event {self._fields.get('name')!r} {state}, {len(self._fields)} fields>"


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


def _ml_call(helper: str, ev: Event, *args: Any, **kwargs: Any) -> None:
    try:
        helpers = hooks.ml_helpers
        if helpers is None:
            log_once("ml-unwired", "wideevents: ev.%s() needs wideevents.ml, which was not "
                     "wired in (import wideevents does it); the call was ignored", helper)
            return
        getattr(helpers, helper)(ev, *args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - the helpers contain their own errors; belt and braces
        log_once(f"ml:{helper}:{type(exc).__name__}", "wideevents: ev.%s() failed: %s", helper,
                 safe_repr(exc, 200))


class _NonRecordingEvent(Event):
    """What :func:`current_event` returns outside any event: accepts everything, keeps nothing."""

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
        self._start_ns = 0
        self._t0 = 0

    def add(self, fields: Mapping[str, Any] | None = None, /, **kwargs: Any) -> Event:
        return self

    def __setitem__(self, key: str, value: Any) -> None:
        return None

    def incr(self, key: str, by: int | float = 1) -> Event:
        return self

    def timer(self, stage: str) -> _Timer:
        return _Timer({}, "")

    def add_trace(self, fields: Mapping[str, Any] | None = None, /, **kwargs: Any) -> Event:
        return self

    def set_timestamp(self, value: float | _dt.datetime) -> Event:
        return self

    @property
    def prediction_id(self) -> str:
        return uuid7()

    def model(self, name: str, version: str, **kwargs: Any) -> Event:
        return self

    def scores(self, values: Any, **kwargs: Any) -> Event:
        return self

    def features(self, values: Any, **kwargs: Any) -> Event:
        return self

    def ranking(self, ids: Any, scores: Any, **kwargs: Any) -> Event:
        return self

    def retrieval(self, backend: str, **kwargs: Any) -> Event:
        return self

    def shadow(self, version: str, **kwargs: Any) -> Event:
        return self

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
        return NON_RECORDING


def current_event() -> Event:
    """The innermost active event, or a non-recording one (never None)."""
    ev = _current.get()
    return ev if ev is not None else NON_RECORDING


def add(fields: Mapping[str, Any] | None = None, /, **kwargs: Any) -> None:
    """Add fields to the current event; a no-op when there is none."""
    ev = _current.get()
    if ev is not None:
        ev.add(fields, **kwargs)


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

