"""The wideevents.sampling surface and its use through wideevents.configure(sampler=...)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

import wideevents
from tests.support.sampling import reference_keep
from wideevents import sampling
from wideevents._core import runtime
from wideevents.sampling import (
    DeterministicSampler,
    DynamicSampler,
    RulesSampler,
    keep_errors,
)
from wideevents.sinks import MemorySink


def test_exported_members() -> None:
    """__all__ is exactly the intended public surface."""
    assert [
        "OVERFLOW_KEY",
        "REFINERY_SALT",
        "DeterministicSampler",
        "DynamicSampler",
        "RulesSampler",
        "keep_errors",
        "keep_input_violations",
        "keep_nonfinite",
        "keep_shadow_disagreement",
        "keep_slower_than",
        "keep_status_at_least",
    ] == sampling.__all__


def test_names_default_to_the_class_name() -> None:
    """Each sampler's name (its key in stats()["samplers"]) defaults to its class name."""
    samplers = [
        DeterministicSampler(2),
        DynamicSampler(2, "name", background=False),
        RulesSampler([keep_errors()]),
        DeterministicSampler(2, name="per-user"),
    ]
    assert ["DeterministicSampler", "DynamicSampler", "RulesSampler", "per-user"] == [
        s.name for s in samplers
    ]


def test_stats_are_json_ready() -> None:
    """Every sampler's stats() serialises to JSON after use."""
    samplers = [
        DeterministicSampler(2),
        DynamicSampler(2, ["name", "error"], background=False),
        RulesSampler([keep_errors()], default=DeterministicSampler(3)),
    ]
    for s in samplers:
        for i in range(100):
            s({"trace.trace_id": f"{i:032x}", "name": "x", "error": i % 7 == 0})
    out = json.loads(json.dumps([s.stats() for s in samplers]))
    assert [100, 100, 100] == [o["kept"] + o["dropped"] for o in out]


@pytest.fixture
def memory_pipeline() -> Iterator[MemorySink]:
    """A configured pipeline writing to memory; the previous global pipeline is restored."""
    previous = runtime.swap(None)
    sink = MemorySink()
    try:
        yield sink
    finally:
        wideevents.shutdown(timeout=5)
        runtime.swap(previous)


def test_configure_with_rules_sampler(memory_pipeline: MemorySink) -> None:
    """Through configure(sampler=...): errors kept at samplerate 1, the rest decided by the
    trace id at samplerate 10, and stats()["samplers"] reports the same counts."""
    sampler = RulesSampler([keep_errors()], default=DeterministicSampler(10))
    wideevents.configure(service_name="sampling-test", sinks=[memory_pipeline], sampler=sampler)
    trace_ids: dict[int, str] = {}
    for i in range(2000):
        try:
            with wideevents.event("predict", i=i) as ev:
                trace_ids[i] = ev["trace.trace_id"]
                if i % 25 == 0:
                    raise ValueError("bad input")
        except ValueError:
            pass
    assert wideevents.flush(timeout=10)
    got = {e["i"]: e["samplerate"] for e in memory_pipeline.events}
    expected = {
        i: 1 if i % 25 == 0 else 10
        for i in range(2000)
        if i % 25 == 0 or reference_keep(trace_ids[i], 10)
    }
    stats: dict[str, Any] = wideevents.stats()["samplers"]["RulesSampler"]
    assert expected == got
    assert (len(expected), 2000 - len(expected)) == (stats["kept"], stats["dropped"])


def test_docs_production_example_builds() -> None:
    """The "keep what matters, sample the rest" setup in docs/sampling.md is valid."""
    from wideevents.sampling import (
        keep_input_violations,
        keep_nonfinite,
        keep_shadow_disagreement,
        keep_slower_than,
        keep_status_at_least,
    )

    sampler = RulesSampler(
        [
            keep_errors(),
            keep_status_at_least(500),
            keep_slower_than(1000),
            keep_nonfinite(),
            keep_input_violations(),
            keep_shadow_disagreement(),
            {
                "name": "drop_health",
                "conditions": [{"column": "http.route", "op": "=", "value": "/healthz"}],
                "sample_rate": "drop",
            },
        ],
        default=DynamicSampler(20, ["name", "model.version"], background=False),
    )
    events = [
        {"error": True, "http.route": "/healthz"},
        {"http.route": "/healthz"},
        {"http.route": "/predict", "prediction.nonfinite": True},
    ]
    assert [1, 0, 1] == [sampler(e) for e in events]


def test_nested_sampler_may_return_numpy_integers() -> None:
    """A nested sampler answering with numpy.int64 is taken at its value."""
    import numpy as np

    sampler = RulesSampler([], default=lambda event: np.int64(3))
    assert (3, 0) == (sampler({}), sampler.stats()["errors"])
