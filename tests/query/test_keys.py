"""Every key is addressed exactly, cached and uncached, by both of DuckDB's readers.

``wideevents.query._store`` reads fields with ``read_json`` (strict, fast) or with JSON
Pointers (robust, when a line is malformed). Keys that look like JSON path syntax, keys
that differ only in case, the empty key and keys DuckDB's path parser misread must give
the same answers as a plain Python reading of the same events (docs/query.md, "Columns":
field names are matched literally).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.query import write_events
from wideevents.query import Query, run_local

HOSTILE_KEYS = [
    "$", "$.a", "a.b", '"', 'a"b', "[0]", "0", "*", "\\", "a\\b", " a", "a ", "k" * 300,
    "é", "日本", "tab\there", "new\nline", "nul\x00key", "a/b", "~1", "~0", "'",
    '"; DROP TABLE events; --', "Duration_MS", "\u202emirror", "-",
]  # fmt: skip


def _events() -> list[dict[str, Any]]:
    """60 events; the n-th hostile key holds ``i * (n + 1)`` on some of them, so every key
    has a neighbour (another hostile key, one differing only in case) a sloppy reader might
    take instead; some events also have the empty key."""
    events = []
    for i in range(60):
        event: dict[str, Any] = {"duration_ms": 100 + i}
        for n, key in enumerate(HOSTILE_KEYS):
            if (i + n) % 3:
                event[key] = i * (n + 1)
        if i % 4 == 0:
            event[""] = "the empty key"
        event["DURATION_MS"] = -1  # differs from a field we read only in case
        events.append(event)
    return events


def _expected(events: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in HOSTILE_KEYS:
        values = [e[key] for e in events if key in e]
        out[key] = (sum(values), max(values), len(values))
    out["duration"] = max(e["duration_ms"] for e in events)
    out["groups"] = sorted(
        json.dumps([e.get(k) for k in HOSTILE_KEYS[:8]]) for e in events
    )
    return out


def _answers(path: Path, cache: Any) -> dict[str, Any]:
    """One query per key (so a cached file is also read one column at a time), one
    breakdown over several keys, and a field none of them names."""
    out: dict[str, Any] = {}
    for key in HOSTILE_KEYS:
        calcs = [{"op": "SUM", "column": key}, {"op": "MAX", "column": key}, {"op": "COUNT"}]
        query = Query(calculations=calcs, filters=[{"column": key, "op": "exists"}])
        row = run_local(query, path, cache=cache).rows[0]
        out[key] = tuple(row[c.key] for c in query.calculations)
    top = run_local(Query(calculations=["MAX(duration_ms)"]), path, cache=cache).rows[0]
    out["duration"] = top["MAX(duration_ms)"]
    groups = run_local(Query(breakdowns=HOSTILE_KEYS[:8], limit=1000), path, cache=cache).rows
    out["groups"] = sorted(
        json.dumps([r[k] for k in HOSTILE_KEYS[:8]]) for r in groups for _ in range(r["COUNT"])
    )
    return out


@pytest.mark.parametrize("robust", [False, True], ids=["strict-reader", "robust-reader"])
@pytest.mark.parametrize("cached", [False, True], ids=["uncached", "cached"])
def test_hostile_keys_are_read_exactly(tmp_path: Path, cached: bool, robust: bool) -> None:
    """SUM/MAX/exists of each hostile key, and a breakdown over several, equal a Python
    reading of the events; a second, cached round gives the same answers."""
    events = _events()
    path = write_events(tmp_path / "events.jsonl", events)
    if robust:  # a malformed line sends every read through the robust reader
        with path.open("a") as f:
            f.write('{"truncated": \n')
    cache = tmp_path / "cache" if cached else False
    first = _answers(path, cache)
    again = _answers(path, cache) if cached else first  # cached: now read from the parts
    assert (_expected(events), _expected(events)) == (first, again)


@pytest.mark.parametrize("cached", [False, True], ids=["uncached", "cached"])
def test_empty_key_does_not_corrupt_cached_answers(tmp_path: Path, cached: bool) -> None:
    """Issue 11: one event with "" as a key; later single-column reads stay exact."""
    events = [{"duration_ms": 5, "x": 1}, {"duration_ms": 7, "": "boo"}, {"duration_ms": 9}]
    path = write_events(tmp_path / "e.jsonl", events)
    cache = tmp_path / "cache" if cached else False
    count = run_local(Query(), path, cache=cache).rows[0]["COUNT"]
    top = run_local(Query(calculations=["MAX(duration_ms)"]), path, cache=cache).rows[0]
    exists = run_local(Query(filters=[{"column": "x", "op": "exists"}]), path, cache=cache)
    assert (3, 9, 1) == (count, top["MAX(duration_ms)"], exists.rows[0]["COUNT"])


@pytest.mark.parametrize("cached", [False, True], ids=["uncached", "cached"])
def test_a_line_that_is_not_an_object_does_not_become_the_column(
    tmp_path: Path, cached: bool
) -> None:
    """A JSON array line made DuckDB read each whole line as a lone column; it is skipped."""
    path = tmp_path / "e.jsonl"
    path.write_text('{"d": 5}\n[1, 2]\n{"d": 9}\n"text"\n')
    cache = tmp_path / "cache" if cached else False
    count = run_local(Query(), path, cache=cache).rows  # reads one field: samplerate
    top = run_local(Query(calculations=["MAX(d)"]), path, cache=cache)  # one more: d
    assert ([{"COUNT": 2}], [{"MAX(d)": 9}]) == (count, top.rows)
    assert 2 == top.skipped_lines


@pytest.mark.parametrize("cached", [False, True], ids=["uncached", "cached"])
def test_keys_differing_only_in_case_stay_apart(tmp_path: Path, cached: bool) -> None:
    """"x" and "X" are two fields, asked for together or one at a time."""
    events = [{"x": 1, "X": 10}, {"x": 2}, {"X": 30}, {"x": 4, "X": 40}]
    path = write_events(tmp_path / "e.jsonl", events)
    cache = tmp_path / "cache" if cached else False
    lower = run_local(Query(calculations=["SUM(x)"]), path, cache=cache).rows[0]["SUM(x)"]
    upper = run_local(Query(calculations=["SUM(X)"]), path, cache=cache).rows[0]["SUM(X)"]
    both = run_local(Query(calculations=["SUM(x)", "SUM(X)"]), path, cache=cache).rows[0]
    assert (7, 80, {"SUM(x)": 7, "SUM(X)": 80}) == (lower, upper, both)


HOSTILE_VALUES = ["'", "''", "x'; DROP TABLE t; --", '"', "\\", "\\'", "nul\x00byte", "$.a",
                  "%_", "é", ""]  # fmt: skip


@pytest.mark.parametrize("cached", [False, True], ids=["uncached", "cached"])
def test_filter_values_are_quoted(tmp_path: Path, cached: bool) -> None:
    """Filter values with quotes, SQL, NUL and LIKE wildcards match exactly themselves
    (= and contains; the other string operators share contains' quoting)."""
    events = [{"s": v, "i": n} for n, v in enumerate(HOSTILE_VALUES)] + [{"s": "plain", "i": 99}]
    path = write_events(tmp_path / "e.jsonl", events)
    cache = tmp_path / "cache" if cached else False
    found = {}
    for value in HOSTILE_VALUES:
        for op in ("=", "contains"):
            query = Query(calculations=["SUM(i)"], filters=[{"column": "s", "op": op, "value": value}])
            found[(value, op)] = run_local(query, path, cache=cache).rows[0]["SUM(i)"]
    expected = {}
    for value in HOSTILE_VALUES:
        for op, test in (("=", str.__eq__), ("contains", str.__contains__)):
            hits = [e["i"] for e in events if test(e["s"], value)]
            expected[(value, op)] = sum(hits) if hits else None
    assert expected == found


def test_breakdown_and_order_names_are_quoted(tmp_path: Path) -> None:
    """A breakdown named like SQL, ordered by that name, groups exactly."""
    name = 'g") UNION SELECT 1; --'
    events = [{name: "a", "v": 1}, {name: "b", "v": 2}, {name: "a", "v": 3}]
    path = write_events(tmp_path / "e.jsonl", events)
    query = Query(calculations=["SUM(v)"], breakdowns=[name],
                  orders=[{"column": name, "order": "ascending"}])  # fmt: skip
    rows = run_local(query, path, cache=tmp_path / "cache").rows
    assert [{name: "a", "SUM(v)": 4}, {name: "b", "SUM(v)": 2}] == rows


@pytest.mark.parametrize("name", ["x[1].jsonl", "*.jsonl", "q?.jsonl", "a]b.jsonl"])
@pytest.mark.parametrize("cached", [False, True], ids=["uncached", "cached"])
def test_a_file_name_with_glob_characters_is_that_file(
    tmp_path: Path, name: str, cached: bool
) -> None:
    """DuckDB expands globs in file names: x[1].jsonl read x1.jsonl, *.jsonl every file."""
    for other in ("x1.jsonl", "qq.jsonl", "other.jsonl"):
        write_events(tmp_path / other, [{"v": 1000}])
    target = write_events(tmp_path / name, [{"v": 1}, {"v": 2}])
    cache = tmp_path / "c[1]" if cached else False  # a cache directory with a glob character
    result = run_local(Query(calculations=["SUM(v)", "COUNT"]), [str(target)], cache=cache)
    assert [{"SUM(v)": 3, "COUNT": 2}] == result.rows


def test_a_key_with_json_text_values_keeps_them(tmp_path: Path) -> None:
    """Values that look like JSON paths or SQL are data, grouped by their text."""
    values = ["$", "$.a", "[*]", "' OR 1=1 --", json.dumps({"a": 1})]
    path = write_events(tmp_path / "e.jsonl", [{"k": v} for v in values])
    rows = run_local(Query(breakdowns=["k"]), path, cache=False).rows
    assert sorted(values) == sorted(r["k"] for r in rows)
