"""What a ``PrometheusSink`` measures, validated once: labels, histograms, buckets, names.

Nothing here imports ``prometheus_client``: the ``wideevents prometheus rules`` command
and the configuration errors work without the extra.

- Labels are event fields named by the user (an allow-list: no other field ever becomes a
  label). A field's label name is the field with every character outside ``[A-Za-z0-9_]``
  replaced by ``_`` (``service.name`` -> ``service_name``); two fields with the same label
  name, a name Prometheus reserves (``__*``) and ``le`` (the histograms' bucket label) are
  configuration errors.
- Metric names: ``{namespace}_events_total``, ``{namespace}_event_duration_seconds`` and,
  per extra histogram, ``{namespace}_{field as a label name}``.
- Buckets: finite upper bounds in increasing order (``+Inf`` is implied, as
  ``prometheus_client.Histogram`` adds it); ``None`` means the client's default buckets.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..._core.secrets import shown
from ..._errors import ConfigurationError

__all__ = ["DEFAULT_BUCKETS", "DEFAULT_HISTOGRAMS", "DEFAULT_LABELS", "MAX_LABEL_CHARS",
           "OTHER", "SCORE_BUCKETS", "Spec", "label_name", "check_namespace"]

DEFAULT_LABELS: tuple[str, ...] = (
    "name", "service.name", "http.route", "http.response.status_code", "model.name",
    "model.version", "error")
# prometheus_client.Histogram.DEFAULT_BUCKETS without +Inf (checked against the client in
# tests/sinks/test_prometheus_pinned.py), for request latencies in seconds.
DEFAULT_BUCKETS: tuple[float, ...] = (
    .005, .01, .025, .05, .075, .1, .25, .5, .75, 1.0, 2.5, 5.0, 7.5, 10.0)
# A probability (a classifier's top score): finer towards 1, where thresholds live.
SCORE_BUCKETS: tuple[float, ...] = (
    0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
DEFAULT_HISTOGRAMS: dict[str, tuple[float, ...] | None] = {"prediction.score": SCORE_BUCKETS}
MAX_LABEL_CHARS = 128
OTHER = "__other__"
MAX_BUCKETS = 64

_NAMESPACE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
_NOT_NAME = re.compile(r"[^a-zA-Z0-9_]")


def label_name(field: str) -> str:
    """The Prometheus name of ``field`` (a label name, or a metric name's suffix)."""
    name = _NOT_NAME.sub("_", field)
    return "_" + name if name[:1].isdigit() else name


def check_namespace(namespace: object) -> str:
    if not isinstance(namespace, str) or not _NAMESPACE.match(namespace) \
            or namespace.startswith("__"):
        raise ConfigurationError(
            f"namespace={shown(namespace)}: use a Prometheus metric name prefix "
            "([a-zA-Z_][a-zA-Z0-9_]*, not starting with '__'), e.g. 'wideevents' or 'ranker'")
    return namespace


def _buckets(value: object, what: str) -> tuple[float, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ConfigurationError(
            f"{what}={shown(value)}: use a list of increasing upper bounds, e.g. "
            "[0.01, 0.05, 0.1, 0.5, 1.0] (+Inf is added), or None for the default buckets")
    out: list[float] = []
    for b in value:
        if isinstance(b, bool) or not isinstance(b, (int, float)):
            raise ConfigurationError(f"{what}: the bucket bound {shown(b)} is not a number")
        out.append(float(b))
    if out and out[-1] == math.inf:
        out.pop()  # +Inf is always the last bucket
    if not out or len(out) > MAX_BUCKETS:
        raise ConfigurationError(
            f"{what}: use 1 to {MAX_BUCKETS} finite bucket bounds (+Inf is added); got "
            f"{len(out)}")
    if not all(math.isfinite(b) for b in out) or any(a >= b for a, b in zip(out, out[1:])):
        raise ConfigurationError(
            f"{what}={shown(out)}: bucket bounds must be finite and strictly increasing")
    return tuple(out)


def _field(value: object, what: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 200:
        raise ConfigurationError(
            f"{what}: {shown(value)} is not an event field name; use the field's dotted name, "
            "e.g. 'model.version'")
    return value


class Spec:
    """The validated settings of a sink; equal specs can share one set of metrics."""

    __slots__ = ("namespace", "labels", "label_names", "buckets", "histograms", "key")

    def __init__(self, *, labels: Sequence[str] | None, histograms: Mapping[str, Any] | None,
                 buckets: Sequence[float] | None, namespace: str) -> None:
        self.namespace = check_namespace(namespace)
        if labels is None:
            labels = DEFAULT_LABELS
        elif isinstance(labels, (str, bytes)) or not isinstance(labels, Iterable):
            raise ConfigurationError(
                f"labels={shown(labels)}: use a list of event field names, e.g. "
                "['name', 'model.version', 'error']")
        fields = tuple(_field(f, "labels") for f in labels)
        names: dict[str, str] = {}
        for f in fields:
            name = label_name(f)
            if name in names:
                raise ConfigurationError(
                    f"labels: {shown(names[name])} and {shown(f)} would both be the label "
                    f"{name!r}; list one of them")
            if name.startswith("__") or name == "le":
                raise ConfigurationError(
                    f"labels: {shown(f)} would be the label {name!r}, which Prometheus "
                    "reserves (names starting with '__', and 'le' for histogram buckets)")
            names[name] = f
        self.labels = fields
        self.label_names = tuple(names)
        self.buckets = DEFAULT_BUCKETS if buckets is None else _buckets(buckets, "buckets")
        if histograms is None:
            histograms = DEFAULT_HISTOGRAMS
        elif not isinstance(histograms, Mapping):
            raise ConfigurationError(
                f"histograms={shown(histograms)}: use a dict of field -> bucket bounds (or None "
                "for the default buckets), e.g. {'score.top1': [0.1, 0.5, 0.9]}")
        taken = {f"{self.namespace}_events", f"{self.namespace}_event_duration_seconds"}
        hists: list[tuple[str, str, tuple[float, ...]]] = []
        for field, bounds in histograms.items():
            field = _field(field, "histograms")
            metric = f"{self.namespace}_{label_name(field)}"
            if metric in taken or metric.removesuffix("_total") in taken:
                raise ConfigurationError(
                    f"histograms: {shown(field)} would be the metric {metric!r}, which is "
                    "taken; leave it out or use another namespace=")
            taken.add(metric)
            hists.append((field, metric, DEFAULT_BUCKETS if bounds is None
                          else _buckets(bounds, f"histograms[{field!r}]")))
        self.histograms = tuple(hists)
        self.key = (self.labels, self.buckets, self.histograms)

    @property
    def metric_names(self) -> tuple[str, ...]:
        return (f"{self.namespace}_events_total", f"{self.namespace}_event_duration_seconds",
                *(m for _, m, _ in self.histograms))
