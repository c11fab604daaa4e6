"""``OTelSink``: events handed to the application's OpenTelemetry SDK, through the API.

Span mode: ``on_start`` (request thread) starts a span when the event starts, under the
event's parent (an enclosing event's span, the active OpenTelemetry span, or a remote
parent), and the event adopts the span's trace and span ids; ``export`` (worker) sets
the attributes, status ERROR plus an ``exception`` event for failed events, and ends
the span at the event's start plus ``duration_ms``. Log mode: one log record per event
with ``event_name``, an explicit timestamp, severity and the event's trace context.

The SDK's attribute count limit (default 128) evicts the *oldest* attributes, which would
be the identity fields. This sink reads the limit the SDK will apply and chooses the
attributes itself: identity fields (``name``, ``service.*``, ``trace.*``, ``request.id``,
``prediction.id``, ``model.*``, ``error*``...) always, then the others in the order they
were added, leaving room for ``meta.dropped_fields`` / ``meta.dropped_count`` naming
what did not fit; the SDK then never evicts anything. Those fields are also counted
(``stats()["fields_dropped"]["attribute_limit"]``, and the pipeline's ledger when it
can count fields). Values are made safe for the SDK's exporters: ``None`` is left out
(counted), integers beyond int64 become strings, mappings JSON strings.

Outcomes: "sent" means handed to the SDK (spans ended, records emitted); the SDK's own
losses afterwards (its batch processor drops silently when full) are out of our sight.
Dropped reasons: ``no_sdk`` (no SDK provider is configured: the API's no-op
implementation would discard it), ``not_recording`` (the SDK's sampler declined the
span), ``sdk_disabled`` (``OTEL_SDK_DISABLED=true``: the sink starts no span and hands
nothing over, and trace correlation stays off), ``export_error``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson

from .. import _correlation as _otel
from .._core.env import env
from .._core.event import Event
from .._core.ledger import Ledger
from .._core.limits import META_NAMES_MAX, is_identity
from .._core.log import log_once
from .._core.normalize import safe_repr
from .._core.record import Record, SinkLedger
from .._core.samplerate import sample_rate
from .._core.secrets import mask, shown
from .._errors import ConfigurationError
from .._version import __version__
from ._otlp._wire import INT64_MAX, INT64_MIN, duration_ns, timestamp_ns

__all__ = ["OTelSink"]

MODES = ("span", "log")
DEFAULT_ATTRIBUTE_LIMIT = 128
_SPAN_SKIP = frozenset({"name", "timestamp", "duration_ms", "trace.trace_id", "trace.span_id",
                        "trace.parent_id"})
_LOG_SKIP = frozenset({"timestamp", "trace.trace_id", "trace.span_id"})
_META = ("meta.dropped_fields", "meta.dropped_count")
_EXCEPTION = (("error.type", "exception.type"), ("error.message", "exception.message"),
              ("exception.stacktrace", "exception.stacktrace"))


def _env_limit(*names: str) -> int | None:
    """The first of ``names`` set to a limit (``unset``: none), else the SDK's default.

    A negative or unreadable value is ignored with a warning, as if not set (OpenTelemetry
    "Common Configuration Specification", Numeric): never read as "no attributes"."""
    for name in names:
        raw = env(name)
        if raw:
            if raw.lower() == "unset":
                return None
            try:
                value = int(raw)
            except ValueError:
                value = -1
            if value >= 0:
                return value
            log_once(f"otel:limit:{name}",
                     "wideevents: OTelSink: %s=%s is ignored (a limit is an integer >= 0)",
                     name, shown(raw, 60))
    return DEFAULT_ATTRIBUTE_LIMIT


def _attribute_value(v: Any) -> Any:
    """A value the SDK's attribute cleaning and OTLP exporters accept unchanged."""
    t = type(v)
    if t is int:
        return v if INT64_MIN <= v <= INT64_MAX else str(v)
    if t in (str, float, bool):
        return v
    if t in (list, tuple):
        return [x if type(x) is not int or INT64_MIN <= x <= INT64_MAX else str(x) for x in v]
    if isinstance(v, Mapping):
        return orjson.dumps(v, default=safe_repr, option=orjson.OPT_NON_STR_KEYS).decode()
    return safe_repr(v)


def _resolved(obj: Any, attr: str) -> Any:
    """The real tracer/logger behind the API's proxy (once a provider is set), else ``obj``."""
    inner = getattr(obj, attr, None)
    return inner if inner is not None else obj


class OTelSink:
    """Send events to the OpenTelemetry SDK as spans (``mode="span"``) or log records.

    ``tracer_provider`` / ``logger_provider`` default to the global providers of the
    OpenTelemetry API (set by the application). Only ``opentelemetry-api`` is imported;
    without an SDK provider the events are counted as dropped ``"no_sdk"``. The provider
    belongs to the application: ``flush`` asks it to flush, ``close`` does not shut it down.
    ``max_open_spans`` bounds the spans started for events that have not reached the sink
    yet (those of events sampled out or dropped by the pipeline are discarded past it).
    """

    name = "otel"

    def __init__(self, mode: str = "span", *, tracer_provider: Any = None,
                 logger_provider: Any = None, max_open_spans: int = 10_000) -> None:
        if mode not in MODES:
            raise ConfigurationError(
                f"OTelSink(mode={shown(mode)}) is not supported; use 'span' (one span per event) "
                "or 'log' (one log record per event)")
        if type(max_open_spans) is not int or max_open_spans < 1:
            raise ConfigurationError(
                f"OTelSink(max_open_spans={shown(max_open_spans)}): use an integer >= 1")
        try:
            from opentelemetry import trace
            from opentelemetry.context import Context
        except ImportError:
            raise ConfigurationError(
                "OTelSink needs opentelemetry-api (and an SDK configured by the application): "
                "pip install opentelemetry-api opentelemetry-sdk") from None
        self._disabled = _otel.sdk_disabled()
        if not self._disabled:
            _otel.enable()
        self.mode = mode
        self._trace = trace
        self._empty_context = Context
        self._own_ledger = Ledger("otel")
        self._ledger: SinkLedger = self._own_ledger
        self._fields_dropped: dict[str, int] = {}
        self._abandoned = 0
        self._lost = False  # an event was dropped since flush/close last returned
        self._lock = threading.Lock()
        self._open: dict[str, tuple[Any, int]] = {}
        self._max_open = max_open_spans
        self._tracer_provider = tracer_provider
        self._logger_provider = logger_provider
        self.on_start: Callable[[Event], None] | None = None
        if mode == "span":
            provider = tracer_provider if tracer_provider is not None else (
                trace.get_tracer_provider())
            self._tracer = provider.get_tracer("wideevents", __version__)
            self.on_start = None if self._disabled else self._on_start
            if _otel.live_span is None and not self._disabled:
                _otel.live_span = self._live_span
        else:
            from opentelemetry import _logs

            provider = logger_provider if logger_provider is not None else (
                _logs.get_logger_provider())
            self._logger = provider.get_logger("wideevents", __version__)
            self._noop_logger = _logs.NoOpLogger
            self._severity = {False: (_logs.SeverityNumber.INFO, "INFO"),
                              True: (_logs.SeverityNumber.ERROR, "ERROR")}

    def __repr__(self) -> str:
        return f"OTelSink(mode={self.mode!r})"

    # -- span mode: request thread --------------------------------------------------------
    def _parent_context(self, trace_id: str, parent_id: str | None) -> Any:
        trace = self._trace
        if not parent_id:
            return self._empty_context()  # a new trace: the SDK chooses the ids
        entry = self._open.get(parent_id)
        if entry is not None:
            return trace.set_span_in_context(entry[0])
        current = trace.get_current_span().get_span_context()
        if (current.is_valid and current.span_id == int(parent_id, 16)
                and current.trace_id == int(trace_id, 16)):
            return None  # the active context is the parent (flags and tracestate kept)
        parent = trace.NonRecordingSpan(_otel.span_context_of(trace_id, parent_id, remote=True))
        return trace.set_span_in_context(parent, self._empty_context())

    def _start_span(self, name: str, fields: Mapping[str, Any], trace_id: str,
                    parent_id: str | None, start_ns: int) -> Any:
        trace = self._trace
        kind = trace.SpanKind.SERVER if "http.request.method" in fields else trace.SpanKind.INTERNAL
        ctx = self._parent_context(trace_id, parent_id)
        span = self._tracer.start_span(name, context=ctx, kind=kind, start_time=start_ns)
        sc = span.get_span_context()
        # The API alone returns the parent (or an invalid span): there is no SDK.
        if not sc.is_valid or (parent_id and sc.span_id == int(parent_id, 16)):
            return None
        return span

    def _on_start(self, ev: Event) -> None:
        """Start the event's span and adopt its ids (called by the core, request thread)."""
        if not ev.recording:
            return
        f = ev._fields
        name = f.get("name")
        start_ns = ev._start_ns - ev._start_ns % 1000  # microseconds, as the event's timestamp
        span = self._start_span(name if type(name) is str else "event", f, ev.trace_id,
                                ev.parent_id, start_ns)
        if span is None:
            return
        sc = span.get_span_context()
        trace_id, span_id = format(sc.trace_id, "032x"), format(sc.span_id, "016x")
        ev.trace_id = trace_id
        ev.span_id = span_id
        f["trace.trace_id"] = trace_id
        f["trace.span_id"] = span_id
        if _otel.live_span is None:  # e.g. a previous OTelSink was closed
            _otel.live_span = self._live_span
        with self._lock:
            self._open[span_id] = (span, start_ns)
            if len(self._open) > self._max_open:
                del self._open[next(iter(self._open))]
                self._abandoned += 1
                log_once("otel:abandoned",
                         "wideevents: OTelSink has more than %d spans whose events never "
                         "reached it (sampled out or dropped by the pipeline); the oldest are "
                         "discarded without being ended", self._max_open)

    def _live_span(self, ev: Event) -> Any:
        entry = self._open.get(ev.span_id)
        return entry[0] if entry is not None else None

    # -- worker thread --------------------------------------------------------------------
    def bind(self, ledger: SinkLedger) -> None:
        """Report every event's outcome to ``ledger`` (called once by the pipeline)."""
        self._ledger = ledger

    def export(self, batch: Sequence[Record]) -> None:
        """Hand each record to the SDK; never raises."""
        if self._disabled:
            if batch:  # OTEL_SDK_DISABLED=true: a decision, counted; not a loss
                self._ledger.dropped("sdk_disabled", len(batch))
            return
        outcomes: dict[str, int] = {}
        handle = self._export_span if self.mode == "span" else self._export_log
        for record in batch:
            try:
                outcome = handle(record.fields)
            except Exception as exc:  # noqa: BLE001 - counted, never raised
                log_once(f"otel:export:{type(exc).__name__}",
                         "wideevents: OTelSink could not hand an event to OpenTelemetry (%s): %s",
                         type(exc).__name__, mask(safe_repr(exc, 1000), 200))
                outcome = "export_error"
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        ledger = self._ledger
        if any(outcome != "sent" for outcome in outcomes):
            with self._lock:
                self._lost = True
        for outcome, n in outcomes.items():
            if outcome == "sent":
                ledger.sent(n)
            else:
                ledger.dropped(outcome, n)
        if "no_sdk" in outcomes:
            log_once("otel:no_sdk",
                     "wideevents: OTelSink: no OpenTelemetry SDK %s provider is configured; "
                     "events are dropped (counted as 'no_sdk'). Set one up (opentelemetry-sdk) "
                     "or pass %s_provider=...", "tracer" if self.mode == "span" else "logger",
                     "tracer" if self.mode == "span" else "logger")

    def _export_span(self, f: dict[str, Any]) -> str:
        span_id = f.get("trace.span_id")
        with self._lock:
            entry = self._open.pop(span_id, None) if type(span_id) is str else None
        if entry is None:
            # Started before this sink was configured (or discarded): a span now, with
            # the event's times; its span id is the SDK's, not the event's.
            start_ns = timestamp_ns(f)
            trace_id = f.get("trace.trace_id")
            parent = f.get("trace.parent_id")
            name = f.get("name")
            span = self._start_span(
                name if type(name) is str else "event", f,
                trace_id if type(trace_id) is str and len(trace_id) == 32 else "",
                parent if type(parent) is str and len(parent) == 16 and trace_id else None,
                start_ns)
            if span is None:
                return "no_sdk"
        else:
            span, start_ns = entry
        if not span.is_recording():
            return "not_recording"
        span.set_attributes(self._attributes(f, _SPAN_SKIP, self._span_limit(span)))
        evicted = getattr(span, "dropped_attributes", 0)
        if type(evicted) is int and evicted > 0:  # a limit we could not read: count it
            self._count_fields("attribute_limit_sdk", evicted)
        end_ns = start_ns + duration_ns(f)
        if f.get("error") is True:
            trace = self._trace
            message = f.get("error.message")
            text = message if type(message) is str else None
            span.add_event("exception", {dst: v if type(v) is str else safe_repr(v)
                                         for src, dst in _EXCEPTION
                                         if (v := f.get(src)) is not None}, timestamp=end_ns)
            span.set_status(trace.Status(trace.StatusCode.ERROR, text))
        span.end(end_time=end_ns)
        return "sent"

    def _export_log(self, f: dict[str, Any]) -> str:
        logger = _resolved(self._logger, "_logger")
        if isinstance(logger, self._noop_logger):
            return "no_sdk"
        trace_id = f.get("trace.trace_id")
        span_id = f.get("trace.span_id")
        ctx = self._empty_context()
        if type(trace_id) is str and type(span_id) is str:
            try:
                span = self._trace.NonRecordingSpan(_otel.span_context_of(trace_id, span_id))
                ctx = self._trace.set_span_in_context(span, ctx)
            except ValueError:
                pass
        severity, text = self._severity[f.get("error") is True]
        name = f.get("name")
        limits = getattr(logger, "_log_record_limits", None)
        limit = (limits.max_log_record_attributes if limits is not None else
                 _env_limit("OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT", "OTEL_ATTRIBUTE_COUNT_LIMIT"))
        logger.emit(timestamp=timestamp_ns(f), context=ctx, severity_number=severity,
                    severity_text=text, attributes=self._attributes(f, _LOG_SKIP, limit),
                    event_name=name if type(name) is str else None)
        return "sent"

    def _span_limit(self, span: Any) -> int | None:
        limits = getattr(span, "_limits", None)
        if limits is not None and hasattr(limits, "max_span_attributes"):
            value = limits.max_span_attributes
            return value if value is None else int(value)
        return _env_limit("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "OTEL_ATTRIBUTE_COUNT_LIMIT")

    # -- attributes -------------------------------------------------------------------------
    def _attributes(self, f: Mapping[str, Any], skip: frozenset[str], limit: int | None
                    ) -> dict[str, Any]:
        """The attributes to set, chosen so that the SDK's count limit never evicts any."""
        pairs: list[tuple[str, Any]] = []
        nulls = 0
        for k, v in f.items():
            if k in skip:
                continue
            if v is None:
                nulls += 1
            elif k == "samplerate":
                pairs.append(("SampleRate", sample_rate(v)))
            else:
                pairs.append((k, _attribute_value(v)))
        if nulls:
            self._count_fields("null", nulls)
        if limit is None or len(pairs) <= limit:
            return dict(pairs)
        prior_names: list[Any] = []
        prior_count = 0
        identity: list[tuple[str, Any]] = []
        others: list[tuple[str, Any]] = []
        for k, v in pairs:
            if k == _META[0]:
                prior_names = list(v) if isinstance(v, list) else [v]
            elif k == _META[1]:
                prior_count = v if type(v) is int else 0
            elif k == "SampleRate" or is_identity(k):
                identity.append((k, v))
            else:
                others.append((k, v))
        meta_room = 2 if limit >= 2 else 0
        identity = identity[:max(0, limit - meta_room)]
        room = max(0, limit - meta_room - len(identity))
        dropped = [k for k, _ in others[room:]]
        out = dict(others[:room])
        out.update(identity)  # newest last: even a smaller real limit evicts others first
        if meta_room:
            names = list(dict.fromkeys([*prior_names, *dropped]))
            out[_META[0]] = [str(n) for n in names[:META_NAMES_MAX]]
            out[_META[1]] = max(prior_count, len(prior_names)) + len(dropped)
        self._count_fields("attribute_limit", len(dropped))
        log_once("otel:attribute_limit",
                 "wideevents: OTelSink: an event has more fields than the OpenTelemetry SDK's "
                 "attribute limit (%d); %d were left out and named in meta.dropped_fields "
                 "(raise OTEL_ATTRIBUTE_COUNT_LIMIT / OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT to keep "
                 "them)", limit, len(dropped))
        return out

    def _count_fields(self, reason: str, n: int) -> None:
        if n <= 0:
            return
        with self._lock:
            self._fields_dropped[reason] = self._fields_dropped.get(reason, 0) + n
        try:
            self._ledger.fields_dropped(reason, n)
        except Exception:  # noqa: BLE001 - accounting must not break export
            pass

    # -- lifecycle --------------------------------------------------------------------------
    def _provider(self) -> Any:
        if self.mode == "span":
            if self._tracer_provider is not None:
                return self._tracer_provider
            return self._trace.get_tracer_provider()
        if self._logger_provider is not None:
            return self._logger_provider
        from opentelemetry import _logs

        return _logs.get_logger_provider()

    def flush(self, timeout: float = 5.0) -> bool:
        """Ask the SDK provider to export what it holds, within ``timeout``. True when it
        did and no event was dropped since the previous flush/close returned."""
        if self._disabled:
            return self._outcome(True)
        force = getattr(self._provider(), "force_flush", None)
        if not callable(force):
            return self._outcome(True)
        try:
            ok = force(max(0, int(timeout * 1000))) is not False
        except Exception as exc:  # noqa: BLE001 - the application's SDK provider: contained, logged
            log_once(f"otel:flush:{type(exc).__name__}",
                     "wideevents: OTelSink: the SDK's force_flush failed: %s",
                     mask(safe_repr(exc, 1000), 200))
            ok = False
        return self._outcome(ok)

    def _outcome(self, ok: bool) -> bool:
        """The flush/close result: False also when events were dropped since the previous
        flush/close returned (reported once)."""
        with self._lock:
            lost, self._lost = self._lost, False
        return ok and not lost

    def close(self, timeout: float = 5.0) -> bool:
        """Flush; the provider stays open (it belongs to the application)."""
        ok = self.flush(timeout)
        if _otel.live_span == self._live_span:
            _otel.live_span = None
        return ok

    def reset_after_fork(self) -> None:
        """In a forked child: forget the parent's open spans (the parent ends them)."""
        self._lock = threading.Lock()
        self._open = {}

    def stats(self) -> dict[str, object]:
        """Outcome counts when no pipeline ledger is bound, omitted fields, open spans."""
        out = self._own_ledger.snapshot() if self._ledger is self._own_ledger else {}
        with self._lock:
            out["fields_dropped"] = dict(self._fields_dropped)
            out["open_spans"] = len(self._open)
            out["abandoned_spans"] = self._abandoned
        return out
