"""Query specifications as Honeycomb writes them: RATE ops, names, per-calculation filters,
compare_time_offset_seconds, granularity, and what the local engine refuses (by name).

Sources: Honeycomb API reference, "Create a Query" (POST /1/queries: the fields of a
calculation, ``compare_time_offset_seconds``, granularity "(T/1000...T/1)"); Honeycomb
docs, "Visualize Rate" (RATE_MAX / RATE_AVG / RATE_SUM: "the difference between
subsequent field values after applying the MAX / AVG / SUM operator").
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.support.query import KEY, T0, FakeHoneycomb, rfc3339
from wideevents._errors import ConfigurationError
from wideevents.query import HoneycombQueryClient, Query, run_local


def _write(path: Path, events: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    return path


def _at(seconds: float) -> str:
    """A series bucket's time: RFC 3339 UTC, whole seconds."""
    return rfc3339(T0 + seconds).replace(".000000Z", "Z")


@pytest.fixture
def fake() -> Iterator[FakeHoneycomb]:
    honeycomb = FakeHoneycomb()
    honeycomb.polls_until_complete = 1
    yield honeycomb
    honeycomb.close()


# --- RATE_AVG, RATE_SUM, RATE_MAX --------------------------------------------------------


def test_rate_of_the_documented_counter(tmp_path: Path) -> None:
    """"Visualize Rate": a field with one value every 10 seconds, 100, 150, 210, 280; at a
    granularity of 10 s the rate per bucket is the difference from the bucket before:
    none for the first, then 50, 60, 70; the row holds their average, 60."""
    path = _write(tmp_path / "counter.jsonl", [
        {"timestamp": rfc3339(T0 + 10 * n), "my.field": v} for n, v in enumerate((100, 150, 210, 280))
    ])  # fmt: skip
    query = Query(calculations=["RATE_AVG(my.field)", "RATE_SUM(my.field)", "RATE_MAX(my.field)"],
                  start_time=int(T0), end_time=int(T0) + 40, granularity=10)  # fmt: skip
    result = run_local(query, path, cache=False)
    per_bucket = [None, 50.0, 60.0, 70.0]
    expected_series = [
        {"time": _at(10 * n), "data": {"RATE_AVG(my.field)": r, "RATE_SUM(my.field)": r,
                                       "RATE_MAX(my.field)": r}}
        for n, r in enumerate(per_bucket)
    ]  # fmt: skip
    expected_row = {"RATE_AVG(my.field)": 60.0, "RATE_SUM(my.field)": 60.0,
                    "RATE_MAX(my.field)": 60.0}  # fmt: skip
    assert ([expected_row], expected_series) == (result.rows, result.series)


def test_rate_sum_avg_max_differ_weighted_with_a_gap(tmp_path: Path) -> None:
    """Several events per bucket, sample rates, a bucket with no event and two groups: each
    RATE_X is the per-bucket X (SUM and AVG weighted, as Honeycomb weights them) minus the
    previous bucket's; after the empty bucket there is no previous value (null)."""
    h1 = [(0, 10, 1), (5, 20, 3), (10, 30, 1), (15, 50, 1), (30, 100, 2), (40, 90, 1),
          (45, 130, 1)]  # (seconds, x, samplerate)  # fmt: skip
    events = [{"timestamp": _at(t), "host": "h1", "x": x, "samplerate": r} for t, x, r in h1]
    events += [{"timestamp": _at(1), "host": "h2", "x": 5}, {"timestamp": _at(11), "host": "h2",
                                                             "x": 3}]  # fmt: skip
    path = _write(tmp_path / "hosts.jsonl", events)
    query = Query(calculations=["RATE_SUM(x)", "RATE_AVG(x)", "RATE_MAX(x)"],
                  breakdowns=["host"], start_time=int(T0), end_time=int(T0) + 50,
                  granularity=10)  # fmt: skip
    result = run_local(query, path, cache=False)
    # h1 per bucket: SUM 70, 80, -, 200, 220; AVG 17.5, 40, -, 100, 110; MAX 20, 50, -, 100, 130
    # rates: bucket 10: 10, 22.5, 30; bucket 30: none (bucket 20 empty); bucket 40: 20, 10, 30
    rows = [
        {"host": "h1", "RATE_SUM(x)": 15.0, "RATE_AVG(x)": 16.25, "RATE_MAX(x)": 30.0},
        {"host": "h2", "RATE_SUM(x)": -2.0, "RATE_AVG(x)": -2.0, "RATE_MAX(x)": -2.0},
    ]
    none = {"RATE_SUM(x)": None, "RATE_AVG(x)": None, "RATE_MAX(x)": None}
    series = [
        (0, {"host": "h1", **none}), (0, {"host": "h2", **none}),
        (10, {"host": "h1", "RATE_SUM(x)": 10.0, "RATE_AVG(x)": 22.5, "RATE_MAX(x)": 30.0}),
        (10, {"host": "h2", "RATE_SUM(x)": -2.0, "RATE_AVG(x)": -2.0, "RATE_MAX(x)": -2.0}),
        (30, {"host": "h1", **none}),
        (40, {"host": "h1", "RATE_SUM(x)": 20.0, "RATE_AVG(x)": 10.0, "RATE_MAX(x)": 30.0}),
    ]  # fmt: skip
    expected_series = [{"time": _at(t), "data": data} for t, data in series]
    assert (rows, expected_series) == (result.rows, result.series)


def test_rate_needs_a_granularity_locally(tmp_path: Path) -> None:
    """Without granularity Honeycomb picks one itself; the local engine cannot reproduce
    that choice, so it says to add one (the query stays valid for Honeycomb)."""
    path = _write(tmp_path / "e.jsonl", [{"x": 1}])
    query = Query(calculations=["RATE_AVG(x)"])
    with pytest.raises(ConfigurationError, match="RATE_AVG\\(x\\) needs a granularity"):
        run_local(query, path, cache=False)


# --- names, per-calculation filters, orders by name ----------------------------------------


def test_named_calculations_with_their_own_filters(tmp_path: Path) -> None:
    """A calculation's ``filters`` narrow its own events; its ``name`` is its result key and
    can be ordered on through an order's ``column`` ("Create a Query": orders)."""
    events = [
        {"route": "/a", "error": True, "d": 100}, {"route": "/a", "error": False, "d": 50,
                                                   "samplerate": 2},
        {"route": "/a", "error": False, "d": 300}, {"route": "/b", "error": False, "d": 10},
        {"route": "/c", "error": True, "d": 70}, {"route": "/c", "error": True, "d": 80},
    ]  # fmt: skip
    path = _write(tmp_path / "routes.jsonl", events)
    spec = {
        "calculations": [
            {"op": "COUNT"},
            {"op": "COUNT", "name": "errors",
             "filters": [{"column": "error", "op": "=", "value": True}],
             "filter_combination": "AND"},
            {"op": "AVG", "column": "d", "name": "slow avg",
             "filters": [{"column": "d", "op": ">", "value": 60},
                         {"column": "route", "op": "=", "value": "/a"}],
             "filter_combination": "AND"},
        ],
        "breakdowns": ["route"],
        "orders": [{"column": "errors", "order": "descending"}, {"op": "COUNT",
                                                                 "order": "descending"}],
        "havings": [{"calculate_op": "AVG", "column": "d", "op": "!=", "value": -1}],
    }  # fmt: skip
    query = Query.from_json(spec)
    assert spec == query.to_json()
    # by hand: /a: COUNT 1 + 2 + 1 = 4, errors 1, slow avg (100 + 300) / 2 = 200; /c: COUNT 2,
    # errors 2, slow avg null (its events fail route = /a); /b: COUNT 1, errors 0, slow avg
    # null. The having (on AVG(d), that is "slow avg") keeps only groups with a value.
    rows = [{"route": "/a", "COUNT": 4, "errors": 1, "slow avg": 200.0}]
    assert rows == run_local(query, path, cache=False).rows
    without_having = Query.from_json({**spec, "havings": []})
    rows = [
        {"route": "/c", "COUNT": 2, "errors": 2, "slow avg": None},
        {"route": "/a", "COUNT": 4, "errors": 1, "slow avg": 200.0},
        {"route": "/b", "COUNT": 1, "errors": 0, "slow avg": None},
    ]
    assert rows == run_local(without_having, path, cache=False).rows


def test_same_calculation_twice_needs_names() -> None:
    """Two COUNTs with different filters and no names would share a result key: the error
    says to name them."""
    calcs = [{"op": "COUNT"}, {"op": "COUNT", "filters": [{"column": "e", "op": "exists"}]}]
    with pytest.raises(ConfigurationError, match="give each a 'name'"):
        Query.from_json({"calculations": calcs})


# --- compare_time_offset_seconds ----------------------------------------------------------


def test_compare_time_offset_rows_and_series(tmp_path: Path) -> None:
    """The same calculations over the window ``compare_time_offset_seconds`` earlier, one row
    per row of the result (same groups, same order; a group absent then counts 0)."""
    events = [
        {"timestamp": _at(3700), "route": "/a"}, {"timestamp": _at(5500), "route": "/a"},
        {"timestamp": _at(4000), "route": "/b"},
        {"timestamp": _at(100), "route": "/a", "samplerate": 5},
        {"timestamp": _at(200), "route": "/c"},
    ]  # fmt: skip
    path = _write(tmp_path / "compare.jsonl", events)
    query = Query(calculations=["COUNT"], breakdowns=["route"], time_range=3600,
                  granularity=1800, compare_time_offset_seconds=3600)  # fmt: skip
    result = run_local(query, path, cache=False, now=T0 + 7200)
    assert result.compare is not None
    assert ([{"route": "/a", "COUNT": 2}, {"route": "/b", "COUNT": 1}],
            [{"route": "/a", "COUNT": 5}, {"route": "/b", "COUNT": 0}],
            [{"time": _at(0), "data": {"route": "/a", "COUNT": 5}}]) == (
        result.rows, result.compare.rows, result.compare.series)  # fmt: skip


def test_compare_offsets_are_honeycombs_and_need_a_window_locally(tmp_path: Path) -> None:
    """Only Honeycomb's offsets are accepted; locally an offset needs a time window."""
    with pytest.raises(ConfigurationError, match="1800, 3600, 7200, 28800, 86400, 604800"):
        Query(compare_time_offset_seconds=60)
    path = _write(tmp_path / "e.jsonl", [{"x": 1}])
    with pytest.raises(ConfigurationError, match="needs a time window"):
        run_local(Query(compare_time_offset_seconds=86400), path, cache=False)


# --- granularity ----------------------------------------------------------------------------


def test_granularity_may_give_a_single_bucket(tmp_path: Path) -> None:
    """Honeycomb accepts granularities from T/1000 to T ("Create a Query": granularity);
    time_range=3600 with 600 (six buckets) or 3600 (one bucket) is valid, 3601 is not."""
    assert [600, 3600] == [Query(time_range=3600, granularity=g).granularity for g in (600, 3600)]
    with pytest.raises(ConfigurationError, match="between 4 and 3600 seconds"):
        Query(time_range=3600, granularity=3601)
    path = _write(tmp_path / "e.jsonl", [{"timestamp": _at(10)}, {"timestamp": _at(3500)}])
    query = Query(start_time=int(T0), end_time=int(T0) + 3600, granularity=3600)
    assert [{"time": _at(0), "data": {"COUNT": 2}}] == run_local(query, path, cache=False).series


def test_granularity_zero_is_automatic() -> None:
    """Honeycomb's UI writes ``"granularity": 0`` (and ``null`` offsets) in the specs it
    shares; 0 means automatic, as no granularity."""
    spec = {"time_range": 7200, "granularity": 0, "calculations": [{"op": "COUNT"}],
            "filters": [], "filter_combination": "AND", "limit": 1000,
            "compare_time_offset_seconds": None}  # fmt: skip
    expected = {"calculations": [{"op": "COUNT"}], "limit": 1000, "time_range": 7200}
    assert expected == Query.from_json(spec).to_json()


# --- what the local engine refuses, by name; Honeycomb gets it as given ---------------------

REFUSED = [
    ({"calculated_fields": [{"name": "slow", "expression": "GT($d, 100)"}]},
     "calculated_fields is not supported by the local engine"),
    ({"formulas": [{"name": "ratio", "expression": "DIV($a, $b)"}]},
     "formulas is not supported by the local engine"),
    ({"calculations": [{"op": "COUNT", "column": "user.id"}]},
     "COUNT with column 'user.id' is not supported by the local engine"),
]  # fmt: skip


@pytest.mark.parametrize("extra, message", REFUSED, ids=[m.split(" ")[0] for _, m in REFUSED])
def test_refused_locally_by_name_sent_to_honeycomb(
    extra: dict[str, Any], message: str, tmp_path: Path, fake: FakeHoneycomb
) -> None:
    """A spec copied from Honeycomb with a field the local engine cannot compute exactly is
    read (not "unknown key"), refused by run_local with the field's name, and sent to
    Honeycomb unchanged."""
    spec = {"calculations": [{"op": "COUNT"}], "time_range": 3600, **extra}
    query = Query.from_json(spec)
    with pytest.raises(ConfigurationError, match=message):
        run_local(query, _write(tmp_path / "e.jsonl", [{"d": 1}]), cache=False)
    HoneycombQueryClient(KEY, fake.url, poll_interval=0.01).run(query, "ds")
    assert ("POST", "/1/queries/ds", {**spec, "limit": 1000}) == fake.requests[0]


def test_honeycomb_receives_rates_names_filters_and_offset(fake: FakeHoneycomb) -> None:
    """RATE ops, names, per-calculation filters and the compare offset go to Honeycomb as
    written, with the limit made explicit (1,000 by default, as locally)."""
    spec = {
        "calculations": [
            {"op": "RATE_SUM", "column": "bytes", "name": "throughput"},
            {"op": "COUNT", "name": "errors", "filters": [{"column": "error", "op": "=",
                                                           "value": True}],
             "filter_combination": "OR"},
        ],
        "orders": [{"column": "throughput", "order": "descending"}],
        "time_range": 7200,
        "granularity": 60,
        "compare_time_offset_seconds": 86400,
    }  # fmt: skip
    HoneycombQueryClient(KEY, fake.url, poll_interval=0.01).run(Query.from_json(spec), "ds")
    expected = [("POST", "/1/queries/ds", {**spec, "limit": 1000}),
                ("POST", "/1/query_results/ds", {"query_id": "q-1", "disable_series": False,
                                                 "limit": 1000})]  # fmt: skip
    assert expected == fake.requests[:2]
