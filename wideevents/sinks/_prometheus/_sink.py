"""``PrometheusSink``: a few low-cardinality metrics derived from the events themselves.

Where it sees events: like every sink, on the pipeline's worker, after the user's
processors, the sampler, redaction and limits (docs/architecture.md). So it counts what
was kept, each event as many times as its ``samplerate`` (events the sampler dropped are
represented by the kept ones; events the pipeline dropped, e.g. ``queue_full``, are not
seen and are counted in ``stats()["dropped"]``), and a redacted field is a redacted label.

Per event, with its label values (each field of ``labels``, as text; ``""`` when absent;
``error`` is ``"true"``/``"false"``):

- ``{namespace}_events_total`` += samplerate;
- ``{namespace}_event_duration_seconds``: ``duration_ms / 1000``, weighted by samplerate;
- one histogram per ``histograms`` field (default ``prediction.score``), weighted alike,
  when the field holds a finite number (anything else is skipped and counted in
  :meth:`PrometheusSink.stats` ``["skipped"]``).

Cardinality: at most ``max_series`` label combinations per metric (per process in
multiprocess mode, where each process writes its own file); later combinations go to one
overflow series whose every label is ``__other__``, counted once per event in
``stats()["fields"]["dropped"]["series_limit"]``. A label value longer than 128 characters
is cut to 128, counted per value in ``["label_too_long"]``. The event itself is unchanged
for the other sinks. Nothing raises into the pipeline: an event that cannot be measured is
dropped for this sink as ``export_error`` (logged once).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from ..._core.ledger import Ledger
from ..._core.log import log_once
from ..._core.normalize import safe_repr
from ..._core.record import Record, SinkLedger
from ..._core.samplerate import sample_rate
from ..._core.secrets import mask, shown
from ..._errors import ConfigurationError
from ._spec import MAX_LABEL_CHARS, Spec

__all__ = ["PrometheusSink", "error_value", "label_value"]

INF = float("inf")
EXTRA = "prometheus"
_TRUE = frozenset({"true", "1", "yes"})


def label_value(v: Any) -> str:
    """A field's value as label text: strings as they are, absent or null ``""``, bools
    ``true``/``false``, numbers as written (``200.0`` is ``"200"``), lists and objects as
    compact JSON, anything else its ``repr`` (never raises)."""
    t = type(v)
    if t is str:
        return v  # type: ignore[no-any-return]
    if v is None:
        return ""
    if t is bool:
        return "true" if v else "false"
    if t is int:
        return str(v)
    if t is float:
        # 200.0 and 200 are one status code; other floats as Python writes them.
        return str(int(v)) if v.is_integer() and abs(v) < 2**53 else repr(v)
    if t is list or t is dict or t is tuple:
        try:
            return orjson.dumps(v, default=safe_repr, option=orjson.OPT_NON_STR_KEYS).decode()
        except Exception:  # noqa: BLE001 - an odd value still becomes some label text
            pass
    return safe_repr(v, MAX_LABEL_CHARS)


def error_value(v: Any) -> str:
    """The ``error`` label: ``"true"`` for True, a non-zero number or the text true/1/yes."""
    if v is True:
        return "true"
    if v is None or v is False:
        return "false"
    if type(v) is str:
        return "true" if v.strip().lower() in _TRUE else "false"
    if type(v) in (int, float):
        return "true" if v else "false"
    return "false"


def _max_series(value: object) -> int:
    if type(value) is not int or not 1 <= value <= 1_000_000:
        raise ConfigurationError(
            f"max_series={shown(value)}: use an integer from 1 to 1,000,000 (label "
            "combinations per metric; the default 1000 suits alerting)")
    return value


class PrometheusSink:
    """Counters and histograms for Prometheus from the events (module docstring).

    ``labels``: event fields that become labels (default: ``name``, ``service.name``,
    ``http.route``, ``http.response.status_code``, ``model.name``, ``model.version``,
    ``error``); ``histograms``: ``{field: bucket bounds or None}`` (default
    ``{"prediction.score": [0.1, ..., 1.0]}``); ``buckets``: the duration histogram's bounds
    in seconds (default ``prometheus_client``'s); ``registry``: a
    ``prometheus_client.CollectorRegistry`` (default the client's ``REGISTRY``);
    ``max_series``: label combinations per metric before the ``__other__`` series;
    ``namespace``: the metric names' prefix. Exposition is the application's:
    ``prometheus_client.start_http_server``, ``make_asgi_app()``, ``make_wsgi_app()``
    (docs/prometheus.md). Needs the ``prometheus`` extra.
    """

    name = "prometheus"

    def __init__(self, *, labels: Sequence[str] | None = None,
                 histograms: Mapping[str, Sequence[float] | None] | None = None,
                 buckets: Sequence[float] | None = None, registry: Any = None,
                 max_series: int = 1000, namespace: str = "wideevents") -> None:
        self._max = _max_series(max_series)
        spec = Spec(labels=labels, histograms=histograms, buckets=buckets, namespace=namespace)
        try:
            from . import _metrics
        except ModuleNotFoundError as exc:
            if (exc.name or "").partition(".")[0] != "prometheus_client":
                raise
            raise ConfigurationError(
                f"PrometheusSink needs the '{EXTRA}' extra (prometheus-client is not "
                f"installed): pip install 'wideevents[{EXTRA}]'") from None
        self._set = _metrics.metric_set(spec, registry)
        self._observe = _metrics.observe_weighted
        self._multiprocess = _metrics.multiprocess_mode()
        self.spec = spec
        self._fields = spec.labels
        self._error_at = spec.labels.index("error") if "error" in spec.labels else -1
        self._extra = tuple(zip(self._set.fields[1:], self._set.bounds[1:]))
        self._own_ledger = Ledger(self.name)
        self._ledger: SinkLedger = self._own_ledger
        self._lock = threading.Lock()  # the counters below (read by stats())
        self._overflow = 0
        self._cut = 0
        self._skipped: dict[str, int] = {}
        self._lost = False  # an event was dropped since flush/close last returned

    def __repr__(self) -> str:
        return (f"PrometheusSink(namespace={self.spec.namespace!r}, "
                f"labels={list(self.spec.labels)!r}, max_series={self._max})")

    def bind(self, ledger: SinkLedger) -> None:
        """Report every event's outcome to ``ledger`` (called once by the pipeline)."""
        self._ledger = ledger

    def export(self, batch: Sequence[Record]) -> None:
        """Count and observe each record; never raises."""
        ms = self._set
        fields, err_at, limit, extra = self._fields, self._error_at, self._max, self._extra
        duration_bounds = ms.bounds[0]
        conv, observe = label_value, self._observe
        sent = failed = overflowed = cut = 0
        skipped: dict[str, int] = {}
        ms.lock.acquire()
        try:
            entries = ms.entries
            for record in batch:
                if ms.fork_wanted:
                    ms.yield_to_fork()
                try:
                    f = record.fields
                    rate = f.get("samplerate", 1)
                    if type(rate) is not int:
                        rate = sample_rate(rate)
                    vals = [v if type(v) is str else conv(v) for v in map(f.get, fields)]
                    if err_at >= 0:
                        vals[err_at] = error_value(f.get("error"))
                    if vals and max(map(len, vals)) > MAX_LABEL_CHARS:
                        cut += sum(len(v) > MAX_LABEL_CHARS for v in vals)
                        vals = [v[:MAX_LABEL_CHARS] for v in vals]
                    key = tuple(vals)
                    entry = entries.get(key)
                    if entry is None:
                        entry, over = ms.entry(key, limit)
                        overflowed += over
                    entry.count(rate)
                    hists = entry.hists
                    v = f.get("duration_ms")
                    if v is not None:
                        if (type(v) is float or type(v) is int) and -INF < v < INF:
                            buckets, total = hists[0]
                            observe(buckets, total, duration_bounds, v / 1000.0, rate)
                        else:
                            skipped["duration_ms"] = skipped.get("duration_ms", 0) + 1
                    for i, (field, bounds) in enumerate(extra, 1):
                        v = f.get(field)
                        if v is None:
                            continue
                        if (type(v) is float or type(v) is int) and -INF < v < INF:
                            buckets, total = hists[i]
                            observe(buckets, total, bounds, v, rate)
                        else:
                            skipped[field] = skipped.get(field, 0) + 1
                    sent += 1
                except Exception as exc:  # noqa: BLE001 - counted as export_error, never raised
                    failed += 1
                    log_once(f"prometheus:export:{type(exc).__name__}",
                             "wideevents: PrometheusSink could not measure an event (%s): %s",
                             type(exc).__name__, mask(safe_repr(exc, 1000), 300))
        finally:
            ms.lock.release()
        if overflowed or cut or skipped or failed:
            with self._lock:
                self._overflow += overflowed
                self._cut += cut
                for field, n in skipped.items():
                    self._skipped[field] = self._skipped.get(field, 0) + n
                if failed:
                    self._lost = True
            if overflowed:
                self._ledger.fields_dropped("series_limit", overflowed)
                log_once(f"prometheus:overflow:{self.spec.namespace}",
                         "wideevents: PrometheusSink: more than max_series=%d label "
                         "combinations; new ones are counted under the series whose labels "
                         "are all '__other__' (stats()['fields']['dropped']['series_limit'])",
                         limit)
            if cut:
                self._ledger.fields_dropped("label_too_long", cut)
        if sent:
            self._ledger.sent(sent)
        if failed:
            self._ledger.dropped("export_error", failed)

    def flush(self, timeout: float = 5.0) -> bool:
        """Nothing is held; False once after an event could not be measured."""
        with self._lock:
            lost, self._lost = self._lost, False
        return not lost

    def close(self, timeout: float = 5.0) -> bool:
        """As :meth:`flush`. The metrics stay registered: a later scrape still reads them,
        and a new sink with the same settings continues them."""
        return self.flush(timeout)

    def reset_after_fork(self) -> None:
        """In a forked child: fresh locks (the pipeline then binds the child's ledger). The
        metrics' own locks are renewed by ``_metrics``' fork handler."""
        self._lock = threading.Lock()
        if self._ledger is self._own_ledger:
            self._own_ledger = Ledger(self.name)
            self._ledger = self._own_ledger

    def stats(self) -> dict[str, object]:
        """Series in use, events in the overflow series, label values cut, histogram values
        skipped by field (and outcome counts when no pipeline ledger is bound)."""
        out = self._own_ledger.snapshot() if self._ledger is self._own_ledger else {}
        with self._lock:
            out.update(series=len(self._set.entries), max_series=self._max,
                       overflow=self._overflow, label_too_long=self._cut,
                       skipped=dict(self._skipped), multiprocess=self._multiprocess)
        return out
