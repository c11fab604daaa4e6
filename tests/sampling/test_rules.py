"""RulesSampler: ordered rules over the query's filter operators, first match wins."""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from typing import Any

import pytest

from tests.support.sampling import trace_ids
from wideevents._errors import ConfigurationError
from wideevents.sampling import (
    DeterministicSampler,
    DynamicSampler,
    RulesSampler,
    keep_errors,
    keep_input_violations,
    keep_nonfinite,
    keep_shadow_disagreement,
    keep_slower_than,
    keep_status_at_least,
)


class RecordingSampler:
    """A fake nested sampler: returns a fixed rate and remembers what it saw."""

    def __init__(self, rate: int, name: str = "recording") -> None:
        self.rate = rate
        self.name = name
        self.seen: list[Mapping[str, Any]] = []
        self.closed = 0
        self.forked = 0

    def __call__(self, event: Mapping[str, Any]) -> int:
        self.seen.append(event)
        return self.rate

    def stats(self) -> dict[str, Any]:
        return {"seen": len(self.seen)}

    def close(self) -> None:
        self.closed += 1

    def reset_after_fork(self) -> None:
        self.forked += 1


def synthetic_events(n: int, seed: int) -> list[dict[str, Any]]:
    """Traffic with ~2% errors, some 5xx, slow, non-finite, out-of-range and shadow rows."""
    rng = random.Random(seed)
    ids = trace_ids(n, seed)
    events = []
    for trace_id in ids:
        event: dict[str, Any] = {
            "trace.trace_id": trace_id,
            "name": "POST /predict",
            "duration_ms": rng.expovariate(1 / 40),
            "http.response.status_code": rng.choices([200, 404, 500, 503], [95, 2, 2, 1])[0],
        }
        if rng.random() < 0.02:
            event["error"] = True
        if rng.random() < 0.01:
            event["data.oor_count"] = rng.randint(1, 3)
        if rng.random() < 0.1:
            event["shadow.top1_same"] = rng.random() < 0.9
        events.append(event)
    return events


def test_keep_errors_keeps_every_error_event() -> None:
    """Over 100,000 events every error event is kept at rate 1; the weighted count of
    the whole stream stays within 5%."""
    events = synthetic_events(100_000, seed=1)
    sampler = RulesSampler([keep_errors()], default=DeterministicSampler(20))
    rates = [sampler(e) for e in events]
    errors = [r for e, r in zip(events, rates, strict=True) if e.get("error") is True]
    assert (True, [1] * len(errors)) == (len(errors) > 1000, errors)
    assert len(events) == pytest.approx(sum(rates), rel=0.05)


def test_first_match_wins_against_a_reference() -> None:
    """Each event gets the rate of the first rule a plain-Python reference says matches."""
    rules = [
        {"conditions": [{"column": "error", "op": "=", "value": True}], "sample_rate": 1},
        {
            "conditions": [
                {"column": "http.response.status_code", "op": ">=", "value": 500},
                {"column": "duration_ms", "op": ">", "value": 100},
            ],
            "combination": "OR",
            "sample_rate": 2,
        },
        {
            "conditions": [{"column": "http.response.status_code", "op": "=", "value": 404}],
            "sample_rate": "drop",
        },
        {"conditions": [{"column": "shadow.top1_same", "op": "exists"}], "sample_rate": 3},
    ]
    reference = [
        (lambda e: e.get("error") is True, 1),
        (lambda e: e["http.response.status_code"] >= 500 or e["duration_ms"] > 100, 2),
        (lambda e: e["http.response.status_code"] == 404, 0),
        (lambda e: "shadow.top1_same" in e, 3),
    ]

    def expected_rate(event: dict[str, Any]) -> int:
        for matches, rate in reference:
            if matches(event):
                return rate
        return 7

    events = synthetic_events(20_000, seed=2)
    sampler = RulesSampler(rules, default=7)
    assert [expected_rate(e) for e in events] == [sampler(e) for e in events]


def test_no_match_default_none_keeps_at_rate_one() -> None:
    """With default=None an event no rule matches is kept at rate 1."""
    sampler = RulesSampler([keep_errors(sample_rate=1)])
    assert [1, 1] == [sampler({"error": True}), sampler({"name": "ok"})]


def test_nested_sampler_sees_only_its_events() -> None:
    """A sampler as sample_rate decides only the events routed to it; its answer is used."""
    slow = RecordingSampler(5, name="slow")
    rest = RecordingSampler(0, name="rest")
    sampler = RulesSampler([keep_slower_than(100, sample_rate=slow)], default=rest)  # type: ignore[arg-type]
    events = [{"duration_ms": d} for d in (50, 150, 99.9, 100, 101, 3000)]
    rates = [sampler(e) for e in events]
    assert ([0, 5, 0, 0, 5, 5], [150, 101, 3000], [50, 99.9, 100]) == (
        rates,
        [e["duration_ms"] for e in slow.seen],
        [e["duration_ms"] for e in rest.seen],
    )


@pytest.mark.parametrize(
    ("rule", "event", "expected"),
    [
        (keep_errors(), {"error": True}, True),
        (keep_errors(), {"error": False}, False),
        (keep_errors(), {"error": "true"}, False),  # a string is not a boolean
        (keep_errors(), {}, False),
        (keep_status_at_least(500), {"http.response.status_code": 500}, True),
        (keep_status_at_least(500), {"http.response.status_code": 499}, False),
        (keep_status_at_least(500), {"http.response.status_code": "503"}, False),
        (keep_status_at_least(400), {"http.response.status_code": 404}, True),
        (keep_slower_than(250), {"duration_ms": 250.5}, True),
        (keep_slower_than(250), {"duration_ms": 250}, False),
        (keep_slower_than(250), {"duration_ms": None}, False),
        (keep_nonfinite(), {"meta.nonfinite_count": 2}, True),
        (keep_nonfinite(), {"meta.nonfinite_count": 0}, False),
        (keep_nonfinite(), {"prediction.nonfinite": True}, True),
        (keep_nonfinite(), {"prediction.nonfinite": False, "meta.nonfinite_count": 0}, False),
        (keep_input_violations(), {"data.oor_count": 1}, True),
        (keep_input_violations(), {"data.oor_count": 0}, False),
        (keep_input_violations(), {}, False),
        (keep_shadow_disagreement(), {"shadow.top1_same": False}, True),
        (keep_shadow_disagreement(), {"shadow.top1_same": True}, False),
        (keep_shadow_disagreement(), {}, False),
        (keep_shadow_disagreement(), {"shadow.top1_same": 0}, False),  # 0 is not false
    ],
)
def test_ready_made_rules(rule: dict[str, Any], event: dict[str, Any], expected: bool) -> None:
    """Each ready-made rule matches exactly the events its name promises."""
    sampler = RulesSampler([rule], default="drop")
    assert (1 if expected else 0) == sampler(event)


def test_wrong_types_make_conditions_false_never_raise() -> None:
    """A field of the wrong type makes its condition false; the default decides."""
    sampler = RulesSampler(
        [keep_slower_than(100), keep_status_at_least(500), keep_errors()], default="drop"
    )
    odd = [
        {"duration_ms": "slow", "http.response.status_code": [500], "error": 1},
        {"duration_ms": {"a": 1}, "http.response.status_code": None, "error": "yes"},
        {"duration_ms": True, "http.response.status_code": "500", "error": None},
    ]
    assert ([0, 0, 0], 0) == ([sampler(e) for e in odd], sampler.stats()["errors"])


def test_negative_operators_match_missing_columns() -> None:
    """As in the query engine, != matches an event without the column; = does not."""
    sampler = RulesSampler(
        [
            {
                "conditions": [{"column": "model.stage", "op": "!=", "value": "canary"}],
                "sample_rate": 4,
            }
        ],
        default="drop",
    )
    assert [4, 0, 4] == [
        sampler({}),
        sampler({"model.stage": "canary"}),
        sampler({"model.stage": "prod"}),
    ]


def test_stats_per_rule() -> None:
    """stats() counts matched, kept and dropped per rule and for the default."""
    events = synthetic_events(10_000, seed=3)
    sampler = RulesSampler([keep_errors(), keep_input_violations()], default="drop")
    for e in events:
        sampler(e)
    errors = sum(1 for e in events if e.get("error") is True)
    oor = sum(1 for e in events if e.get("error") is not True and "data.oor_count" in e)
    rest = len(events) - errors - oor
    rules = sampler.stats()["rules"]
    assert {
        "keep_errors": (errors, errors, 0),
        "keep_input_violations": (oor, oor, 0),
        "default": (rest, 0, rest),
    } == {k: (v["matched"], v["kept"], v["dropped"]) for k, v in rules.items()}
    assert (errors + oor, rest) == (sampler.stats()["kept"], sampler.stats()["dropped"])
    json.dumps(sampler.stats())


def test_nested_stats_close_and_fork_are_passed_on() -> None:
    """Nested samplers' stats appear under their rule; close and fork reach each once."""
    nested = RecordingSampler(2)
    sampler = RulesSampler(
        [keep_errors(sample_rate=nested), keep_slower_than(10, sample_rate=nested)],  # type: ignore[arg-type]
        default=nested,
    )
    sampler({"error": True})
    sampler.reset_after_fork()
    sampler.close()
    stats = sampler.stats()["rules"]["keep_errors"]
    assert ({"seen": 1}, "recording", 1, 1) == (
        stats["sampler_stats"],
        stats["sampler"],
        nested.closed,
        nested.forked,
    )


def test_close_stops_a_nested_dynamic_sampler() -> None:
    """Closing the rules sampler stops a nested DynamicSampler's thread."""
    dynamic = DynamicSampler(10, ["name"], adjustment_interval=0.05, name="nested-dyn")
    sampler = RulesSampler([keep_errors()], default=dynamic)
    sampler({"name": "x"})
    assert (True, 0) == (
        sampler.close(),
        sum(1 for t in __import__("threading").enumerate() if t.name == "wideevents-nested-dyn"),
    )


def test_failing_nested_sampler_keeps_the_event() -> None:
    """A nested sampler that raises or returns a non-int: the event is kept at rate 1."""

    def boom(event: Mapping[str, Any]) -> int:
        raise RuntimeError("boom")

    def weird(event: Mapping[str, Any]) -> Any:
        return "ten"

    sampler = RulesSampler([keep_errors(sample_rate=boom)], default=weird)  # type: ignore[arg-type]
    assert ([1, 1], 2) == ([sampler({"error": True}), sampler({})], sampler.stats()["errors"])


@pytest.mark.parametrize(
    ("rules", "fragment"),
    [
        (
            [{"conditions": [{"column": "x", "op": "~=", "value": 1}], "sample_rate": 1}],
            "unknown operator",
        ),
        ([{"conditions": [], "sample_rate": 1}], "non-empty list of 'conditions'"),
        ([{"sample_rate": 1}], "non-empty list of 'conditions'"),
        (
            [
                {
                    "conditions": [{"column": "duration_ms", "op": ">", "value": [1]}],
                    "sample_rate": 1,
                }
            ],
            "needs a value",
        ),
        (
            [
                {
                    "conditions": [{"column": "duration_ms", "op": ">", "value": None}],
                    "sample_rate": 1,
                }
            ],
            "needs a 'value'",
        ),
        (
            [
                {
                    "conditions": [{"column": "duration_ms", "op": "<", "value": True}],
                    "sample_rate": 1,
                }
            ],
            "a number or a string",
        ),
        ([{"conditions": [{"column": "error", "op": "exists"}], "sample_rate": 0}], "'drop'"),
        (
            [{"conditions": [{"column": "error", "op": "exists"}], "sample_rate": 2.5}],
            "whole number",
        ),
        ([{"conditions": [{"column": "error", "op": "exists"}], "sample_rate": "keep"}], "'drop'"),
        ([{"conditions": [{"column": "error", "op": "exists"}]}], "needs a 'sample_rate'"),
        ([{"conditions": [{"column": "error", "op": "exists"}], "samplerate": 1}], "unknown key"),
        (
            [
                {
                    "conditions": [{"column": "error", "op": "exists"}],
                    "sample_rate": 1,
                    "combination": "XOR",
                }
            ],
            "'AND' or 'OR'",
        ),
        (["keep errors"], "must be a dict"),
        ({"conditions": []}, "list of rule dicts"),
    ],
)
def test_bad_rules(rules: Any, fragment: str) -> None:
    """Bad rules raise ConfigurationError when the sampler is built, saying how to fix it."""
    with pytest.raises(ConfigurationError) as info:
        RulesSampler(rules)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (lambda: keep_slower_than("fast"), "ms must be a finite number"),  # type: ignore[arg-type]
        (lambda: keep_status_at_least(True), "status must be a finite number"),  # type: ignore[arg-type]
        (lambda: RulesSampler([keep_errors(sample_rate=0)]), "'drop'"),
        (lambda: RulesSampler([], default=-1), "default"),
    ],
)
def test_bad_ready_made_arguments(make: Any, fragment: str) -> None:
    """Non-numeric thresholds and bad rates in ready-made rules fail at configuration."""
    with pytest.raises(ConfigurationError) as info:
        make()
    assert fragment in str(info.value)


def test_rule_names_in_errors_and_unique_in_stats() -> None:
    """Errors name the rule index; duplicate rule names get a suffix in stats()."""
    with pytest.raises(ConfigurationError) as info:
        RulesSampler(
            [keep_errors(), {"conditions": [{"column": "a", "op": "?"}], "sample_rate": 1}]
        )
    sampler = RulesSampler([keep_errors(), keep_errors(sample_rate=3)])
    assert ("rules[1]" in str(info.value), ["keep_errors", "keep_errors#2", "default"]) == (
        True,
        list(sampler.stats()["rules"]),
    )
