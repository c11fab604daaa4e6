"""Configuration: building the pipeline, the default one, and the process-wide controls.

``configure()`` validates everything (arguments and the environment it reads) and raises
:class:`ConfigurationError` with a fix-it message. Without it, the first event builds the
default pipeline from the environment; a bad variable there is logged once and the
default falls back to stdout JSON lines, never raised.
"""

from __future__ import annotations

import atexit
import os
import signal
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ._errors import ConfigurationError
from ._limits import DEFAULT_REDACT, Limits, Redactor
from ._log import log_once
from ._pipeline import Pipeline
from ._service import default_service_name, parse_resource_attributes, static_fields

__all__ = [
    "active_pipeline", "configure", "flush", "install_signal_handlers", "shutdown", "stats",
]

_active: Pipeline | None = None
_lock = threading.RLock()
_capture_stacktrace = False
_exit_timeout = 2.0
_atexit_registered = False

SINK_SPEC_HELP = (
    "use 'stdout', 'stdout:pretty', 'file:PATH' (e.g. file:events.jsonl, {pid} allowed), "
    "'honeycomb', 'otlp' or 'none'"
)


def capture_stacktrace() -> bool:
    return _capture_stacktrace


def sinks_from_spec(spec: str) -> list[Any]:
    """Sinks for a ``WIDEEVENTS_SINK`` / ``--sink`` value; ConfigurationError if unknown."""
    from . import sinks as _sinks

    spec = spec.strip()
    kind, sep, arg = spec.partition(":")
    kind = kind.strip().lower()
    if kind == "none" and not sep:
        return []
    if kind == "stdout":
        fmt = arg.strip() or "json"
        return [_sinks.StdoutSink(format=fmt)]
    if kind == "file":
        if not arg.strip():
            raise ConfigurationError(f"sink {spec!r} has no path: {SINK_SPEC_HELP}")
        return [_sinks.FileSink(arg.strip())]
    if kind in ("honeycomb", "otlp") and not sep:
        cls_name = "HoneycombSink" if kind == "honeycomb" else "OTLPSink"
        try:
            cls = getattr(_sinks, cls_name)
        except AttributeError:
            raise ConfigurationError(
                f"sink {kind!r} is not available in this version of wideevents; {SINK_SPEC_HELP}"
            ) from None
        return [cls()]
    raise ConfigurationError(f"unknown sink {spec!r}: {SINK_SPEC_HELP}")


def _validate_sink(sink: Any) -> Any:
    if isinstance(sink, str):
        raise ConfigurationError("internal: string sinks are expanded before validation")
    if not callable(getattr(sink, "export", None)):
        raise ConfigurationError(
            f"{sink!r} is not a sink: a sink needs an export(batch) method "
            "(see wideevents.sinks for StdoutSink, FileSink, MemorySink, HoneycombSink...)"
        )
    return sink


def _build(
    service_name: str | None,
    sinks: Iterable[Any] | str | None,
    sampler: Callable[[dict[str, Any]], int] | None,
    processors: Iterable[Callable[[dict[str, Any]], dict[str, Any] | None]],
    static: Mapping[str, Any] | None,
    queue_size: int,
    enqueue_timeout: float,
    limits: Limits | None,
    redact: Iterable[str] | None,
    bind: bool = True,
) -> Pipeline:
    if service_name is not None and (not isinstance(service_name, str) or not service_name):
        raise ConfigurationError(f"service_name={service_name!r}: use a non-empty string")
    if not isinstance(queue_size, int) or isinstance(queue_size, bool) or queue_size < 1:
        raise ConfigurationError(
            f"queue_size={queue_size!r}: use a positive integer (default 10_000 events)"
        )
    if not isinstance(enqueue_timeout, (int, float)) or not enqueue_timeout >= 0:
        raise ConfigurationError(
            f"enqueue_timeout={enqueue_timeout!r}: use seconds >= 0 (0 = never wait, drop and count)"
        )
    if sampler is not None and not callable(sampler):
        raise ConfigurationError(
            f"sampler={sampler!r} is not callable: use a function (event) -> int, e.g. "
            "wideevents.sampling.DeterministicSampler(10)"
        )
    procs = tuple(processors or ())
    for p in procs:
        if not callable(p):
            raise ConfigurationError(
                f"processor {p!r} is not callable: processors are functions (event) -> event | None"
            )
    if static is not None and not isinstance(static, Mapping):
        raise ConfigurationError(f"static_fields={static!r}: use a dict of field -> value")
    if limits is not None and not isinstance(limits, Limits):
        raise ConfigurationError("limits: use wideevents.Limits(max_fields=..., ...)")
    parse_resource_attributes(os.environ.get("OTEL_RESOURCE_ATTRIBUTES", ""), strict=True)
    if sinks is None:
        env = os.environ.get("WIDEEVENTS_SINK", "").strip()
        try:
            sink_list = sinks_from_spec(env) if env else sinks_from_spec("stdout")
        except ConfigurationError as exc:
            raise ConfigurationError(f"environment variable WIDEEVENTS_SINK={env!r}: {exc}") from None
    elif isinstance(sinks, str):
        sink_list = [s for part in sinks.split(",") for s in sinks_from_spec(part)]
    else:
        sink_list = []
        for s in sinks:
            sink_list.extend(sinks_from_spec(s) if isinstance(s, str) else [_validate_sink(s)])
    name = default_service_name(service_name)
    extra = dict(static) if static else None
    patterns = tuple(DEFAULT_REDACT) + tuple(redact or ())
    return Pipeline(
        sinks=sink_list,
        static_fields=lambda: static_fields(name, extra),
        processors=procs,
        sampler=sampler,
        queue_size=queue_size,
        enqueue_timeout=float(enqueue_timeout),
        limits=limits,
        redactor=Redactor(patterns),
        bind=bind,
    )


def configure(
    service_name: str | None = None,
    sinks: Iterable[Any] | str | None = None,
    sampler: Callable[[dict[str, Any]], int] | None = None,
    processors: Iterable[Callable[[dict[str, Any]], dict[str, Any] | None]] = (),
    static_fields: Mapping[str, Any] | None = None,
    queue_size: int = 10_000,
    enqueue_timeout: float = 0.0,
    *,
    limits: Limits | None = None,
    redact: Iterable[str] | None = None,
    capture_stacktrace: bool = False,
    exit_timeout: float = 2.0,
    otel: bool | None = None,
) -> Pipeline:
    """Build and install the process-wide pipeline; raises ConfigurationError when wrong.

    ``sinks`` is a list of sink objects or specs (``"stdout"``, ``"file:events.jsonl"``...),
    default ``WIDEEVENTS_SINK`` or stdout. ``redact`` adds names/globs to the default
    redaction list. ``otel``: correlate with OpenTelemetry (active spans become parents, the
    event's ids become the current span context); None means "if the application already
    imported opentelemetry.trace". The previous pipeline is flushed and shut down (within 2 s).
    """
    global _active, _capture_stacktrace, _exit_timeout
    if not isinstance(exit_timeout, (int, float)) or not exit_timeout >= 0:
        raise ConfigurationError(f"exit_timeout={exit_timeout!r}: use seconds >= 0")
    pipeline = _build(service_name, sinks, sampler, processors, static_fields, queue_size,
                      enqueue_timeout, limits, redact, bind=False)
    with _lock:
        previous = _active
    if previous is not None:
        # First, so that a sink reused by the new pipeline reports the old events to the old one.
        previous.shutdown(timeout=2.0)
    pipeline.bind_sinks()
    _enable_otel(otel)
    with _lock:
        _active = pipeline
        _capture_stacktrace = bool(capture_stacktrace)
        _exit_timeout = float(exit_timeout)
        _register_atexit()
    return pipeline


def _enable_otel(otel: bool | None) -> None:
    """Turn trace correlation on when asked, or when the app already uses OpenTelemetry."""
    import sys

    if otel is False:
        if "wideevents._otel" in sys.modules:
            sys.modules["wideevents._otel"].disable()
        return
    if otel is None and "opentelemetry.trace" not in sys.modules:
        return  # costs nothing for applications that do not use OpenTelemetry
    try:
        from . import _otel

        _otel.enable()
    except ImportError as exc:
        if otel:
            raise ConfigurationError(f"otel=True needs opentelemetry-api: {exc}") from None


def _default_pipeline() -> Pipeline:
    try:
        return _build(None, None, None, (), None, 10_000, 0.0, None, None)
    except ConfigurationError as exc:
        log_once("default-config", "wideevents: %s; falling back to stdout JSON lines", exc)
        from .sinks import StdoutSink

        return Pipeline(sinks=[StdoutSink()],
                        static_fields=lambda: static_fields(default_service_name(None, {})))


def active_pipeline() -> Pipeline:
    """The installed pipeline, building the default one on first use."""
    p = _active
    if p is not None:
        return p
    return _install_default()


def _install_default() -> Pipeline:
    global _active
    with _lock:
        if _active is None:
            _active = _default_pipeline()
            try:
                _enable_otel(None)
            except Exception:  # noqa: BLE001 - the default pipeline never raises
                pass
            _register_atexit()
        return _active


def swap_pipeline(pipeline: Pipeline | None) -> Pipeline | None:
    """Install ``pipeline`` without shutting the previous one down; return the previous."""
    global _active
    with _lock:
        previous, _active = _active, pipeline
        return previous


def _register_atexit() -> None:
    global _atexit_registered
    if not _atexit_registered:
        _atexit_registered = True
        atexit.register(_at_exit)


def _at_exit() -> None:
    p = _active
    if p is not None:
        p.shutdown(timeout=_exit_timeout)


def flush(timeout: float = 5.0) -> bool:
    """Deliver every finished event within ``timeout``; True when nothing is pending."""
    p = _active
    return True if p is None else p.flush(timeout)


def shutdown(timeout: float = 5.0) -> bool:
    """Flush and close the sinks within ``timeout``; later events are dropped and counted."""
    p = _active
    return True if p is None else p.shutdown(timeout)


def stats() -> dict[str, Any]:
    """Counters of the active pipeline (see DESIGN section 3 for the shape)."""
    p = _active
    if p is None:
        return {"emitted": 0, "dropped": {}, "sinks": {}, "samplers": {},
                "fields": {"dropped": {}, "truncated": {}}, "errors": {}}
    return p.stats()


def install_signal_handlers(timeout: float = 5.0,
                            signals: Iterable[int] = (signal.SIGTERM, signal.SIGINT)) -> None:
    """On SIGTERM/SIGINT flush within ``timeout``, then run the previous handler.

    Call it from the main thread. With the default previous handler the process then
    ends as it would have (SIGINT raises KeyboardInterrupt; SIGTERM terminates).
    """
    if threading.current_thread() is not threading.main_thread():
        raise ConfigurationError("install_signal_handlers() must be called from the main thread")
    for signum in signals:
        previous = signal.getsignal(signum)

        def handler(num: int, frame: Any, _previous: Any = previous) -> None:
            flush(timeout)
            if callable(_previous):
                _previous(num, frame)
            elif _previous == signal.SIG_IGN:
                return
            else:
                signal.signal(num, signal.SIG_DFL)
                os.kill(os.getpid(), num)

        signal.signal(signum, handler)
