"""``configure()``: the one place that wires the pipeline, its sinks and the process.

``configure()`` validates everything (arguments and the environment it reads) and raises
:class:`ConfigurationError` with a fix-it message, then fills the core's pipeline slot
(:mod:`wideevents._core.runtime`). Without it, the first event builds the default
pipeline from the environment (the factory registered below); a bad variable there is
logged once and the default falls back to stdout JSON lines, never raised.
"""

from __future__ import annotations

import math
import sys
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ._core import hooks, lifecycle, runtime
from ._core.dynamic import DynamicFields
from ._core.env import env
from ._core.limits import Limits
from ._core.log import log_once
from ._core.pipeline import DEFAULT_QUEUE_BYTES, Pipeline
from ._core.redact import DEFAULT_REDACT, Redactor
from ._core.resource import detect as _detect_resource
from ._core.secrets import shown
from ._core.service import default_service_name, parse_resource_attributes, static_fields
from ._errors import ConfigurationError
from .ml import _bind as _ml_bind
from .ml import _context as _ml_context

__all__ = ["configure", "sinks_from_spec", "sinks_from_specs"]

_configure_lock = threading.Lock()  # one configure() at a time: none orphans another's pipeline

SINK_SPEC_HELP = (
    "use 'stdout', 'stdout:pretty', 'file:PATH' (e.g. file:events.jsonl, {pid} allowed), "
    "'honeycomb', 'otlp', 'prometheus' or 'none'; several separated by commas "
    "(stdout,file:events.jsonl)"
)


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
            raise ConfigurationError(f"sink {shown(spec)} has no path: {SINK_SPEC_HELP}")
        return [_sinks.FileSink(arg.strip())]
    if kind in ("honeycomb", "otlp", "prometheus"):
        if sep:  # what follows is never echoed: people paste API keys there
            raise ConfigurationError(
                f"sink {kind!r} takes nothing after ':' (the HONEYCOMB_* or "
                f"OTEL_EXPORTER_OTLP_* variables configure the network sinks; "
                f"PrometheusSink(...) in code for other metrics): {SINK_SPEC_HELP}")
        cls_name = {"honeycomb": "HoneycombSink", "otlp": "OTLPSink",
                    "prometheus": "PrometheusSink"}[kind]
        try:
            cls = getattr(_sinks, cls_name)
        except AttributeError:
            raise ConfigurationError(
                f"sink {kind!r} is not available in this version of wideevents; {SINK_SPEC_HELP}"
            ) from None
        return [cls()]
    # Masked: the value may be an API key set in the wrong variable.
    raise ConfigurationError(f"unknown sink {shown(kind)}: {SINK_SPEC_HELP}")


def sinks_from_specs(text: str) -> list[Any]:
    """Sinks for a comma-separated list of specs (``"stdout,file:events.jsonl"``), as
    ``configure(sinks=...)``, ``WIDEEVENTS_SINK`` and ``--sink`` take them."""
    return [s for part in text.split(",") for s in sinks_from_spec(part)]


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
    redact: Iterable[str] | str | None,
    bind: bool = True,
    self_report_interval: float | None = None,
    capture_stacktrace: bool = False,
    queue_bytes: int = DEFAULT_QUEUE_BYTES,
    start: bool = True,
    dynamic_fields: Mapping[str, Callable[[], Any]] | None = None,
    detect_resource: bool = True,
) -> Pipeline:
    if service_name is not None and (not isinstance(service_name, str) or not service_name):
        raise ConfigurationError(f"service_name={service_name!r}: use a non-empty string")
    if not isinstance(queue_size, int) or isinstance(queue_size, bool) or queue_size < 1:
        raise ConfigurationError(
            f"queue_size={queue_size!r}: use a positive integer (default 10_000 events)"
        )
    if (not isinstance(queue_bytes, int) or isinstance(queue_bytes, bool)
            or queue_bytes < 1024 * 1024):
        raise ConfigurationError(
            f"queue_bytes={queue_bytes!r}: use an integer of at least 1 MiB (default 64 MiB, "
            "the estimated bytes queued events may hold)")
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
    parse_resource_attributes(env("OTEL_RESOURCE_ATTRIBUTES"), strict=True)
    dynamic = _dynamic_fields(dynamic_fields)
    if type(detect_resource) is not bool:
        raise ConfigurationError(
            f"detect_resource={detect_resource!r}: pass True (the default: container, "
            "Kubernetes, cloud and runtime fields from files and variables) or False")
    if sampler is None:
        sampler = _sampler_from_env()
    if sinks is None:
        spec = env("WIDEEVENTS_SINK")
        try:
            sink_list = sinks_from_specs(spec) if spec else sinks_from_spec("stdout")
        except ConfigurationError as exc:
            raise ConfigurationError(f"environment variable WIDEEVENTS_SINK: {exc}") from None
    elif isinstance(sinks, str):
        sink_list = sinks_from_specs(sinks)
    else:
        sink_list = []
        for s in sinks:
            sink_list.extend(sinks_from_specs(s) if isinstance(s, str) else [_validate_sink(s)])
        seen: set[int] = set()
        for s in sink_list:
            if id(s) in seen:
                raise ConfigurationError(
                    f"the sink {type(s).__name__} is listed twice in sinks=: each event would "
                    "go to it twice; list it once")
            seen.add(id(s))
    name = default_service_name(service_name)
    extra = dict(static) if static else None
    detected = _detect_resource() if detect_resource else None  # once; kept across fork()
    if isinstance(redact, str):  # one name, not its characters
        redact = (redact,)
    patterns = tuple(DEFAULT_REDACT) + tuple(redact or ())
    return Pipeline(
        sinks=sink_list,
        static_fields=lambda: static_fields(name, extra, detected=detected),
        processors=procs,
        sampler=sampler,
        queue_size=queue_size,
        queue_bytes=queue_bytes,
        enqueue_timeout=float(enqueue_timeout),
        limits=limits,
        redactor=Redactor(patterns),
        bind=bind,
        self_report_interval=(None if self_report_interval is None
                              else float(self_report_interval)),
        capture_stacktrace=capture_stacktrace,
        start=start,
        dynamic_fields=dynamic,
    )


# Set by the pipeline itself: a dynamic field of that name would be overwritten or clash.
_RESERVED = frozenset({"name", "timestamp", "duration_ms", "samplerate"})


def _dynamic_fields(fields: Mapping[str, Callable[[], Any]] | None) -> DynamicFields | None:
    """``configure(dynamic_fields=...)`` validated (issue 22); None when there are none."""
    if fields is None:
        return None
    if not isinstance(fields, Mapping):
        raise ConfigurationError(
            f"dynamic_fields={fields!r}: use a dict of field name -> function of no argument, "
            "e.g. {'process.rss_mb': rss_mb}")
    for key, fn in fields.items():
        if not isinstance(key, str) or not key or key in _RESERVED or key.startswith("trace."):
            raise ConfigurationError(
                f"dynamic_fields: {key!r} cannot be a dynamic field name: use a non-empty "
                "string other than name, timestamp, duration_ms, samplerate and trace.*")
        if not callable(fn):
            raise ConfigurationError(
                f"dynamic_fields[{key!r}]={fn!r} is not callable: pass a function of no "
                "argument, called on the request thread when each event starts")
    return DynamicFields(fields) if fields else None


def _sampler_from_env() -> Callable[[dict[str, Any]], int] | None:
    """``WIDEEVENTS_SAMPLE_RATE=N``: a DeterministicSampler(N) when no sampler is given."""
    raw = env("WIDEEVENTS_SAMPLE_RATE").strip()
    if not raw:
        return None
    try:
        rate = int(raw, 10)
    except ValueError:
        rate = 0
    if rate < 1:
        raise ConfigurationError(
            f"environment variable WIDEEVENTS_SAMPLE_RATE={shown(raw, 40)}: use a whole "
            "number >= 1 (keep 1 event in N, by trace id), or unset it")
    from .sampling import DeterministicSampler

    return DeterministicSampler(rate)


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
    redact: Iterable[str] | str | None = None,
    capture_stacktrace: bool = False,
    exit_timeout: float = 2.0,
    otel: bool | None = None,
    self_report_interval: float | None = None,
    queue_bytes: int = DEFAULT_QUEUE_BYTES,
    feedback_key: str | bytes | None = None,
    dynamic_fields: Mapping[str, Callable[[], Any]] | None = None,
    detect_resource: bool = True,
) -> Pipeline:
    """Build and install the process-wide pipeline; raises ConfigurationError when wrong.

    ``sinks`` is a list of sink objects or specs (``"stdout"``, ``"file:events.jsonl"``...),
    or specs separated by commas (``"stdout,file:events.jsonl"``), default
    ``WIDEEVENTS_SINK`` (the same forms) or stdout. ``OTEL_RESOURCE_ATTRIBUTES`` entries
    are static fields of every event (``static_fields`` and ``service_name`` win over
    them). ``redact`` adds names/globs to the default redaction list. ``otel``: correlate
    with OpenTelemetry (active spans become parents, the event's ids become the current
    span context); None means "if the application already imported opentelemetry.trace";
    nothing while ``OTEL_SDK_DISABLED=true``. ``self_report_interval``: every so many
    seconds the worker emits a ``wideevents.stats`` event carrying :func:`stats` flattened
    to ``stats.*`` fields (None: never). ``queue_size`` and ``queue_bytes`` bound the queue
    in events and in estimated bytes (docs/reliability.md, "Limits and defaults").

    The previous pipeline is flushed and shut down (within 2 s); events that finish on it
    afterwards are delivered by the new one. A sink object passed again is flushed, not
    closed, and carries on in the new pipeline. Calls from several threads are serialised.

    ``feedback_key`` (default ``WIDEEVENTS_FEEDBACK_KEY``; at least 16 bytes, the same on
    every host) signs ``ev.feedback_context()`` tokens and verifies them in ``feedback()``.

    ``dynamic_fields`` (``{"process.rss_mb": fn}``): each function is called **on the
    request thread** when each event starts and its value added (an exception is caught
    and counted; ``stats()["dynamic_fields"]`` shows calls, errors and time per field).
    ``detect_resource`` (default True): add the container, Kubernetes, cloud and runtime
    fields found once, from files and variables only (``wideevents._core.resource``).
    With no ``sampler``, ``WIDEEVENTS_SAMPLE_RATE=N`` sets ``DeterministicSampler(N)``.
    """
    if not isinstance(exit_timeout, (int, float)) or not exit_timeout >= 0:
        raise ConfigurationError(f"exit_timeout={exit_timeout!r}: use seconds >= 0")
    signing_key = _ml_context.resolve_key(feedback_key)  # ConfigurationError, key never shown
    pipeline = _build(service_name, sinks, sampler, processors, static_fields, queue_size,
                      enqueue_timeout, limits, redact, bind=False,
                      self_report_interval=self_report_interval,
                      capture_stacktrace=bool(capture_stacktrace), queue_bytes=queue_bytes,
                      start=False, dynamic_fields=dynamic_fields,
                      detect_resource=detect_resource)
    with _configure_lock:
        previous = runtime.current()
        handover = {}
        if previous is not None:
            # First, so that the old pipeline's events reach its own ledgers; events that
            # finish on it from now on go to the new pipeline (held until activated).
            reused = frozenset(id(s) for s in previous.sinks) & frozenset(
                id(s) for s in pipeline.sinks)
            handover = previous.retire(pipeline, timeout=2.0, keep_open=reused)
        pipeline.bind_sinks(handover)
        _enable_otel(otel)
        runtime.install(pipeline)
        _ml_context.install(signing_key)
        pipeline.activate()
        lifecycle.set_exit_timeout(exit_timeout)
        lifecycle.arm()
    return pipeline


def _enable_otel(otel: bool | None) -> None:
    """Turn trace correlation on when asked, or when the app already uses OpenTelemetry."""
    if otel is False:
        if "wideevents._correlation" in sys.modules:
            sys.modules["wideevents._correlation"].disable()
        return
    if otel is None and "opentelemetry.trace" not in sys.modules:
        return  # costs nothing for applications that do not use OpenTelemetry
    try:
        from . import _correlation as _otel

        _otel.enable()
    except ImportError as exc:
        if otel:
            raise ConfigurationError(f"otel=True needs opentelemetry-api: {exc}") from None


def _default_pipeline() -> Pipeline:
    """The pipeline used when nothing was configured: from the environment, never raising."""
    try:
        pipeline = _build(None, None, None, (), None, 10_000, 0.0, None, None)
    except ConfigurationError as exc:
        log_once("default-config", "wideevents: %s; falling back to stdout JSON lines", exc)
        from .sinks import StdoutSink

        pipeline = Pipeline(sinks=[StdoutSink()],
                            static_fields=lambda: static_fields(default_service_name(None, {})))
    try:
        _enable_otel(None)
    except Exception:  # noqa: BLE001 - the default pipeline never raises
        pass
    lifecycle.arm()
    return pipeline


runtime.set_default_factory(_default_pipeline)
hooks.ml_helpers = _ml_bind  # Event.model/scores/... (the core cannot import wideevents.ml)
