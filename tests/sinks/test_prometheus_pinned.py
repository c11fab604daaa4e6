"""The weighted-observation extension, pinned to the supported prometheus-client releases.

``Histogram.observe`` takes no weight, so PrometheusSink adds a sample rate N to the bucket
and N * value to the sum through the client's own value objects
(wideevents/sinks/_prometheus/_metrics.py). These tests check, for the installed release,
that this exposes exactly what N calls of ``observe`` expose (prometheus_client/metrics.py,
``Histogram.observe``), in one process and in multiprocess mode, and that the installed
release is one the package declares."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import prometheus_client
from prometheus_client import CollectorRegistry

from tests.sinks.prometheus_support import record, reference, samples
from tests.support.reliability import child_env
from wideevents.sinks import PrometheusSink
from wideevents.sinks._prometheus import _metrics
from wideevents.sinks._prometheus._spec import DEFAULT_BUCKETS

ROOT = Path(__file__).resolve().parent.parent.parent
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
# Seconds that are exact binary fractions: N * v and v added N times are the same float.
EVENTS = [("v1", 125.0, 3), ("v1", 7.8125, 1), ("v2", 500.0, 7), ("v2", 2000.0, 2),
          ("v1", 31.25, 12), ("v2", 0.0, 5)]


def _declared_range() -> tuple[tuple[int, int], tuple[int, int]]:
    """The prometheus extra's bounds as pyproject.toml declares them."""
    text = (ROOT / "pyproject.toml").read_text()
    found = re.search(r'"prometheus-client>=(\d+)\.(\d+),<(\d+)(?:\.(\d+))?"', text)
    assert found is not None, "pyproject.toml declares no prometheus-client bounds"
    a, b, c, d = found.groups()
    return (int(a), int(b)), (int(c), int(d or 0))


def test_declared_bounds_are_the_checked_ones() -> None:
    """pyproject.toml's prometheus extra allows exactly the releases the sink accepts."""
    assert _metrics.SUPPORTED == _declared_range()


def test_installed_client_is_a_supported_release() -> None:
    """The prometheus-client these tests run against is inside the declared bounds."""
    low, high = _declared_range()
    installed = tuple(int(p) for p in _metrics.client_version().split(".")[:2])
    assert low <= installed < high, installed


def test_default_buckets_are_the_clients() -> None:
    """The duration histogram's default bounds are prometheus_client's DEFAULT_BUCKETS."""
    assert (*DEFAULT_BUCKETS, math.inf) == tuple(prometheus_client.Histogram.DEFAULT_BUCKETS)


def test_weighted_observation_exposes_what_n_observes_do() -> None:
    """Single-process mode: the sink's exposition for events of sample rate N equals the
    client's own after N inc()/observe() calls per event (every bucket, count and sum)."""
    sink_registry, ref_registry = CollectorRegistry(), CollectorRegistry()
    sink = PrometheusSink(labels=["model.version"], buckets=BUCKETS, histograms={},
                          namespace="sink", registry=sink_registry)
    sink.export([record({"model.version": v, "duration_ms": ms, "samplerate": n})
                 for v, ms, n in EVENTS])
    reference(ref_registry, "ref", ["model_version"],
              [({"model_version": v}, ms / 1000.0, n) for v, ms, n in EVENTS], BUCKETS)
    expected = samples(ref_registry, "ref_")
    assert 2 * (len(BUCKETS) + 1 + 2) + 2 == len(expected)  # buckets, count, sum; counters
    assert expected == samples(sink_registry, "sink_")


def test_weighted_observation_in_multiprocess_mode(tmp_path: Path) -> None:
    """Multiprocess mode (PROMETHEUS_MULTIPROC_DIR, mmap-backed values, read back through
    MultiProcessCollector): the sink's samples equal the client's N observe() calls."""
    out = subprocess.run(
        [sys.executable, "-m", "tests.sinks.prometheus_mp_scenario", "weighted"],
        env=child_env(PROMETHEUS_MULTIPROC_DIR=str(tmp_path)), cwd=ROOT,
        capture_output=True, text=True, timeout=120)
    assert 0 == out.returncode, out.stderr
    result = json.loads(out.stdout.splitlines()[-1])
    assert True is result["multiprocess"]
    assert 0 < len(result["ref"])
    assert result["ref"] == result["sink"]
