"""The one sample-rate rule (docs/sampling.md, "Sample rates"), end to end.

The rule: a number or a decimal string is rounded half up and counts at least 1; anything
else counts as 1. Honeycomb's Events API takes an integer ``samplerate`` (docs.honeycomb.io,
"Events API": "samplerate: an integer"), OTLP's ``SampleRate`` attribute is an integer
(Honeycomb, "Sampling with OpenTelemetry": the ``SampleRate`` attribute), and Honeycomb
counts a missing or 0 rate as 1. Expected values below are written by hand from the rule.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import wideevents
from tests.support.honeycomb_receiver import running as honeycomb_running
from tests.support.otlp_receiver import running as otlp_running
from wideevents._core.samplerate import coerce, sample_rate
from wideevents.query import Query, run_local
from wideevents.sinks import HoneycombSink, MemorySink, OTLPSink, Record
from wideevents.testing import capture_events

# (value, what the rule makes of it; None = "not a number": counts as 1, a field problem)
CASES: list[tuple[Any, int | None]] = [
    (1, 1), (7, 7), (2.6, 3), (2.5, 3), (2.4, 2), (1.49, 1), (0, 1), (0.2, 1), (-3, 1),
    ("2.6", 3), (" 3 ", 3), ("1e2", 100), ("+4", 4), (".5", 1), (2**70, 2**63 - 1),
    (True, None), (False, None), ("abc", None), ("1_000", None), ("", None), ("nan", None),
    (float("nan"), None), (float("inf"), None), ([2], None), ({"r": 2}, None), (None, None),
]


@pytest.mark.parametrize(("value", "expected"), CASES)
def test_the_rule(value: Any, expected: int | None) -> None:
    """coerce() and sample_rate() give what the rule says, for every kind of value."""
    assert (expected, 1 if expected is None else expected) == (coerce(value), sample_rate(value))


def test_the_pipeline_applies_the_rule_before_the_sampler() -> None:
    """Numbers and numeric strings become integers; anything else is removed and counted."""
    with capture_events() as events:
        for value in (2.6, "2.6", 4, "abc", True):
            with wideevents.event("e") as ev:
                ev["samplerate"] = value
        stats = wideevents.stats()
    rates = [e.get("samplerate") for e in events]
    assert [3, 3, 4, None, None] == rates
    assert all(type(r) is int for r in rates if r is not None)
    assert [["samplerate"], ["samplerate"]] == [e["meta.dropped_fields"] for e in events[3:]]
    assert {"bad_samplerate": 2} == stats["fields"]["dropped"]


def test_a_sampler_multiplies_into_the_coerced_rate() -> None:
    """An event kept 1 in "2.6" (= 3) and sampled again at 10 stands for 30."""
    memory = MemorySink()
    wideevents.configure(sinks=[memory], sampler=lambda ev: 10)
    with wideevents.event("e") as ev:
        ev["samplerate"] = "2.6"
    with wideevents.event("f") as ev:
        ev["samplerate"] = "abc"
    assert wideevents.flush(5.0)
    assert [30, 10] == [e["samplerate"] for e in memory.events]


def _write(path: Path, rates: list[Any]) -> None:
    with path.open("w") as f:
        for i, rate in enumerate(rates):
            event: dict[str, Any] = {"i": i}
            if rate is not _MISSING:
                event["samplerate"] = rate
            f.write(json.dumps(event) + "\n")


_MISSING = object()


@pytest.mark.parametrize(("rates", "count"), [
    # one column of several JSON kinds
    ([2.6, "2.6", 2.5, "abc", True, 0, -3, None, _MISSING, "1e2", [1]],
     3 + 3 + 3 + 1 + 1 + 1 + 1 + 1 + 1 + 100 + 1),
    ([2.6, 0.2, 7, 2.5], 3 + 1 + 7 + 3),          # numbers only
    (["2.6", "x", " 3 ", "0"], 3 + 1 + 3 + 1),     # strings only
    ([True, False], 2),                           # booleans only
])
def test_the_local_query_engine_weights_by_the_same_rule(tmp_path: Path, rates: list[Any],
                                                         count: int) -> None:
    """COUNT is the sum of the rule's rates, whatever kinds the file's samplerate holds."""
    path = tmp_path / "events.jsonl"
    _write(path, rates)
    result = run_local(Query(calculations=["COUNT"]), path, cache=False)
    assert count == result.rows[0]["COUNT"]
    # the columnar cache types columns differently: the same answer through it, twice
    cached = [run_local(Query(calculations=["COUNT"]), path, cache=tmp_path / "cache")
              for _ in range(2)]
    assert [count, count] == [r.rows[0]["COUNT"] for r in cached]


def test_honeycomb_and_otlp_receive_integers() -> None:
    """Through the pipeline, both backends get the rule's integer (or no rate at all)."""
    values = [2.6, "2.6", 9, "abc"]
    with honeycomb_running() as hc, otlp_running() as otlp:
        wideevents.configure(service_name="svc", sinks=[
            HoneycombSink(hc.api_key, "ds", hc.url, send_interval=0.01),
            OTLPSink(otlp.url, send_interval=0.01)])
        for i, value in enumerate(values):
            with wideevents.event("e", i=i) as ev:
                ev["samplerate"] = value
        assert wideevents.flush(10.0)
        by_i = {e["data"]["i"]: e for e in hc.received()}
        assert [3, 3, 9, 1] == [by_i[i]["samplerate"] for i in range(4)]
        assert all("samplerate" not in e["data"] or e["data"]["samplerate"] == e["samplerate"]
                   for e in by_i.values())
        got = {r.attributes["i"]: r.attributes.get("SampleRate") for r in otlp.received()}
        assert {0: 3, 1: 3, 2: 9, 3: None} == got


def test_sinks_fed_directly_apply_the_rule() -> None:
    """A record that did not come through the pipeline still goes out with an integer rate."""
    with honeycomb_running() as hc, otlp_running() as otlp:
        records = [Record({"name": "e", "i": i, "samplerate": v},
                          json.dumps({"name": "e", "i": i, "samplerate": v}).encode())
                   for i, v in enumerate([2.6, "2.6", "abc", 0])]
        hsink = HoneycombSink(hc.api_key, "ds", hc.url, send_interval=0.01)
        osink = OTLPSink(otlp.url, send_interval=0.01)
        for sink in (hsink, osink):
            sink.export(records)
            assert sink.close(10.0)
        assert [3, 3, 1, 1] == [e["samplerate"] for e in
                                sorted(hc.received(), key=lambda e: e["data"]["i"])]
        got = {r.attributes["i"]: r.attributes["SampleRate"] for r in otlp.received()}
        assert {0: 3, 1: 3, 2: 1, 3: 1} == got
