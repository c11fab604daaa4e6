"""Lists and objects in filters: their compact JSON text, as Honeycomb stores them.

Source: Honeycomb docs, "Send JSON Logs", "Data Expectations": "any structure deeper than
top level keys will be serialized and a string representation of the content will be
used in the field" (with nested-JSON unpacking off, its default). So Honeycomb's string
operators apply to the text: ``data.oor_features contains recency_days`` matches
``["recency_days"]``. Both engines of the one filter module (Python predicates for
``RulesSampler`` and ``tail``, DuckDB SQL for ``query``) must agree on it.
"""

from __future__ import annotations

import io
import json
import random
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from tests.query.test_cli import _parser, _run
from wideevents._filter import compile_filter, filter_sql, json_text
from wideevents.query import Query, run_local

# (op, condition value, event value, expected), written by hand from the rule: a list or
# object is the string of its compact JSON text; a list or object condition value too.
CASES: list[tuple[str, Any, Any, bool]] = [
    ("contains", "recency_days", ["recency_days"], True),  # the issue's example
    ("contains", "recency", ["age", "recency_days"], True),
    ("does-not-contain", "recency_days", ["age"], True),
    ("does-not-contain", "age", ["age"], False),
    ("starts-with", '["a"', ["a", "b"], True),
    ("ends-with", ',"b"]', ["a", "b"], True),
    ("does-not-start-with", "[", ["a"], False),
    ("=", ["a", "b"], ["a", "b"], True),  # a list value stands for its text
    ("=", '["a","b"]', ["a", "b"], True),  # so does the same text given as a string
    ("=", '["a", "b"]', ["a", "b"], False),  # no spaces in the stored text
    ("=", ["a"], ["a", "b"], False),
    ("!=", ["a"], ["a"], False),
    ("!=", ["a"], ["b"], True),
    ("=", {"k": 1, "j": [2.5]}, {"k": 1, "j": [2.5]}, True),
    ("=", {"j": [2.5], "k": 1}, {"k": 1, "j": [2.5]}, False),  # keys keep their order
    ("contains", '"k":1', {"k": 1}, True),
    ("=", ["a"], '["a"]', True),  # a string event holding that very text
    ("in", ['["a"]', "x"], ["a"], True),
    ("not-in", ['["a"]'], ["a"], False),
    (">", "[", ["a"], True),  # '["a"]' > '[' by code point
    ("<", "[", ["a"], False),
    ("contains", "1.0", [1.0], True),  # an integral float is written 1.0
    ("=", [1.0, 0.000001], [1.0, 1e-6], True),
    ("contains", "é", ["é"], True),  # non-ASCII as is
    ("contains", "\\u001F", ["\x1f"], True),  # controls escaped, hex in capitals
    ("contains", "[]", [], True),
    ("contains", "a", "a", True),  # strings are unchanged
    ("contains", "1", 1, False),  # numbers are not strings
    ("exists", None, [], True),
    ("contains", "x", None, False),
]


def _ids(case: tuple[str, Any, Any, bool]) -> str:
    op, cv, ev, expected = case
    return f"{op} {json.dumps(cv)} on {json.dumps(ev)} -> {expected}"


def _cond(op: str, value: Any) -> dict[str, Any]:
    return {"column": "f", "op": op} | ({} if value is None else {"value": value})


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    """One in-memory DuckDB connection for the module."""
    return duckdb.connect()


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_python_predicate(case: tuple[str, Any, Any, bool]) -> None:
    """The Python predicate (RulesSampler, tail) sees a list or object as its JSON text."""
    op, value, event_value, expected = case
    assert expected == compile_filter([_cond(op, value)])({"f": event_value})


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_duckdb_json_and_other_columns(case: tuple[str, Any, Any, bool], con: Any) -> None:
    """The SQL sees the same text, over a column of mixed kinds and over a column of lists
    and objects only, whatever the spacing of the JSON it was given."""
    op, value, event_value, expected = case
    sql = filter_sql([_cond(op, value)], column=lambda name: "f")
    spaced = json.dumps(event_value)  # json.dumps puts spaces after , and :
    actual = [con.execute(f"SELECT {sql} FROM (SELECT CAST(? AS JSON) AS f)", [spaced])
              .fetchone()[0]]  # fmt: skip
    if isinstance(event_value, (list, dict)):
        other = filter_sql([_cond(op, value)], column=lambda name: "f", kinds={"f": "other"})
        actual.append(
            con.execute(f"SELECT {other} FROM (SELECT CAST(? AS JSON) AS f)", [spaced])
            .fetchone()[0]
        )
    assert [expected] * len(actual) == actual


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_run_local_over_a_file(case: tuple[str, Any, Any, bool], tmp_path: Path) -> None:
    """run_local over a file the sinks' way (orjson, compact) counts the matching event."""
    op, value, event_value, expected = case
    path = tmp_path / "events.jsonl"
    path.write_bytes(orjson.dumps({"f": event_value, "i": 1}) + b"\n"
                     + orjson.dumps({"f": "zzz", "i": 2}) + b"\n")  # fmt: skip
    query = Query(calculations=["COUNT"], filters=[_cond(op, value), {"column": "i", "op": "=",
                                                                        "value": 1}])  # fmt: skip
    assert (1 if expected else 0) == run_local(query, path, cache=False).rows[0]["COUNT"]


def test_json_text_is_duckdbs_text(con: Any, tmp_path: Path) -> None:
    """json_text gives, character for character, what DuckDB's JSON writer gives for the
    same value read from a file written by orjson (the sinks' serialiser): floats of
    every magnitude, integers at the 64-bit limits, every control character, nesting."""
    rng = random.Random(17)
    values: list[Any] = [[chr(c)] for c in range(0x20)] + [["\\u001f", "a\\\\u00ab", '"']]
    values += [[1e16, 1e20, 1e21, 1e-6, 1e-7, 0.1, 1.5, 1.0, -0.0, 0.0, 5e-324, 1e15, 2.0**53,
                1.7976931348623157e308, -2.5e-7, 2**63 - 1, -(2**63), 2**64 - 1]]  # fmt: skip
    values += [{"a": {"b": [1, 2.5, None, True, False, [], {}]}, "é": "😀"}]
    values += [[rng.uniform(-1, 1) * 10 ** rng.randint(-330, 308)] for _ in range(3000)]
    values += [[float(rng.randint(1, 10 ** rng.randint(1, 22)))] for _ in range(1000)]
    path = tmp_path / "values.jsonl"
    path.write_bytes(b"".join(orjson.dumps({"a": v}) + b"\n" for v in values))
    rows = con.execute(
        f"SELECT CAST(a AS VARCHAR) FROM read_json('{path}', format = 'newline_delimited',"
        " records = true, columns = {'a': 'JSON'})"
    ).fetchall()
    assert [r[0] for r in rows] == [json_text(v) for v in values]


def test_cli_where_with_a_json_list_and_tail(tmp_path: Path) -> None:
    """--where 'f = ["a","b"]' (a JSON list on the command line) and the issue's
    'data.oor_features contains recency_days' match in `query` and in `tail` alike."""
    events = [
        {"data.oor_features": ["recency_days"], "f": ["a", "b"], "n": 1},
        {"data.oor_features": ["age", "recency_days"], "f": ["a"], "n": 2},
        {"data.oor_features": [], "f": "a,b", "n": 3},
    ]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    counts = []
    for where in ('f = ["a", "b"]', "data.oor_features contains recency_days"):
        code, text = _run("query", str(path), "--where", where, "--json", "--no-cache")
        counts.append((code, json.loads(text)["rows"][0]["COUNT"]))
    args = _parser().parse_args(["tail", str(path), "--no-follow", "--where",
                                 "data.oor_features contains recency_days"])  # fmt: skip
    out = io.StringIO()
    args.func(args, out)
    shown = [line for line in out.getvalue().splitlines() if line.strip()]
    assert ([(0, 1), (0, 2)], 2) == (counts, len(shown))
