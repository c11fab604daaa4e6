"""The speed paths of the analysis commands and the column store (issue 19's targets),
checked against answers computed here: the flat bin search against
``numpy.searchsorted(edges, x, side="right")`` (numpy's documented rule, which
``feature_bin.*`` follows); grouping sets shared by several small columns against plain
weighted counts; the deciles read with the counts (columns with fractions) against
``numpy.quantile(..., method="inverted_cdf")``; the store's single rest column per part
(format 4) keeping value kinds apart across parts."""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pytest

from tests.support.query import write_events
from wideevents.query import Query, compare, run_local
from wideevents.query._frame import Frame, _packed, bucket_value, numeric_bin_sql, session
from wideevents.query._store import ColumnStore

DECILES = np.arange(1, 10) / 10


@pytest.mark.parametrize("edges", [
    [0.5, 1.0, 1.0, 2.0, 3.5],  # flat search, a repeated edge
    [float(e) for e in range(-3, 30)],  # past 16 distinct edges: the nested search
    [1.0],
    [],
])
def test_bin_search_is_numpy_searchsorted_right(edges: list[float]) -> None:
    """Every value (edges, between, below, above, +-inf, NaN) lands in the bin numpy's
    searchsorted(side="right") gives; NULL stays NULL."""
    values = [-math.inf, -10.0, 0.0, 0.5, 0.75, 1.0, 1.5, 2.0, 3.5, 4.0, 17.0, 29.0, 99.0,
              math.inf, math.nan]
    con = duckdb.connect()
    rows = con.execute(
        f"SELECT x, {numeric_bin_sql('x', edges)} FROM (SELECT unnest(?::DOUBLE[]) AS x"
        " UNION ALL SELECT NULL)", [values]).fetchall()
    got = {("nan" if x is not None and math.isnan(x) else x): b for x, b in rows}
    # NaN sorts above every number in numpy as in DuckDB: the last bin.
    want = {("nan" if math.isnan(x) else x): int(np.searchsorted(np.array(edges), x, side="right"))
            for x in values}
    want[None] = None
    assert want == got


def test_packed_sets_keep_columns_apart() -> None:
    """Small columns share a grouping set while the product of their bucket counts stays
    within the limit; unknown or large ones get a set each."""
    assert [[0, 1], [2], [3, 4, 5], [6]] == _packed([10, 11, 0, 3, 4, 4, 300])


def test_histograms_of_shared_sets_are_the_per_column_weighted_counts(tmp_path: Path) -> None:
    """With sizes (columns sharing grouping sets) and without, both side forms, the
    weighted count of every bucket of every column is the one counted here."""
    rng = random.Random(7)
    events = [{"a": rng.choice(["x", "y", "z"]), "b": rng.randrange(4), "c": rng.random() < 0.5,
               "d": rng.choice([None, 1.5, 2.5]), "g": rng.choice(["p", "q"]),
               "samplerate": rng.choice([1, 2, 5])} for _ in range(500)]
    for e in events[::7]:
        del e["a"]
    path = write_events(tmp_path / "e.jsonl", events)
    columns = ["a", "b", "c", "d"]
    want: dict[tuple[Any, str], Counter[Any]] = {}
    for e in events:
        for side in {e["g"], "all"} if e["g"] == "p" else {e["g"]}:
            for c in columns:
                want.setdefault((side, c), Counter())[e.get(c)] += e["samplerate"]
    with session([path], False) as (con, store, files):
        frame = Frame.build(con, store, files, [*columns, "g"])
        buckets = {c: frame.value_bucket(c) for c in columns}
        sizes = {"a": 3, "b": 4, "c": 2, "d": 2}
        by_flag = {"p": f"{frame.col('g')} = 'p'", "q": f"{frame.col('g')} = 'q'",
                   "all": f"{frame.col('g')} = 'p'"}
        results = [frame.histograms(buckets, by_flag, "TRUE", s) for s in (None, sizes)]
        by_expr = [frame.histograms(buckets, frame.col("g"), "TRUE", s) for s in (None, sizes)]
    for got in results:
        assert {k: {_value(key): w for key, w in v.items()} for k, v in got.items()} == {
            k: dict(v) for k, v in want.items()}
    for got in by_expr:
        assert {k: {_value(key): w for key, w in v.items()} for k, v in got.items()} == {
            k: dict(v) for k, v in want.items() if k[0] != "all"}


def _value(key: str) -> Any:
    return bucket_value(key)


def test_fraction_column_with_few_values_stays_categorical(tmp_path: Path) -> None:
    """A number column with fractions but at most 10 distinct values is compared value by
    value (its deciles, read with the counts, are not used); one with many values gets
    bins between the deciles of the union (numpy's inverted_cdf, DuckDB's quantile_disc)."""
    rng = random.Random(3)
    events = []
    for i in range(300):
        slow = i % 3 == 0
        events.append({"slow": slow, "level": rng.choice([0.5, 1.5, 2.5] if slow else [0.5, 1.5]),
                       "score": round(rng.random() + (0.3 if slow else 0.0), 6)})
    path = write_events(tmp_path / "e.jsonl", events)
    result = compare([path], where="slow = true", cache=False, top=20)
    fields = {f["column"]: f for f in result.fields}
    assert "categorical" == fields["level"]["kind"]
    assert {0.5, 1.5, 2.5} == {t["value"] for t in fields["level"]["top"]}
    assert "numeric" == fields["score"]["kind"]
    edges = np.unique(np.quantile([e["score"] for e in events], DECILES, method="inverted_cdf"))
    bounds = sorted({b for t in fields["score"]["top"] for b in t["range"]})
    assert [float(e) for e in edges] == [b for b in bounds if b in set(edges.tolist())]


def test_rest_values_of_every_part_keep_their_kinds(tmp_path: Path) -> None:
    """Values whose kind is not their field's primary one (after the sampled first lines)
    are kept exactly, in one rest column per part, for fields fetched in two passes:
    "12" is not 12, true is not 1, a list stays a list."""
    events: list[dict[str, Any]] = [{"code": 200, "flag": True, "tag": "a"} for _ in range(1500)]
    events += [{"code": "12", "flag": 1, "tag": [1, 2]}, {"code": 12, "flag": "true", "tag": 7},
               {"code": None, "flag": None}]
    path = write_events(tmp_path / "e.jsonl", events)
    cache = tmp_path / "cache"

    def count(column: str, value: Any) -> int:
        q = Query.from_json({"calculations": ["COUNT"],
                             "filters": [{"column": column, "op": "=", "value": value}]})
        rows = run_local(q, path, cache=str(cache)).rows
        return int(rows[0]["COUNT"]) if rows else 0

    # Three passes: "code" first, then "flag", then "tag" (each a part of its own).
    assert [1, 1] == [count("code", "12"), count("code", 12)]
    assert [1500, 1, 1] == [count("flag", True), count("flag", 1), count("flag", "true")]
    assert [1500, 1] == [count("tag", "a"), count("tag", 7)]
    parts = sorted(cache.glob("v3-*/p*.parquet"))
    assert 3 == len(parts)
    con = duckdb.connect()
    for part in parts:
        names = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{part}')").fetchall()]
        rest = [n for n in names if not n.endswith("_t")]
        assert 1 == len(rest), names  # one rest column per part, not one per field


def test_rest_values_through_the_robust_reader(tmp_path: Path) -> None:
    """A line that is not JSON sends the pass to the robust reader (JSON Pointers); the rest
    values it finds are kept with their kinds all the same, and the bad line is skipped."""
    lines = [json.dumps({"code": 200}) for _ in range(1200)]
    lines += ['{"code": "12"}', '{"code": 12.5}', "not json", json.dumps({"code": [1]})]
    path = tmp_path / "e.jsonl"
    path.write_text("\n".join(lines) + "\n")

    def count(value: Any) -> int:
        q = Query.from_json({"calculations": ["COUNT"],
                             "filters": [{"column": "code", "op": "=", "value": value}]})
        rows = run_local(q, path, cache=str(tmp_path / "cache")).rows
        return int(rows[0]["COUNT"]) if rows else 0

    assert [1200, 1, 1, 0] == [count(200), count("12"), count(12.5), count(12)]


def test_manifest_with_a_foreign_rest_column_name_starts_over(tmp_path: Path) -> None:
    """A manifest naming a rest column this module would not write (it is put into SQL) is
    not trusted: the file is read again and the answer is the same."""
    path = write_events(tmp_path / "e.jsonl", [{"code": i % 3} for i in range(50)] + [{"code": "x"}])
    cache = tmp_path / "cache"
    q = Query.from_json({"calculations": ["COUNT"], "breakdowns": ["code"]})
    before = run_local(q, path, cache=str(cache)).rows
    manifest_path = next(cache.glob("v3-*/manifest.json"))
    manifest = json.loads(manifest_path.read_text())
    for entry in manifest["columns"].values():
        entry["rest_column"] = "r0) FROM x; --"
    manifest_path.write_text(json.dumps(manifest))
    after = run_local(q, path, cache=str(cache)).rows
    assert before == after
    fixed = json.loads(manifest_path.read_text())
    assert all(e["rest_column"].startswith("r") and e["rest_column"][1:].isdigit()
               for e in fixed["columns"].values())


def _kind_counts(events: list[dict[str, Any]], field: str, primary: type) -> tuple[int, int]:
    """(values of the primary kind, other non-null values) of ``field``, counted here."""
    values = [e[field] for e in events if e.get(field) is not None]
    typed = sum(1 for v in values if type(v) is primary)
    return typed, len(values) - typed


@pytest.mark.parametrize("mixed", [False, True])
def test_stored_counts_are_the_events_counts(tmp_path: Path, mixed: bool) -> None:
    """The per-field counts the store keeps (read from the Parquet footer when no line has
    a rest value, else counted from the data) are the counts of the events: values of
    the primary kind, other values, absent and null fields in neither."""
    rng = random.Random(11)
    events: list[dict[str, Any]] = []
    for i in range(3000):
        e: dict[str, Any] = {"n": rng.randrange(100), "s": rng.choice(["a", "b"])}
        if i % 4 == 0:
            del e["n"]
        if i % 5 == 0:
            e["s"] = None
        events.append(e)
    if mixed:
        events[2500]["n"] = "12"
        events[2600]["s"] = 3
    path = write_events(tmp_path / "e.jsonl", events)
    want = {"n": _kind_counts(events, "n", int), "s": _kind_counts(events, "s", str)}
    con = duckdb.connect()
    for cache in (tmp_path / "cache", None):
        got = ColumnStore(con, cache).columns(str(path), ["n", "s"], []).entries
        assert want == {f: (got[f]["typed"], got[f]["rest"]) for f in ("n", "s")}, cache


def test_fraction_column_with_few_distinct_deciles_but_many_values_gets_bins(
        tmp_path: Path) -> None:
    """A column with fractions whose deciles, minimum and maximum take few values (mostly
    0.0) but that has more than 10 distinct values is still numeric: its distinct count is
    read in a later pass, and its bins are the deciles numpy gives."""
    rng = random.Random(5)
    events = [{"slow": i % 2 == 0, "x": 0.0 if i % 20 else round(rng.random() + 1, 6)}
              for i in range(400)]
    xs = [e["x"] for e in events]
    assert 10 >= len({min(xs), max(xs), *np.quantile(xs, DECILES, method="inverted_cdf")})
    assert 10 < len(set(xs))
    path = write_events(tmp_path / "e.jsonl", events)
    result = compare([path], where="slow = true", cache=False, top=20)
    field = next(f for f in result.fields if f["column"] == "x")
    assert "numeric" == field["kind"]
    edges = np.unique(np.quantile(xs, DECILES, method="inverted_cdf")).tolist()
    assert sorted({*edges, min(xs), max(xs)}) == sorted({b for t in field["top"]
                                                         for b in t["range"]})
