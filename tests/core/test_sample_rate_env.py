"""``WIDEEVENTS_SAMPLE_RATE=N`` (issue 22): a deterministic sampler without code, when
``configure()`` is given no sampler.

The expected decisions are computed here from the Beelines' rule (beeline-python
``beeline/trace.py`` ``_should_sample``: SHA-1 of the trace id, the first 4 bytes as a
big-endian unsigned integer, kept when below ``MAX_INT32 / rate``), not read from
wideevents.
"""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import orjson
import pytest

import wideevents
from wideevents._core import runtime
from wideevents.sinks import MemorySink

N = 2_000


def _kept_by_the_beeline_rule(trace_id: str, rate: int) -> bool:
    (value,) = struct.unpack_from(">I", hashlib.sha1(trace_id.encode()).digest())
    return bool(value < (2**32 - 1) / rate)


def _emit(n: int) -> None:
    for _ in range(n):
        with wideevents.event("e"):
            pass


def test_the_variable_sets_a_deterministic_sampler(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rate 4 from the environment: exactly the events the Beeline rule keeps, each with
    samplerate 4, and the sampler shows in stats()."""
    monkeypatch.setenv("WIDEEVENTS_SAMPLE_RATE", " 4 ")
    seen: list[str] = []

    def record(event: dict[str, object]) -> dict[str, object]:
        seen.append(str(event["trace.trace_id"]))  # every event, before the sampler
        return event

    sink = MemorySink(max_events=None)
    wideevents.configure(service_name="svc", sinks=[sink], processors=[record])
    _emit(N)
    assert wideevents.flush(10.0)
    expected = {t for t in seen if _kept_by_the_beeline_rule(t, 4)}
    assert N == len(seen)
    assert expected == {e["trace.trace_id"] for e in sink.events}
    assert {4} == {e["samplerate"] for e in sink.events}
    assert 300 < len(expected) < 700  # sanity: about a quarter
    sampler = wideevents.stats()["samplers"]["DeterministicSampler"]
    assert (4, "trace.trace_id", len(expected), N - len(expected)) == (
        sampler["rate"], sampler["key"], sampler["kept"], sampler["dropped"])


def test_a_sampler_given_to_configure_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    """configure(sampler=...) is used as given: the variable only fills in a missing one."""
    monkeypatch.setenv("WIDEEVENTS_SAMPLE_RATE", "1000")
    sink = MemorySink(max_events=None)
    wideevents.configure(service_name="svc", sinks=[sink], sampler=lambda event: 1)
    _emit(50)
    assert wideevents.flush(5.0)
    assert 50 == len(sink.events)


def test_the_default_pipeline_honours_it(monkeypatch: pytest.MonkeyPatch,
                                         tmp_path: Path) -> None:
    """No configure(): the default pipeline built from the environment samples too."""
    path = tmp_path / "events.jsonl"
    monkeypatch.setenv("WIDEEVENTS_SINK", f"file:{path}")
    monkeypatch.setenv("WIDEEVENTS_SAMPLE_RATE", "1000000")
    _emit(20)
    pipeline = runtime.current()
    assert pipeline is not None and pipeline.flush(5.0)
    kept = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert len(kept) <= 1  # one in a million: 20 events keep none, or by chance one


@pytest.mark.parametrize("raw", ["0", "-3", "1.5", "ten", "4;rm", "1e3"])
def test_a_bad_value_fails_loudly(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    """Not a whole number >= 1: ConfigurationError naming the variable and the fix."""
    monkeypatch.setenv("WIDEEVENTS_SAMPLE_RATE", raw)
    with pytest.raises(wideevents.ConfigurationError,
                       match=r"WIDEEVENTS_SAMPLE_RATE=.*whole number >= 1"):
        wideevents.configure(sinks="none")


def test_unset_or_empty_means_no_sampling(monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty variable is ignored: every event is kept, without samplerate."""
    monkeypatch.setenv("WIDEEVENTS_SAMPLE_RATE", "")
    sink = MemorySink(max_events=None)
    wideevents.configure(service_name="svc", sinks=[sink])
    _emit(30)
    assert wideevents.flush(5.0)
    assert (30, 0) == (len(sink.events), sum("samplerate" in e for e in sink.events))
