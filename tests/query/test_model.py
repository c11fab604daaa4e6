"""Query: Honeycomb's specification as typed objects, validation and JSON round trip."""

from __future__ import annotations

import json
from typing import Any

import pytest

import wideevents.query
from wideevents._errors import ConfigurationError
from wideevents._filter import Condition
from wideevents.query import Calculation, Having, Order, Query

FULL_SPEC: dict[str, Any] = {
    "calculations": [
        {"op": "COUNT"}, {"op": "CONCURRENCY"}, {"op": "SUM", "column": "a"},
        {"op": "AVG", "column": "a"}, {"op": "MIN", "column": "a"}, {"op": "MAX", "column": "a"},
        {"op": "COUNT_DISTINCT", "column": "user.id"},
        *({"op": p, "column": "duration_ms"} for p in (
            "P001", "P01", "P05", "P10", "P20", "P25", "P50", "P75", "P80", "P90", "P95",
            "P99", "P999")),
        {"op": "HEATMAP", "column": "score.top1"},
    ],
    "filters": [
        {"column": "c", "op": op, "value": value} for op, value in (
            ("=", True), ("!=", "x"), (">", 1), (">=", 1.5), ("<", "m"), ("<=", 3),
            ("starts-with", "/v1"), ("does-not-start-with", "/v2"), ("ends-with", "z"),
            ("does-not-end-with", "y"), ("contains", "q"), ("does-not-contain", "r"),
            ("in", [1, "a", False]), ("not-in", ["b"]))
    ] + [{"column": "c", "op": "exists"}, {"column": "c", "op": "does-not-exist"}],
    "filter_combination": "OR",
    "breakdowns": ["model.version", "http.route"],
    "havings": [{"calculate_op": "COUNT", "op": ">", "value": 10},
                {"calculate_op": "P99", "column": "duration_ms", "op": "<=", "value": 250.5}],
    "orders": [{"op": "P99", "column": "duration_ms", "order": "descending"},
               {"column": "model.version", "order": "ascending"}, {"op": "COUNT", "order": "ascending"}],
    "limit": 250,
    "time_range": 3600,
    "start_time": 1_735_689_600,
    "granularity": 60,
}  # fmt: skip


def test_public_surface() -> None:
    """wideevents.query exports exactly the intended names."""
    expected = {
        "Calculation", "HoneycombQueryClient", "Having", "Order", "Query", "QueryError",
        "QueryResult", "QueryTimeout", "query_url", "run_local",
        # issue 19: the analysis commands' Python API (docs/analysis.md)
        "compare", "drift", "calibration", "CompareResult", "DriftResult", "CalibrationResult",
    }  # fmt: skip
    assert expected == set(wideevents.query.__all__)


def test_round_trip_every_field() -> None:
    """from_json(to_json) is the identity, and to_json gives back the spec, on every field."""
    query = Query.from_json(FULL_SPEC)
    assert (FULL_SPEC, query) == (query.to_json(), Query.from_json(json.dumps(query.to_json())))


def test_round_trip_end_time_form() -> None:
    """end_time with time_range (and no start) round-trips too; defaults are omitted."""
    spec = {"calculations": [{"op": "COUNT"}], "time_range": 600, "end_time": 1_735_690_000}
    assert spec == Query.from_json(spec).to_json()
    assert {"calculations": [{"op": "COUNT"}]} == Query().to_json()


def test_convenient_forms() -> None:
    """Text calculations and dict parts normalise to the typed forms."""
    query = Query(
        calculations=["count", "P99( duration_ms )"],
        filters=[{"column": "error", "op": "=", "value": True}],
        havings=[{"calculate_op": "COUNT", "op": ">", "value": 1}],
        orders=[{"op": "COUNT", "order": "descending"}],
        filter_combination="or",
    )
    expected = (
        (Calculation("COUNT"), Calculation("P99", "duration_ms")),
        (Condition("error", "=", True),),
        (Having("COUNT", ">", 1),),
        (Order("COUNT", None, "descending"),),
        "OR",
    )
    assert expected == (
        query.calculations,
        query.filters,
        query.havings,
        query.orders,
        query.filter_combination,
    )
    assert ["COUNT", "P99(duration_ms)"] == [c.key for c in query.calculations]


BAD: list[tuple[dict[str, Any], str]] = [
    ({"calculations": [{"op": "P99"}]}, "P99 needs a column"),
    ({"calculations": ["P99"]}, "P99 needs a column"),
    ({"calculations": [{"op": "CONCURRENCY", "column": "x"}]}, "CONCURRENCY takes no column"),
    ({"calculations": [{"op": "MEDIAN", "column": "x"}]}, "unknown calculation 'MEDIAN'"),
    ({"calculations": ["COUNT", "COUNT"]}, "duplicate calculation"),
    ({"breakdowns": ["a"], "orders": [{"column": "b"}]}, "neither a breakdown nor a calculation"),
    ({"orders": [{"op": "P99", "column": "d"}]}, "not one of the calculations"),
    (
        {"calculations": ["HEATMAP(d)"], "orders": [{"op": "HEATMAP", "column": "d"}]},
        "cannot order by HEATMAP",
    ),
    ({"orders": [{"op": "COUNT", "order": "down"}]}, "'ascending' or 'descending'"),
    ({"filters": [{"column": "a", "op": "like", "value": "x"}]}, "unknown operator 'like'"),
    ({"filter_combination": "XOR"}, "'AND' or 'OR'"),
    (
        {"havings": [{"calculate_op": "P99", "column": "d", "op": ">", "value": 1}]},
        "needs that calculation",
    ),
    ({"havings": [{"calculate_op": "COUNT", "op": "contains", "value": 1}]}, "having op"),
    ({"havings": [{"calculate_op": "COUNT", "op": ">", "value": "10"}]}, "must be a number"),
    ({"time_range": 600, "start_time": 1, "end_time": 500}, "drop one of the three"),
    ({"start_time": 10, "end_time": 5}, "must be before end_time"),
    ({"time_range": 7200, "granularity": 1}, "granularity 1s is out of range for a 7200s window"),
    # Honeycomb accepts T/1000 to T/1 (API reference, "Create a Query": granularity)
    ({"time_range": 7200, "granularity": 7201}, "use between 8 and 7200 seconds"),
    ({"start_time": 0, "end_time": 100, "granularity": 101}, "out of range"),
    ({"limit": 1001}, "limit is at most 1000"),
    ({"limit": 0}, "limit must be an integer >= 1"),
    ({"time_range": -5}, "time_range must be an integer >= 1"),
    ({"breakdowns": ["a", "a"]}, "duplicate breakdown"),
    ({"breakdowns": [f"b{i}" for i in range(101)]}, "at most 100 breakdowns"),
    ({"breakdowns": "model.version"}, "breakdowns must be a list"),
    ({"calculation": [{"op": "COUNT"}]}, "unknown key(s) ['calculation']"),
]


@pytest.mark.parametrize("spec, message", BAD, ids=[m for _, m in BAD])
def test_validation_messages(spec: dict[str, Any], message: str) -> None:
    """Each invalid spec raises ConfigurationError with a precise message."""
    with pytest.raises(ConfigurationError) as info:
        Query.from_json(spec)
    assert message in str(info.value)


def test_not_json() -> None:
    """Text that is not JSON is a ConfigurationError."""
    with pytest.raises(ConfigurationError, match="not valid JSON"):
        Query.from_json("{calculations")


@pytest.mark.parametrize(
    "spec, now, expected",
    [
        ({}, 1000.0, None),
        ({"time_range": 60}, 1000.0, (940.0, 1000.0)),
        ({"start_time": 100}, 1000.0, (100.0, 1000.0)),
        ({"start_time": 100, "time_range": 50}, 1000.0, (100.0, 150.0)),
        ({"end_time": 900, "time_range": 50}, 1000.0, (850.0, 900.0)),
        ({"end_time": 9000}, 1000.0, (1800.0, 9000.0)),
        ({"start_time": 10, "end_time": 20}, 1000.0, (10.0, 20.0)),
    ],
)
def test_window(spec: dict[str, Any], now: float, expected: tuple[float, float] | None) -> None:
    """Time fields resolve to a window relative to now as Honeycomb defines them."""
    assert expected == Query.from_json(spec).window(now)
