"""Configuration: building the pipeline, the default one, and the process-wide controls.

``configure()`` validates everything (arguments and the environment it reads) and raises
:class:`ConfigurationError` with a fix-it message. Without it, the first event builds the
default pipeline from the environment; a bad variable there is logged once and the
default falls back to stdout JSON lines, never raised.
"""

from __future__ import annotations

import atexit
import math
import os
import signal
import sys
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
    if kind in ("honeycomb", "otlp"):
        if sep:  # what follows is never echoed: people paste API keys there
            raise ConfigurationError(
                f"sink {kind!r} takes nothing after ':' (the HONEYCOMB_* or "
                f"OTEL_EXPORTER_OTLP_* variables configure it): {SINK_SPEC_HELP}")
        cls_name = "HoneycombSink" if kind == "honeycomb" else "OTLPSink"
        try:
            cls = getattr(_sinks, cls_name)
        except AttributeError:
            raise ConfigurationError(
                f"sink {kind!r} is not available in this version of wideevents; {SINK_SPEC_HELP}"
            ) from None
        return [cls()]
    # Only a short name is echoed: a long value may be an API key set in the wrong variable.
    shown = repr(kind) if len(kind) <= 16 else f"name of {len(kind)} characters"
    raise ConfigurationError(f"unknown sink {shown}: {SINK_SPEC_HELP}")


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
    self_report_interval: float | None = None,
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
    if self_report_interval is not None and (
            isinstance(self_report_interval, bool)
            or not isinstance(self_report_interval, (int, float))
            or not 0 < self_report_interval < math.inf):
        raise ConfigurationError(
            f"self_report_interval={self_report_interval!r}: use seconds > 0 (e.g. 60) or None "
            "(no wideevents.stats events)")
    parse_resource_attributes(os.environ.get("OTEL_RESOURCE_ATTRIBUTES", ""), strict=True)
    if sinks is None:
        env = os.environ.get("WIDEEVENTS_SINK", "").strip()
        try:
            sink_list = sinks_from_spec(env) if env else sinks_from_spec("stdout")
        except ConfigurationError as exc:
            raise ConfigurationError(f"environment variable WIDEEVENTS_SINK: {exc}") from None
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
        self_report_interval=(None if self_report_interval is None
                              else float(self_report_interval)),
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
    self_report_interval: float | None = None,
) -> Pipeline:
    """Build and install the process-wide pipeline; raises ConfigurationError when wrong.

    ``sinks`` is a list of sink objects or specs (``"stdout"``, ``"file:events.jsonl"``...),
    default ``WIDEEVENTS_SINK`` or stdout. ``redact`` adds names/globs to the default
    redaction list. ``otel``: correlate with OpenTelemetry (active spans become parents, the
    event's ids become the current span context); None means "if the application already
    imported opentelemetry.trace". ``self_report_interval``: every so many seconds the
    worker emits a ``wideevents.stats`` event carrying :func:`stats` flattened to
    ``stats.*`` fields (None: never). The previous pipeline is flushed and shut down
    (within 2 s).
    """
    global _active, _capture_stacktrace, _exit_timeout
    if not isinstance(exit_timeout, (int, float)) or not exit_timeout >= 0:
        raise ConfigurationError(f"exit_timeout={exit_timeout!r}: use seconds >= 0")
    pipeline = _build(service_name, sinks, sampler, processors, static_fields, queue_size,
                      enqueue_timeout, limits, redact, bind=False,
                      self_report_interval=self_report_interval)
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
    _arm_multiprocessing_exit()


def _at_exit() -> None:
    p = _active
    if p is not None:
        p.shutdown(timeout=_exit_timeout)


class _ForkToken:
    """A weak-referenceable key for multiprocessing's after-fork registry."""


_fork_token = _ForkToken()
_mp_armed_pid = 0


def _arm_multiprocessing_exit(_token: object = None) -> None:
    """Shut down at exit from multiprocessing's finalizers too, once per process.

    ``multiprocessing`` ends its fork and forkserver children with ``os._exit()``: atexit
    never runs there, but the finalizers of ``multiprocessing.util`` do (when the target
    returns). A child clears the finalizers it inherits, then runs the after-fork
    callbacks: this function is one, so the child arms itself again.
    """
    global _mp_armed_pid
    util = sys.modules.get("multiprocessing.util")
    if util is None or _mp_armed_pid == os.getpid():
        return
    _mp_armed_pid = os.getpid()
    try:
        util.Finalize(None, _at_exit, exitpriority=0)
        util.register_after_fork(_fork_token, _arm_multiprocessing_exit)
    except Exception as exc:  # noqa: BLE001 - exit flushing is best effort, never fatal
        log_once("mp-finalize", "wideevents: cannot register a multiprocessing exit "
                 "finalizer: %s", exc)


def _before_fork() -> None:
    # multiprocessing may have been imported after configure(): arm before its children fork.
    if _active is not None:
        _arm_multiprocessing_exit()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork)


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
    ends as it would have (SIGINT raises KeyboardInterrupt; SIGTERM terminates). The
    program keeps running while the flush runs on a helper thread; a second signal
    during the flush runs the previous handler at once. Calling it again replaces the
    timeout (handlers are not stacked).
    """
    if threading.current_thread() is not threading.main_thread():
        raise ConfigurationError("install_signal_handlers() must be called from the main thread")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout >= 0:
        raise ConfigurationError(f"install_signal_handlers(timeout={timeout!r}): use seconds >= 0")
    for signum in signals:
        previous = signal.getsignal(signum)
        if isinstance(previous, _FlushThenChain):
            previous = previous.previous
        signal.signal(signum, _FlushThenChain(previous, float(timeout)))


class _FlushThenChain:
    """A signal handler: flush on a helper thread, then deliver the signal again and chain.

    Flushing inside the handler could deadlock: the handler runs on the main thread between
    two bytecodes, possibly while that thread holds the pipeline's lock (in ``finish()``),
    which the flush needs. So the handler only starts the helper and returns; the helper
    flushes, then sends the same signal again, and the handler passes it on.
    """

    def __init__(self, previous: Any, timeout: float) -> None:
        self.previous = previous
        self.timeout = timeout
        self._state = "idle"  # -> "flushing" (helper running) -> "flushed" (signal resent)
        self._cycle = 0

    def __call__(self, num: int, frame: Any) -> None:
        if self._state == "idle":
            self._state = "flushing"
            threading.Thread(target=self._flush_and_resend, args=(num, self._cycle),
                             name="wideevents-signal-flush", daemon=True).start()
            return
        # The helper's resent signal, or a second one during the flush: chain now.
        self._state = "idle"
        self._cycle += 1
        self._chain(num, frame)

    def _flush_and_resend(self, num: int, cycle: int) -> None:
        flush(self.timeout)
        if self._cycle == cycle and self._state == "flushing":
            self._state = "flushed"
            os.kill(os.getpid(), num)

    def _chain(self, num: int, frame: Any) -> None:
        previous = self.previous
        if callable(previous):
            previous(num, frame)
        elif previous == signal.SIG_IGN:
            return
        else:  # SIG_DFL, or a handler installed outside Python (None): the default action
            signal.signal(num, signal.SIG_DFL)
            os.kill(os.getpid(), num)
