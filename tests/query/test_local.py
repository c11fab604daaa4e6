"""run_local: every calculation, filter, breakdown, having, order, limit and series, checked
against an independent numpy / plain-Python reference written here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support.query import (
    MISSING,
    PCTS,
    T0,
    group_by,
    is_number,
    make_events,
    normalise,
    reference,
    rfc3339,
    rows_by_key,
    weight,
    write_events,
)
from wideevents._errors import ConfigurationError
from wideevents.query import Query, run_local

NUMERIC_OPS = ["SUM", "AVG", "MIN", "MAX", *PCTS, "HEATMAP"]


@pytest.fixture(scope="module")
def sampled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    """A file of 3,000 events with sample rates, missing keys, nulls and mixed types."""
    events = make_events(3000, seed=11)
    return write_events(tmp_path_factory.mktemp("q") / "events.jsonl", events), events


@pytest.fixture(scope="module")
def unsampled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    """The same kind of file without any sample rate."""
    events = make_events(2000, seed=12, sampled=False)
    return write_events(tmp_path_factory.mktemp("q") / "plain.jsonl", events), events


def _all_calcs() -> list[str]:
    calcs = ["COUNT", "COUNT_DISTINCT(user.id)", "COUNT_DISTINCT(model.version)"]
    return calcs + [f"{op}(duration_ms)" for op in NUMERIC_OPS] + ["HEATMAP(score.top1)"]


def _expected_row(events: list[dict[str, Any]], calcs: list[str]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for text in calcs:
        op, _, rest = text.partition("(")
        row[text] = reference(events, op, rest.rstrip(")") or None)
    return row


@pytest.mark.parametrize("which", ["sampled", "unsampled"])
def test_every_calculation_whole_file(
    which: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Every calculation over the whole file equals the numpy reference (weighted or not)."""
    path, events = request.getfixturevalue(which)
    calcs = _all_calcs()
    result = run_local(Query(calculations=calcs), path, cache=tmp_path)
    assert [normalise(_expected_row(events, calcs))] == [normalise(r) for r in result.rows]


@pytest.mark.parametrize("which", ["sampled", "unsampled"])
def test_every_calculation_by_breakdown_with_nulls(
    which: str, request: pytest.FixtureRequest
) -> None:
    """Per group (null and missing model.version form one group) every calculation matches."""
    path, events = request.getfixturevalue(which)
    calcs = _all_calcs()
    query = Query(
        calculations=calcs, breakdowns=["model.version"], orders=[{"column": "model.version"}]
    )
    result = run_local(query, path, cache=False)
    expected = {
        key: normalise({"model.version": key[0], **_expected_row(group, calcs)})
        for key, group in group_by(events, ["model.version"]).items()
    }
    assert expected == rows_by_key(result.rows, ["model.version"])
    assert ["v1", "v2", "v3", None] == [r["model.version"] for r in result.rows]


def test_two_breakdowns_and_filter(sampled: tuple[Path, list[dict[str, Any]]]) -> None:
    """P99 by two breakdowns under a filter matches the reference on the filtered events."""
    path, events = sampled
    query = Query(
        calculations=["P99(duration_ms)", "COUNT"],
        breakdowns=["model.version", "http.route"],
        filters=[{"column": "error", "op": "=", "value": False}],
    )
    kept = [e for e in events if e.get("error") is False]
    expected = {
        key: normalise({"model.version": key[0], "http.route": key[1],
                        "P99(duration_ms)": reference(g, "P99", "duration_ms"),
                        "COUNT": reference(g, "COUNT", None)})
        for key, g in group_by(kept, ["model.version", "http.route"]).items()
    }  # fmt: skip
    actual = rows_by_key(run_local(query, path, cache=False).rows, ["model.version", "http.route"])
    assert expected == actual


# --- filters: every operator on present, missing and mixed-type columns --------------------

FILTER_VALUES: list[Any] = [
    3,
    3.0,
    7,
    -2.5,
    "3",
    "abc",
    "abd",
    "xabc",
    True,
    False,
    None,
    MISSING,
    [1, 2],
]


def _matches(value: Any, op: str, target: Any) -> bool:
    """A plain restatement of the filter semantics (docs/query.md, "Semantics"), independent
    of the code."""
    missing = value is MISSING or value is None
    if op == "exists":
        return not missing
    if op == "does-not-exist":
        return missing
    negated = {"!=": "=", "not-in": "in", "does-not-start-with": "starts-with",
               "does-not-end-with": "ends-with", "does-not-contain": "contains"}  # fmt: skip
    if op in negated:
        return not _matches(value, negated[op], target)
    if missing:
        return False
    if isinstance(value, (list, dict)):
        # Honeycomb stores a nested value as its JSON text (docs, "Send JSON Logs", "Data
        # Expectations"); compact, as the sinks write it.
        value = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if op == "in":
        return any(_matches(value, "=", t) for t in target)

    def kind(v: Any) -> str:
        return "bool" if isinstance(v, bool) else "num" if is_number(v) else type(v).__name__

    if kind(value) != kind(target):
        return False
    if op == "=":
        return bool(value == target)
    if op in (">", ">=", "<", "<="):
        return {">": value > target, ">=": value >= target,
                "<": value < target, "<=": value <= target}[op]  # fmt: skip
    if op == "starts-with":
        return bool(value.startswith(target))
    if op == "ends-with":
        return bool(value.endswith(target))
    return bool(target in value)  # contains


FILTERS = [
    ("=", 3), ("=", "3"), ("=", True), ("!=", 3), ("!=", "abc"), ("!=", False),
    (">", 2), (">", "abc"), (">=", 3), ("<", 3.5), ("<=", "abd"), ("<", 0),
    ("starts-with", "ab"), ("does-not-start-with", "ab"), ("ends-with", "bc"),
    ("does-not-end-with", "bc"), ("contains", "b"), ("does-not-contain", "b"),
    ("exists", None), ("does-not-exist", None), ("in", [3, "abc", True]), ("not-in", [3, "abc"]),
    ("in", []), ("not-in", [False, -2.5]),
]  # fmt: skip


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[dict[str, Any]]]:
    """Events whose ``v`` takes every kind (and is missing); ``n`` holds only numbers, ``s``
    only strings; written as one file and split across two files of different kinds."""
    events = []
    for i in range(260):
        value = FILTER_VALUES[i % len(FILTER_VALUES)]
        ev: dict[str, Any] = {"i": i, "samplerate": 1 + i % 4, "n": [3, 7.5, -1][i % 3],
                              "s": ["abc", "zzz"][i % 2]}  # fmt: skip
        if value is not MISSING:
            ev["v"] = value
        events.append(ev)
    directory = tmp_path_factory.mktemp("mixed")
    whole = write_events(directory / "mixed.jsonl", events)
    numbers = [e for e in events if is_number(e.get("v"))]
    others = [e for e in events if not is_number(e.get("v"))]
    write_events(directory / "part-a.jsonl", numbers)
    write_events(directory / "part-b.jsonl", others)
    return whole, directory / "part-*.jsonl", events  # type: ignore[return-value]


@pytest.mark.parametrize("column", ["v", "n", "s", "absent"])
@pytest.mark.parametrize("op, target", FILTERS, ids=[f"{o} {json.dumps(t)}" for o, t in FILTERS])
def test_filter_operator(
    op: str, target: Any, column: str, mixed: tuple[Path, str, list[dict[str, Any]]]
) -> None:
    """Each operator on a mixed-kind, number-only, string-only and absent column: the
    weighted COUNT and the matching ids equal the plain-Python restatement."""
    whole, split, events = mixed
    cond: dict[str, Any] = {"column": column, "op": op}
    if target is not None:
        cond["value"] = target
    query = Query(calculations=["COUNT", "SUM(i)"], filters=[cond])
    kept = [e for e in events if _matches(e.get(column, MISSING), op, target)]
    expected = {
        "COUNT": sum(weight(e) for e in kept),
        "SUM(i)": sum(weight(e) * e["i"] for e in kept) if kept else None,
    }
    for paths, cache in ((whole, False), (split, whole.parent / "cache")):
        assert expected == run_local(query, paths, cache=cache).rows[0]


def test_filter_combination_or(mixed: tuple[Path, str, list[dict[str, Any]]]) -> None:
    """OR combines conditions; AND is the default."""
    whole, _, events = mixed
    conds = [{"column": "v", "op": "=", "value": 3}, {"column": "v", "op": "does-not-exist"}]
    both = [
        sum(
            weight(e)
            for e in events
            if any(_matches(e.get("v", MISSING), c["op"], c.get("value")) for c in conds)
        ),
        sum(
            weight(e)
            for e in events
            if all(_matches(e.get("v", MISSING), c["op"], c.get("value")) for c in conds)
        ),
    ]
    actual = [
        run_local(Query(filters=conds, filter_combination="OR"), whole, cache=False).rows[0][
            "COUNT"
        ],
        run_local(Query(filters=conds), whole, cache=False).rows[0]["COUNT"],
    ]
    assert both == actual


def test_breakdown_of_mixed_kinds(mixed: tuple[Path, str, list[dict[str, Any]]]) -> None:
    """A breakdown on a mixed-kind column keeps each value with its JSON type (3 != "3")."""
    whole, split, events = mixed
    expected: dict[str, Any] = {}
    for e in events:
        value = e.get("v")
        key = json.dumps(value if not (is_number(value) and float(value) == 3) else 3)
        expected[key] = expected.get(key, 0) + weight(e)
    for paths, cache in ((whole, False), (split, whole.parent / "cache")):
        rows = run_local(Query(breakdowns=["v"]), paths, cache=cache).rows
        actual = {
            json.dumps(3 if is_number(r["v"]) and r["v"] == 3 else r["v"]): r["COUNT"] for r in rows
        }
        assert expected == actual


# --- havings, orders, limit ---------------------------------------------------------------


def test_havings_orders_limit(sampled: tuple[Path, list[dict[str, Any]]]) -> None:
    """Havings drop groups, orders sort them (nulls last), limit keeps the first ones."""
    path, events = sampled
    groups = group_by(events, ["user.id"])
    stats = {
        k[0]: (reference(g, "COUNT", None), reference(g, "P50", "duration_ms"))
        for k, g in groups.items()
    }
    kept = [u for u, (count, _) in stats.items() if count > 60]
    expected = sorted(kept, key=lambda u: (-stats[u][1], u))[:7]
    query = Query(
        calculations=["COUNT", "P50(duration_ms)"], breakdowns=["user.id"],
        havings=[{"calculate_op": "COUNT", "op": ">", "value": 60}],
        orders=[{"op": "P50", "column": "duration_ms", "order": "descending"}], limit=7,
    )  # fmt: skip
    assert expected == [r["user.id"] for r in run_local(query, path, cache=False).rows]


def test_default_order_and_breakdown_order(sampled: tuple[Path, list[dict[str, Any]]]) -> None:
    """Without orders rows sort by the first calculation descending; by a breakdown
    ascending they sort by value with the null group last."""
    path, events = sampled
    counts = {
        k[0]: reference(g, "COUNT", None) for k, g in group_by(events, ["model.version"]).items()
    }
    by_count = sorted(counts, key=lambda k: -counts[k])
    rows = run_local(Query(breakdowns=["model.version"]), path, cache=False).rows
    desc = run_local(
        Query(breakdowns=["model.version"], orders=[{"column": "model.version", "order": "descending"}]),
        path, cache=False,
    ).rows  # fmt: skip
    assert (by_count, ["v3", "v2", "v1", None]) == (
        [r["model.version"] for r in rows],
        [r["model.version"] for r in desc],
    )


# --- time: windows, series, concurrency ------------------------------------------------------


def test_time_window_relative_to_now(sampled: tuple[Path, list[dict[str, Any]]]) -> None:
    """time_range counts back from now; start_time/end_time pick an absolute window."""
    path, events = sampled
    now = T0 + 1000.25

    def count_between(start: float, end: float) -> float:
        return reference([e for e in events if start <= _ts(e) < end], "COUNT", None)

    expected = [
        count_between(now - 300, now),
        count_between(T0 + 100, T0 + 400),
        count_between(T0 + 100, now),
    ]
    actual = [
        run_local(Query(time_range=300), path, now=now, cache=False).rows[0]["COUNT"],
        run_local(
            Query(start_time=int(T0) + 100, end_time=int(T0) + 400), path, now=now, cache=False
        ).rows[0]["COUNT"],
        run_local(Query(start_time=int(T0) + 100), path, now=now, cache=False).rows[0]["COUNT"],
    ]
    assert expected == actual


def _ts(event: dict[str, Any]) -> float:
    import datetime as dt

    return dt.datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()


def test_series_buckets(sampled: tuple[Path, list[dict[str, Any]]]) -> None:
    """With granularity, each bucket of each group holds the calculations of its events."""
    path, events = sampled
    g = 60
    query = Query(
        calculations=["COUNT", "P90(duration_ms)", "MAX(duration_ms)"],
        breakdowns=["http.route"],
        granularity=g,
    )
    result = run_local(query, path, cache=False)
    expected = []
    for (route,), group in group_by(events, ["http.route"]).items():
        for bucket in sorted({_ts(e) // g * g for e in group}):
            inside = [e for e in group if _ts(e) // g * g == bucket]
            expected.append((rfc3339(bucket).replace(".000000", ""), route, normalise({
                "http.route": route, "COUNT": reference(inside, "COUNT", None),
                "P90(duration_ms)": reference(inside, "P90", "duration_ms"),
                "MAX(duration_ms)": reference(inside, "MAX", "duration_ms")})))  # fmt: skip
    actual = [
        (p["time"], p["data"]["http.route"], normalise(p["data"])) for p in result.series or []
    ]
    assert sorted(expected, key=str) == sorted(actual, key=str)


def _concurrency(events: list[dict[str, Any]], start: float, end: float) -> float:
    total = 0.0
    for e in events:
        d = e.get("duration_ms")
        d = d if is_number(d) and d > 0 else 0
        begin, finish = _ts(e), _ts(e) + d / 1000
        total += weight(e) * max(0.0, min(finish, end) - max(begin, start))
    return total / (end - start)


def test_concurrency_rows_and_series(tmp_path: Path) -> None:
    """CONCURRENCY: weighted time-average of events in progress, over the window and per bucket."""
    rng = np.random.default_rng(3)
    events = [{"timestamp": rfc3339(T0 + float(rng.uniform(0, 100))), "duration_ms": float(rng.uniform(0, 30_000)),
               "samplerate": int(rng.choice([1, 3])), "k": str(rng.choice(["a", "b"]))} for _ in range(400)]  # fmt: skip
    path = write_events(tmp_path / "c.jsonl", events)
    start, end = int(T0) + 10, int(T0) + 110
    rows = run_local(
        Query(calculations=["CONCURRENCY"], breakdowns=["k"], start_time=start, end_time=end),
        path,
        cache=False,
    ).rows
    series = run_local(
        Query(calculations=["CONCURRENCY"], start_time=start, end_time=end, granularity=10),
        path,
        cache=False,
    ).series
    inside = [e for e in events if start <= _ts(e) < end]
    expected_rows = {
        k: normalise(_concurrency([e for e in inside if e["k"] == k], start, end))
        for k in ("a", "b")
    }
    expected_series = [
        normalise(_concurrency(inside, b, b + 10)) for b in range(start // 10 * 10, end, 10)
    ]
    assert (expected_rows, expected_series) == (
        {r["k"]: normalise(r["CONCURRENCY"]) for r in rows},
        [normalise(p["data"]["CONCURRENCY"]) for p in series or []],
    )


def test_whole_file_concurrency(tmp_path: Path) -> None:
    """Without a window, CONCURRENCY covers first start to last end of the selected events."""
    events = [
        {"timestamp": rfc3339(T0 + s), "duration_ms": d}
        for s, d in [(0, 2000), (1, 2000), (3, 1000)]
    ]
    path = write_events(tmp_path / "w.jsonl", events)
    expected = (2 + 2 + 1) / 4
    assert [{"CONCURRENCY": expected}] == run_local(
        Query(calculations=["CONCURRENCY"]), path, cache=False
    ).rows


# --- files, cache, robustness -------------------------------------------------------------------


def test_globs_several_files_and_gzip(tmp_path: Path) -> None:
    """Globs, several files and .gz files are read as one dataset."""
    events = make_events(600, seed=5)
    write_events(tmp_path / "a.jsonl", events[:200])
    write_events(tmp_path / "b.jsonl.gz", events[200:400], compress=True)
    (tmp_path / "sub").mkdir()
    write_events(tmp_path / "sub" / "c.jsonl", events[400:])
    query = Query(calculations=["COUNT", "P95(duration_ms)"], breakdowns=["model.version"])
    expected = {k: normalise({"model.version": k[0], "COUNT": reference(g, "COUNT", None),
                              "P95(duration_ms)": reference(g, "P95", "duration_ms")})
                for k, g in group_by(events, ["model.version"]).items()}  # fmt: skip
    paths = [tmp_path / "*.jsonl*", str(tmp_path / "**" / "c.jsonl")]
    assert expected == rows_by_key(
        run_local(query, paths, cache=tmp_path / "cache").rows, ["model.version"]
    )


def test_cache_parts_line_up_and_refresh(tmp_path: Path) -> None:
    """Fields fetched by different queries (separate cached parts) line up row by row, a
    repeated query reads no JSON, and a changed file is read again."""
    events = make_events(1500, seed=8)
    path = write_events(tmp_path / "e.jsonl", events)
    cache = tmp_path / "cache"
    run_local(Query(breakdowns=["model.version"]), path, cache=cache)
    run_local(Query(calculations=["AVG(score.top1)"]), path, cache=cache)
    query = Query(
        calculations=["SUM(score.top1)", "COUNT"], breakdowns=["model.version", "http.route"]
    )
    cached = run_local(query, path, cache=cache).rows
    manifest = json.loads(next(cache.glob("*/manifest.json")).read_text())
    assert len({e["part"] for e in manifest["columns"].values()}) >= 3
    assert rows_by_key(
        run_local(query, path, cache=False).rows, ["model.version", "http.route"]
    ) == rows_by_key(cached, ["model.version", "http.route"])
    write_events(path, events[:100])
    os.utime(path, ns=(1, 1))
    expected = reference(events[:100], "COUNT", None)
    assert expected == run_local(Query(), path, cache=cache).rows[0]["COUNT"]


def test_malformed_lines_are_skipped(tmp_path: Path) -> None:
    """Malformed lines, non-object lines and a half-written last line are skipped."""
    path = tmp_path / "bad.jsonl"
    path.write_text('{"a": 1, "samplerate": 2}\nnot json\n[1, 2]\n{"a": 3}\n{"a": 4, "b": ')
    expected = [{"COUNT": 3, "SUM(a)": 5, "MAX(a)": 3}]
    assert (
        expected
        == run_local(
            Query(calculations=["COUNT", "SUM(a)", "MAX(a)"]), path, cache=tmp_path / "c"
        ).rows
    )


def test_field_names_differing_by_case(tmp_path: Path) -> None:
    """Fields whose names differ only by case stay distinct."""
    path = write_events(
        tmp_path / "case.jsonl", [{"Error": 1, "error": 10}, {"Error": 2, "error": 20}]
    )
    assert [{"SUM(Error)": 3, "SUM(error)": 30}] == run_local(
        Query(calculations=["SUM(Error)", "SUM(error)"]), path, cache=False
    ).rows


def test_empty_file_and_no_match(tmp_path: Path) -> None:
    """No events: one row with COUNT 0 and null calculations; no breakdown rows at all."""
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    query = Query(calculations=["COUNT", "P99(x)", "HEATMAP(x)", "COUNT_DISTINCT(x)"])
    assert (
        [{"COUNT": 0, "P99(x)": None, "HEATMAP(x)": {"buckets": []}, "COUNT_DISTINCT(x)": 0}],
        [],
    ) == (
        run_local(query, path, cache=False).rows,
        run_local(Query(breakdowns=["x"]), path, cache=False).rows,
    )


def test_bad_paths(tmp_path: Path) -> None:
    """No matching file, or a directory, is a ConfigurationError saying what to pass."""
    messages = []
    for paths in (tmp_path / "nothing*.jsonl", tmp_path, []):
        with pytest.raises(ConfigurationError) as info:
            run_local(Query(), paths, cache=False)  # type: ignore[arg-type]
        messages.append(str(info.value).split(" ")[0] in ("no", str(tmp_path)))
    assert [True, True, True] == messages


def test_missing_duckdb_names_the_extra(tmp_path: Path) -> None:
    """Without duckdb, run_local raises ConfigurationError naming the query extra."""
    path = write_events(tmp_path / "e.jsonl", [{"a": 1}])
    code = (
        "import sys; sys.modules['duckdb'] = None\n"
        "from wideevents.query import Query, run_local\n"
        "from wideevents._errors import ConfigurationError\n"
        f"try:\n    run_local(Query(), {str(path)!r}, cache=False)\n"
        "except ConfigurationError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "pip install 'wideevents[query]'" in out.stdout


def test_percentiles_and_heatmap_edge_cases(tmp_path: Path) -> None:
    """Ties, exact cumulative boundaries, negative values, a huge outlier, values on bucket
    edges and one-value groups: every Pxx and HEATMAP still equal numpy."""
    rng = np.random.default_rng(9)
    events = [{"g": "ties", "x": int(v), "samplerate": int(s)} for v, s in
              zip(rng.integers(-5, 6, 500), rng.choice([1, 2, 4], 500), strict=True)]  # fmt: skip
    events += [{"g": "exact", "x": v} for v in range(1, 101)]  # P99 lands exactly on 99
    events += [{"g": "outlier", "x": float(v)} for v in rng.normal(0, 1, 400)] + [
        {"g": "outlier", "x": 1e12}
    ]
    events += [{"g": "edges", "x": v % 21, "samplerate": 1 + v % 3} for v in range(300)]  # 0..20
    events += [{"g": "single", "x": 7.5, "samplerate": 3}]
    path = write_events(tmp_path / "edge.jsonl", events)
    calcs = [f"{p}(x)" for p in PCTS] + ["HEATMAP(x)", "MIN(x)", "MAX(x)"]
    result = run_local(Query(calculations=calcs, breakdowns=["g"]), path, cache=False)
    expected = {
        key: normalise({"g": key[0], **_expected_row(group, calcs)})
        for key, group in group_by(events, ["g"]).items()
    }
    assert expected == rows_by_key(result.rows, ["g"])


def test_kinds_beyond_the_sample(tmp_path: Path) -> None:
    """Values of another kind after the first lines (floats after integers, numbers after
    strings, a field first seen late, integers beyond 64 bits, exponent literals) keep
    their kind: sums, filters and breakdowns equal the plain-Python reference."""
    lines = [json.dumps({"x": i % 7, "s": f"k{i % 3}"}) for i in range(1500)]
    late = [
        '{"x": 2.5, "s": 4, "late": 1}', '{"x": "7", "s": true, "late": "a"}',
        '{"x": 1e2, "s": "k1", "late": 2.5}', '{"x": -3, "s": null, "late": [1]}',
        '{"x": 18446744073709551616, "s": "k2"}', '{"x": 12.0}', '{"x": true}',
    ]  # fmt: skip
    path = tmp_path / "late.jsonl"
    path.write_text("\n".join(lines + late) + "\n")
    events = [json.loads(line) for line in lines + late]
    numbers = [e["x"] for e in events if is_number(e.get("x"))]
    late_numbers = [e["late"] for e in events if is_number(e.get("late"))]
    counts: dict[str, int] = {}
    for e in events:
        key = json.dumps(e.get("s"))
        counts[key] = counts.get(key, 0) + 1
    expected = (
        normalise(sum(numbers)), normalise(sum(late_numbers)),
        sum(1 for e in events if _matches(e.get("x", MISSING), ">", 5)),
        sum(1 for e in events if _matches(e.get("x", MISSING), "=", "7")),
        counts,
    )  # fmt: skip
    for cache in (False, tmp_path / "cache"):
        whole = run_local(Query(calculations=["SUM(x)", "SUM(late)"]), path, cache=cache).rows[0]
        above = run_local(
            Query(filters=[{"column": "x", "op": ">", "value": 5}]), path, cache=cache
        )
        text = run_local(
            Query(filters=[{"column": "x", "op": "=", "value": "7"}]), path, cache=cache
        )
        groups = run_local(Query(breakdowns=["s"]), path, cache=cache).rows
        actual = (
            normalise(whole["SUM(x)"]), normalise(whole["SUM(late)"]),
            above.rows[0]["COUNT"], text.rows[0]["COUNT"],
            {json.dumps(r["s"]): r["COUNT"] for r in groups},
        )  # fmt: skip
        assert expected == actual


def _check_one_field(path: Path, lines: list[str], odd: list[str], reader: str,
                     filters: list[tuple[str, Any]]) -> None:
    """Write ``lines`` and a line ``{"x": <literal>}`` per ``odd`` literal (and, for the
    robust reader, a cut line the fast reader rejects); SUM(x) and the count of each filter
    on x equal the plain-Python reference, with and without the cache."""
    lines = lines + ['{"x": %s}' % v for v in odd]
    if reader == "robust":
        lines.append('{"x": 3, "half": ')  # a cut line: the fast reader rejects the file
    path.write_text("\n".join(lines) + "\n")
    events = [json.loads(line) for line in lines if line.endswith("}")]
    numbers = [e["x"] for e in events if is_number(e.get("x"))]
    expected = [normalise(sum(numbers))] + [
        sum(1 for e in events if _matches(e.get("x", MISSING), op, v)) for op, v in filters
    ]
    for cache in (False, path.parent / "cache"):
        actual = [normalise(run_local(Query(calculations=["SUM(x)"]), path, cache=cache)
                            .rows[0]["SUM(x)"])]
        for op, v in filters:
            query = Query(filters=[{"column": "x", "op": op, "value": v}])
            actual.append(run_local(query, path, cache=cache).rows[0]["COUNT"])
        assert expected == actual, cache


@pytest.mark.parametrize("reader", ["fast", "robust"])
def test_an_integer_field_keeps_every_other_number_literal_apart(
    tmp_path: Path, reader: str
) -> None:
    """A field whose sampled kind is integer: only integer literals within 64 bits are its
    integers (the store tests a value by its text, docs/query.md "Semantics"); a literal
    with a fraction or exponent that rounds to an integer (12.0, 1E2, 12.5 -> 13), one
    beyond 64 bits, -0, strings of digits, booleans, lists and nulls keep their own kind.
    Both readers: the fast one, and the robust one (taken when a line is not JSON)."""
    odd = ["12.0", "1E2", "12.5", "-12.5", "-0", "9223372036854775807", "-9223372036854775808",
           "9223372036854775808", "-9223372036854775809", '"12"', "true", "null", "[12]",
           '{"a": 12}', "1.5e1", "0"]  # fmt: skip
    filters = [(">", 12), ("=", 12), ("=", "12"), ("=", 13), ("=", 100), ("=", 0), ("<", -1)]
    _check_one_field(tmp_path / "ints.jsonl", [json.dumps({"x": i % 5}) for i in range(1200)],
                     odd, reader, filters)


@pytest.mark.parametrize("reader", ["fast", "robust"])
def test_a_float_field_keeps_every_other_kind_apart(tmp_path: Path, reader: str) -> None:
    """A field whose sampled kind is float: its numbers are every number literal (integers,
    exponents, a subnormal, -0.0) and nothing else (a string of digits, a boolean, a list,
    an object, a null), whichever reader reads the file."""
    odd = ['"1.5"', "true", "false", "[1.5]", '{"a": 1.5}', "null", "1.5", "-2.5", "1E2", "12",
           "-0.0", "5e-324", "-7"]  # fmt: skip
    filters = [(">", 1), ("=", 1.5), ("=", "1.5"), ("<", 0), ("=", 100), ("=", 0), ("=", True)]
    _check_one_field(tmp_path / "floats.jsonl",
                     [json.dumps({"x": i % 5 + 0.5}) for i in range(1200)], odd, reader, filters)


def test_cache_forgets_deleted_files(tmp_path: Path) -> None:
    """When a new file enters the cache, copies of files that no longer exist are dropped."""
    cache = tmp_path / "cache"
    gone = write_events(tmp_path / "gone.jsonl", [{"a": 1}])
    kept = write_events(tmp_path / "kept.jsonl", [{"a": 2}])
    run_local(Query(), gone, cache=cache)
    run_local(Query(), kept, cache=cache)
    gone.unlink()
    newcomer = write_events(tmp_path / "new.jsonl", [{"a": 3}])
    run_local(Query(), newcomer, cache=cache)
    sources = sorted(json.loads(m.read_text())["path"] for m in cache.glob("*/manifest.json"))
    assert sorted([os.path.realpath(kept), os.path.realpath(newcomer)]) == sources
