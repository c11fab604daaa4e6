"""The metrics of a ``PrometheusSink``, built on ``prometheus_client``, and the one extension.

**Weighted observations.** ``prometheus_client``'s ``Histogram.observe(v)`` adds 1 to one
bucket and ``v`` to the sum; it takes no weight. An event kept with sample rate N stands
for N events, so :func:`observe_weighted` adds N to the bucket and ``N * v`` to the sum,
through the client's own value objects: a labelled histogram child keeps one value object
per bucket in ``_buckets`` (not cumulative; the count is their total at collection) and
one for the sum in ``_sum``, in the order of ``_upper_bounds`` (``+Inf`` last). Those are
the client's ``values.ValueClass`` (``MutexValue`` in one process, the mmap-backed
``MmapedValue`` under ``PROMETHEUS_MULTIPROC_DIR``), so the same two ``inc`` calls work in
both modes, where ``observe`` itself makes them. The bucket is the first bound ``>= v``, as
``observe`` chooses it. This layout is that of ``prometheus_client/metrics.py``
``Histogram._metric_init`` and ``observe`` in every release of :data:`SUPPORTED`;
tests/sinks/test_prometheus_pinned.py checks, for the installed release, that a weighted
observation exposes exactly what N calls of ``observe`` do, in both modes. A release
outside :data:`SUPPORTED` is refused when the sink is built; a child without that layout
is caught when its series is created (counted as ``export_error``, logged once).

**Shared metrics.** One set of metrics per (registry, namespace): a second sink with the
same settings (``configure()`` called again) reuses it, with its series and its
cardinality count; different settings under the same names are a configuration error.

**Forks.** The client's value objects each hold a lock (one lock for all of them in
multiprocess mode). A process forked while the worker holds one would start with it held
forever: its next increment, and its ``/metrics`` page, would hang. Exports therefore run
under the set's lock, which ``os.fork()`` takes first: it asks for it (``fork_wanted``),
the exporting thread hands it over between two events and waits for the fork to be done,
so a busy worker cannot starve the fork (a plain lock is not fair). The fork waits at
most 2 s for it.
"""

from __future__ import annotations

import importlib.metadata
import os
import threading
import weakref
from bisect import bisect_left
from collections.abc import Callable, Sequence
from typing import Any

import prometheus_client
from prometheus_client import values as _values

from ..._core.normalize import fix_surrogates
from ..._errors import ConfigurationError
from ._spec import OTHER, Spec

__all__ = ["SUPPORTED", "Entry", "MetricSet", "check_multiprocess_dir", "client_version",
           "metric_set", "multiprocess_mode", "observe_weighted"]

SUPPORTED = ((0, 17), (1, 0))  # [from, to): releases whose Histogram layout is checked
INF = float("inf")
_FORK_WAIT = 2.0


def client_version() -> str:
    try:
        return importlib.metadata.version("prometheus-client")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _check_version(text: str) -> None:
    try:
        parts = tuple(int(p) for p in text.split(".")[:2])
    except ValueError:
        return  # a development build: the layout check at the first series still applies
    low, high = SUPPORTED
    if not low <= parts < high:
        raise ConfigurationError(
            f"PrometheusSink supports prometheus-client >={low[0]}.{low[1]},<{high[0]}.{high[1]}"
            f" (installed: {text}); install a supported release: "
            f"pip install 'prometheus-client>={low[0]}.{low[1]},<{high[0]}.{high[1]}'")


def multiprocess_mode() -> bool:
    """Whether the client chose its mmap-backed values (``PROMETHEUS_MULTIPROC_DIR`` was set
    when ``prometheus_client`` was first imported)."""
    return bool(getattr(_values.ValueClass, "_multiprocess", False))


def check_multiprocess_dir() -> None:
    """In multiprocess mode, the directory must exist when the sink is built: the client
    would only fail at the first labelled increment, on the worker."""
    if not multiprocess_mode():
        return
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get(
        "prometheus_multiproc_dir", "")
    if not os.path.isdir(path):
        raise ConfigurationError(
            f"PROMETHEUS_MULTIPROC_DIR={path!r} is not a directory: create it (empty) before "
            "the application starts, e.g. mkdir -p and clear it at each deployment "
            "(prometheus_client multiprocess mode; docs/prometheus.md)")


def observe_weighted(buckets: Sequence[Any], total: Any, bounds: Sequence[float],
                     value: float, weight: int) -> None:
    """``weight`` calls of ``Histogram.observe(value)`` at the cost of one (module doc)."""
    buckets[bisect_left(bounds, value)].inc(weight)
    total.inc(value * weight)


def _layout(child: Any, bounds: Sequence[float]) -> tuple[list[Any], Any]:
    """The bucket and sum value objects of a histogram child, checked (module doc)."""
    buckets = getattr(child, "_buckets", None)
    total = getattr(child, "_sum", None)
    if (type(buckets) is not list or len(buckets) != len(bounds)
            or list(getattr(child, "_upper_bounds", ())) != list(bounds)
            or not all(callable(getattr(b, "inc", None)) for b in (*buckets, total))):
        raise RuntimeError(
            f"prometheus-client {client_version()}: a Histogram child has not the layout "
            "PrometheusSink extends (_buckets, _sum, _upper_bounds); install "
            f"prometheus-client>={SUPPORTED[0][0]}.{SUPPORTED[0][1]},"
            f"<{SUPPORTED[1][0]}.{SUPPORTED[1][1]}")
    return buckets, total


class Entry:
    """One label combination's cached children: the counter and each histogram's
    ``(buckets, sum)`` value objects, in the order of ``MetricSet.bounds``."""

    __slots__ = ("count", "hists")

    def __init__(self, count: Callable[[float], None],
                 hists: tuple[tuple[list[Any], Any], ...]) -> None:
        self.count = count
        self.hists = hists


class MetricSet:
    """The counter and histograms of one (registry, namespace), and their series."""

    def __init__(self, spec: Spec, registry: Any) -> None:
        self.spec = spec
        self.registry = registry
        self.lock = threading.Lock()  # held while exporting (module doc: forks)
        self.fork_wanted = False
        self.fork_done = threading.Event()
        self.fork_done.set()
        self.entries: dict[tuple[str, ...], Entry] = {}
        self.overflow: Entry | None = None
        # Fields observed, in order: duration_ms (in seconds), then the extra histograms.
        self.fields: tuple[str, ...] = ("duration_ms", *(f for f, _, _ in spec.histograms))
        self.bounds: tuple[tuple[float, ...], ...] = (
            (*spec.buckets, INF), *((*b, INF) for _, _, b in spec.histograms))
        names = spec.label_names
        ns = spec.namespace
        made: list[Any] = []
        try:
            made.append(prometheus_client.Counter(
                f"{ns}_events", "Events, each counted as many times as its sample rate "
                "(wideevents PrometheusSink).", names, registry=registry))
            made.append(prometheus_client.Histogram(
                f"{ns}_event_duration_seconds", "Event duration_ms in seconds, weighted by "
                "sample rate (wideevents PrometheusSink).", names, registry=registry,
                buckets=spec.buckets))
            for field, metric, bounds in spec.histograms:
                made.append(prometheus_client.Histogram(
                    metric, f"Event field {field}, weighted by sample rate (wideevents "
                    "PrometheusSink).", names, registry=registry, buckets=bounds))
        except ValueError as exc:  # the client's DuplicateTimeseries is a ValueError
            for metric in made:
                if registry is not None:
                    registry.unregister(metric)
            raise ConfigurationError(
                f"PrometheusSink: a metric named like {', '.join(spec.metric_names)} is "
                f"already registered in this registry ({exc}); give the sink another "
                "namespace= or its own registry=prometheus_client.CollectorRegistry()") from None
        self.metrics = tuple(made)

    def yield_to_fork(self) -> None:
        """Between two events, when a fork waits for ``lock``: hand it over until the fork
        is done (the caller holds ``lock`` before and after)."""
        self.lock.release()
        try:
            self.fork_done.wait(_FORK_WAIT)
        finally:
            self.lock.acquire()

    def entry(self, values: tuple[str, ...], limit: int) -> tuple[Entry, bool]:
        """The cached children of ``values``, created when there are fewer than ``limit``
        combinations; else the overflow children. ``(entry, overflowed)``; the caller holds
        ``lock``."""
        found = self.entries.get(values)
        if found is not None:
            return found, False
        if not all(v.isascii() for v in values):
            # A lone surrogate cannot be encoded: the scrape of the whole registry would
            # fail. Checked here, once per new combination (such keys are never cached).
            values = tuple(map(fix_surrogates, values))
            found = self.entries.get(values)
            if found is not None:
                return found, False
        if len(self.entries) >= limit:
            if self.overflow is None:
                self.overflow = self._make((OTHER,) * len(values))
            return self.overflow, True
        made = self._make(values)
        self.entries[values] = made
        return made, False

    def _make(self, values: tuple[str, ...]) -> Entry:
        children = [m.labels(*values) if values else m for m in self.metrics]
        layouts = tuple(_layout(c, b) for c, b in zip(children[1:], self.bounds))
        return Entry(children[0].inc, layouts)


_sets: weakref.WeakKeyDictionary[Any, dict[str, MetricSet]] = weakref.WeakKeyDictionary()
_sets_lock = threading.Lock()
_live: weakref.WeakSet[MetricSet] = weakref.WeakSet()


def metric_set(spec: Spec, registry: Any) -> MetricSet:
    """The metrics of ``spec`` in ``registry`` (``None``: the client's default registry),
    created once per (registry, namespace) and shared (module doc)."""
    _check_version(client_version())
    check_multiprocess_dir()
    if registry is None:
        registry = prometheus_client.REGISTRY
    elif not callable(getattr(registry, "register", None)):
        raise ConfigurationError(
            f"PrometheusSink(registry={type(registry).__name__} object): use a "
            "prometheus_client.CollectorRegistry (or leave it out for the default registry)")
    with _sets_lock:
        by_namespace = _sets.setdefault(registry, {})
        found = by_namespace.get(spec.namespace)
        if found is not None:
            if found.spec.key != spec.key:
                raise ConfigurationError(
                    f"PrometheusSink: namespace {spec.namespace!r} is already measured in this "
                    "registry with other labels, buckets or histograms (by an earlier "
                    "PrometheusSink); use the same settings, or another namespace= or registry=")
            return found
        made = MetricSet(spec, registry)
        by_namespace[spec.namespace] = made
        _live.add(made)
        return made


_held: list[MetricSet] = []


def _before_fork() -> None:
    for ms in list(_live):
        ms.fork_done.clear()
        ms.fork_wanted = True
        if ms.lock.acquire(timeout=_FORK_WAIT):
            _held.append(ms)


def _after_fork_in_parent() -> None:
    for ms in list(_live):
        ms.fork_wanted = False
        ms.fork_done.set()
    while _held:
        _held.pop().lock.release()


def _after_fork_in_child() -> None:
    global _sets_lock
    _sets_lock = threading.Lock()
    _held.clear()
    for ms in list(_live):
        ms.lock = threading.Lock()
        ms.fork_wanted = False
        ms.fork_done = threading.Event()
        ms.fork_done.set()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                        after_in_child=_after_fork_in_child)
