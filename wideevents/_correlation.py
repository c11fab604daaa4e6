"""Trace correlation with OpenTelemetry, through ``opentelemetry-api`` only (no SDK needed).

Off until :func:`enable` is called (``OTelSink`` calls it; ``configure()`` is meant to
call it when the application already imported OpenTelemetry), so ``import wideevents``
and ``event()`` cost nothing for applications that do not use OpenTelemetry; and off for
good while ``OTEL_SDK_DISABLED=true`` (:func:`sdk_disabled`). Once on:

- a root event under an active OpenTelemetry span (an SDK span, or the remote parent
  that an instrumentation extracted from a ``traceparent``) takes the span's trace id,
  and the span's id becomes the event's ``trace.parent_id`` (a resolver in
  ``wideevents._core.hooks.parent_resolvers``, ahead of the middlewares' own);
- while an event is current, OpenTelemetry's context holds a non-recording span with
  the event's own ids (or ``OTelSink``'s live span), so instrumented outgoing calls and
  spans started inside the event become its children (``enter_scope`` / ``exit_scope``,
  run by the core when an event becomes current and when it stops being current);
- ``wideevents.inject(headers)`` outside any event injects the active OpenTelemetry
  span's ``traceparent``.

:func:`extract_parent` parses incoming headers with the API's W3C propagator (also while
``OTEL_SDK_DISABLED=true``: a ``traceparent`` is W3C Trace Context, not the SDK).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ._core import hooks
from ._core.env import env
from ._core.event import Event
from ._core.log import log_once
from ._core.secrets import shown
from ._errors import ConfigurationError

__all__ = [
    "current_parent", "disable", "enable", "enter_scope", "exit_scope", "extract_parent",
    "inject_current", "is_enabled", "sdk_disabled", "span_context_of",
]

_lock = threading.Lock()
_enabled = False
_api: Any = None  # the bound opentelemetry-api functions, see _load()

# OTelSink (span mode) registers a lookup from an event to its live SDK span, so that
# the span itself, not a stand-in, is current while the event is.
live_span: Callable[[Event], Any] | None = None


class _API:
    """The opentelemetry-api callables used per event, looked up once."""

    def __init__(self) -> None:
        from opentelemetry import context, trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.get_current_span = trace.get_current_span
        self.set_span_in_context = trace.set_span_in_context
        self.SpanContext = trace.SpanContext
        self.NonRecordingSpan = trace.NonRecordingSpan
        self.SAMPLED = trace.TraceFlags(trace.TraceFlags.SAMPLED)
        self.attach = context.attach
        self.detach = context.detach
        self.get_current = context.get_current
        self.propagator = TraceContextTextMapPropagator()


def _load() -> _API:
    global _api
    if _api is None:
        try:
            _api = _API()
        except ImportError as exc:
            raise ConfigurationError(
                f"OpenTelemetry correlation needs opentelemetry-api ({exc}); install it with "
                "'pip install opentelemetry-api' (a dependency of wideevents)") from None
    return _api  # type: ignore[no-any-return]


def sdk_disabled() -> bool:
    """True when ``OTEL_SDK_DISABLED`` is ``true`` (any case): the OpenTelemetry parts of
    wideevents (``OTLPSink``, ``OTelSink``, this correlation) stay off; logged once.

    OpenTelemetry's "Environment Variable Specification" (``OTEL_SDK_DISABLED``, and its
    Boolean rule): only ``true`` is true; any other value but ``false`` is false with a
    warning.
    """
    raw = env("OTEL_SDK_DISABLED")
    value = raw.lower()
    if value == "true":
        log_once("otel-sdk-disabled",
                 "wideevents: OTEL_SDK_DISABLED=true: OTLPSink and OTelSink send nothing (their "
                 "events are counted as dropped 'sdk_disabled') and trace correlation with "
                 "OpenTelemetry is off; the other sinks are unaffected")
        return True
    if value not in ("", "false"):
        log_once("otel-sdk-disabled-value",
                 "wideevents: OTEL_SDK_DISABLED=%s is neither 'true' nor 'false'; read as "
                 "false (OpenTelemetry stays on)", shown(raw, 60))
    return False


def enable() -> None:
    """Turn correlation on (idempotent); nothing while ``OTEL_SDK_DISABLED=true``.
    Raises ConfigurationError without opentelemetry-api."""
    global _enabled
    if sdk_disabled():
        return
    _load()
    with _lock:
        if _enabled:
            return
        # First: an active OpenTelemetry span wins over a middleware's raw traceparent
        # (an instrumentation may already have made a server span under that parent).
        hooks.parent_resolvers.insert(0, current_parent)
        hooks.inject_fallbacks.append(inject_current)
        hooks.scope_hooks.append((enter_scope, exit_scope))
        _enabled = True


def disable() -> None:
    """Turn correlation off again (tests; an application rarely needs it)."""
    global _enabled
    with _lock:
        if not _enabled:
            return
        registries: list[tuple[list[Any], Any]] = [
            (hooks.parent_resolvers, current_parent), (hooks.inject_fallbacks, inject_current),
            (hooks.scope_hooks, (enter_scope, exit_scope))]
        for registry, item in registries:
            if item in registry:
                registry.remove(item)
        _enabled = False


def is_enabled() -> bool:
    return _enabled


def _ids(span_context: Any) -> tuple[str, str] | None:
    if span_context is None or not span_context.is_valid:
        return None
    return format(span_context.trace_id, "032x"), format(span_context.span_id, "016x")


def current_parent() -> tuple[str, str] | None:
    """``(trace_id, span_id)`` of the active OpenTelemetry span, or None (a parent resolver)."""
    api = _api
    if api is None:
        return None
    return _ids(api.get_current_span().get_span_context())


def extract_parent(headers: Mapping[str, Any] | Iterable[tuple[Any, Any]]
                   ) -> tuple[str, str] | None:
    """``(trace_id, parent_span_id)`` from incoming headers' W3C ``traceparent``, or None.

    ``headers``: a mapping (any key case) or ``(name, value)`` pairs as ``str`` or
    ``bytes`` (ASGI). Parsed by the API's ``TraceContextTextMapPropagator``; never raises.
    """
    try:
        api = _load()
        carrier: dict[str, str] = {}
        items = headers.items() if isinstance(headers, Mapping) else headers
        for name, value in items:
            key = (name.decode("latin-1") if isinstance(name, bytes) else str(name)).lower()
            if key in ("traceparent", "tracestate"):
                text = value.decode("latin-1") if isinstance(value, bytes) else str(value)
                prior = carrier.get(key)
                carrier[key] = text if prior is None else f"{prior},{text}"
        if "traceparent" not in carrier:
            return None
        ctx = api.propagator.extract(carrier)
        return _ids(api.get_current_span(ctx).get_span_context())
    except Exception:  # noqa: BLE001 - a malformed header means "no parent"
        return None


def inject_current(headers: dict[str, str]) -> None:
    """Add the active OpenTelemetry span's ``traceparent`` (an inject fallback)."""
    api = _api
    if api is not None:
        api.propagator.inject(headers)


def span_context_of(trace_id: str, span_id: str, remote: bool = False) -> Any:
    """An API ``SpanContext`` (sampled) for hex ids."""
    api = _load()
    return api.SpanContext(int(trace_id, 16), int(span_id, 16), remote, api.SAMPLED)


def enter_scope(ev: Event) -> Any:
    """Make the event's span current in OpenTelemetry's context; returns the token for exit.

    The span is ``OTelSink``'s live span for the event when there is one, else a
    non-recording span carrying the event's own ids.
    """
    api = _api
    if api is None or not ev.recording:
        return None
    span = live_span(ev) if live_span is not None else None
    if span is None:
        span = api.NonRecordingSpan(api.SpanContext(
            int(ev.trace_id, 16), int(ev.span_id, 16), False, api.SAMPLED))
    ctx = api.set_span_in_context(span)
    return ctx, api.attach(ctx)


def exit_scope(token: Any) -> None:
    """Undo :func:`enter_scope`, quietly when the event exits in another context."""
    api = _api
    if token is None or api is None:
        return
    ctx, otel_token = token
    var = getattr(otel_token, "var", None)
    if var is not None:  # the default, contextvars-based runtime context
        try:
            var.reset(otel_token)
        except ValueError:
            # Exited in another Context (an async generator, a copied context): there is
            # nothing of ours to undo there. context.detach() would log an error.
            pass
    elif api.get_current() is ctx:
        api.detach(otel_token)
