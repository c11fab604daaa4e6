"""Helpers for the PrometheusSink tests: exposition read back with prometheus_client's own
parser, records as the pipeline hands them, and the reference the client itself computes
(plain ``Counter.inc`` / ``Histogram.observe`` calls, N of them for a sample rate N)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from wideevents._core.normalize import safe_repr
from wideevents.sinks import Record

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str, prefix: str = "") -> Samples:
    """Every sample of an exposition whose name starts with ``prefix`` (``_created`` ones,
    timestamps of creation, left out), the prefix removed: ``{(name, labels): value}``."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name.startswith(prefix) and not s.name.endswith("_created"):
                out[(s.name[len(prefix):], tuple(sorted(s.labels.items())))] = s.value
    return out


def samples(registry: CollectorRegistry, prefix: str = "") -> Samples:
    return parse(generate_latest(registry).decode(), prefix)


def value(found: Samples, name: str, /, **labels: str) -> float:
    """The one sample named ``name`` whose labels include ``labels``."""
    hits = [v for (n, ls), v in found.items()
            if n == name and set(labels.items()) <= set(ls)]
    assert 1 == len(hits), (name, labels, hits)
    return hits[0]


def record(fields: dict[str, Any]) -> Record:
    """A Record as the pipeline hands it (its JSON is not read by PrometheusSink: ``{}`` for
    fields orjson refuses, such as lone surrogates)."""
    try:
        return Record(fields, orjson.dumps(fields, default=safe_repr))
    except orjson.JSONEncodeError:
        return Record(fields, b"{}")


def reference(registry: CollectorRegistry, namespace: str, label_names: Sequence[str],
              events: Iterable[tuple[dict[str, str], float | None, int]],
              buckets: Sequence[float]) -> None:
    """What prometheus_client itself records for ``events`` = ``(labels, seconds, rate)``:
    ``rate`` calls of ``inc()`` and of ``observe(seconds)`` each."""
    counter = Counter(f"{namespace}_events", "reference", label_names, registry=registry)
    hist = Histogram(f"{namespace}_event_duration_seconds", "reference", label_names,
                     registry=registry, buckets=buckets)
    for labels, seconds, rate in events:
        for _ in range(rate):
            counter.labels(**labels).inc()
            if seconds is not None:
                hist.labels(**labels).observe(seconds)
