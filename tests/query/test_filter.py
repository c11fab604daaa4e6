"""The filter module: one hand-written table of cases, run against Python and DuckDB."""

from __future__ import annotations

import json
import timeit
from typing import Any

import duckdb
import pytest

from wideevents._errors import ConfigurationError
from wideevents._filter import (
    OPERATORS,
    Condition,
    compile_filter,
    filter_sql,
    parse_condition,
)

MISSING = object()  # the key is absent from the event

LIST = [1, "a"]
OBJ = {"a": 1}

# (op, condition value, event value, expected). Written by hand from the semantics in
# docs/query.md, "Semantics": positive operators never match a missing (absent or null)
# value nor a value of another kind; negative operators are exactly their negation.
CASES: list[tuple[str, Any, Any, bool]] = [
    # = with numbers: int and float compare numerically, bool is not a number
    ("=", 1, 1, True),
    ("=", 1, 1.0, True),
    ("=", 1.0, 1, True),
    ("=", 2.5, 2.5, True),
    ("=", 1, 2, False),
    ("=", 1, True, False),
    ("=", 1, "1", False),
    ("=", 1, None, False),
    ("=", 1, MISSING, False),
    ("=", 1, LIST, False),
    ("=", 0, False, False),
    # = with booleans
    ("=", True, True, True),
    ("=", True, False, False),
    ("=", True, 1, False),
    ("=", False, 0, False),
    ("=", True, "true", False),
    ("=", False, MISSING, False),
    ("=", False, None, False),
    # = with strings: exact, case-sensitive
    ("=", "abc", "abc", True),
    ("=", "abc", "Abc", False),
    ("=", "1", 1, False),
    ("=", "", "", True),
    ("=", "it's", "it's", True),
    ("=", "abc", MISSING, False),
    ("=", "abc", OBJ, False),
    # != is the negation of =
    ("!=", 1, 1, False),
    ("!=", 1, 1.0, False),
    ("!=", 1, 2, True),
    ("!=", 1, "1", True),
    ("!=", 1, True, True),
    ("!=", 1, MISSING, True),
    ("!=", 1, None, True),
    ("!=", True, True, False),
    ("!=", True, 1, True),
    ("!=", "abc", "abc", False),
    ("!=", "abc", "x", True),
    ("!=", "abc", MISSING, True),
    ("!=", "abc", LIST, True),
    # > >= < <= with numbers
    (">", 5, 7, True),
    (">", 5, 5, False),
    (">", 5, 5.5, True),
    (">", 5.5, 5, False),
    (">", 5, -3, False),
    (">", 5, "7", False),
    (">", 0, True, False),
    (">", 5, MISSING, False),
    (">", 5, None, False),
    (">", 5, LIST, False),
    (">=", 5, 5, True),
    (">=", 5, 5.0, True),
    (">=", 5, 4.999, False),
    (">=", 5, "9", False),
    (">=", 5, MISSING, False),
    ("<", 5, 4, True),
    ("<", 5, 5, False),
    ("<", 5, -3, True),
    ("<", 5, "1", False),
    ("<", 1, False, False),
    ("<", 5, None, False),
    ("<", 5, MISSING, False),
    ("<=", 5, 5, True),
    ("<=", 5, 6, False),
    ("<=", 2.5, 2.5, True),
    ("<=", 5, MISSING, False),
    # ordered comparisons with strings: by code point
    (">", "b", "c", True),
    (">", "b", "b", False),
    (">", "b", "B", False),
    (">", "b", "ba", True),
    (">", "10", "9", True),
    (">", "1", 5, False),
    (">=", "b", "b", True),
    ("<", "b", "a", True),
    ("<", "b", "ab", True),
    ("<", "é", "z", True),
    ("<=", "b", "b", True),
    ("<=", "b", MISSING, False),
    # starts-with / ends-with / contains: strings only
    ("starts-with", "/v1", "/v1/predict", True),
    ("starts-with", "/v1", "/v2/predict", False),
    ("starts-with", "/v1", "/V1", False),
    ("starts-with", "", "anything", True),
    ("starts-with", "1", 12, False),
    ("starts-with", "a", MISSING, False),
    ("starts-with", "a", None, False),
    ("starts-with", "a", LIST, False),
    ("does-not-start-with", "/v1", "/v1/predict", False),
    ("does-not-start-with", "/v1", "/v2/predict", True),
    ("does-not-start-with", "1", 12, True),
    ("does-not-start-with", "a", MISSING, True),
    ("does-not-start-with", "a", None, True),
    ("ends-with", "ict", "/v1/predict", True),
    ("ends-with", "ict", "/v1/predicts", False),
    ("ends-with", "2", 12, False),
    ("ends-with", "a", MISSING, False),
    ("does-not-end-with", "ict", "/v1/predict", False),
    ("does-not-end-with", "ict", "/health", True),
    ("does-not-end-with", "2", 12, True),
    ("does-not-end-with", "a", MISSING, True),
    ("contains", "pred", "/v1/predict", True),
    ("contains", "Pred", "/v1/predict", False),
    ("contains", "a", "a", True),
    ("contains", "1", 21, False),
    # a list is its JSON text '[1,"a"]' (Honeycomb docs, "Send JSON Logs", "Data Expectations")
    ("contains", "1", LIST, True),
    ("contains", "a", MISSING, False),
    ("contains", "a", None, False),
    ("contains", "%", "100%", True),
    ("contains", "_", "ab", False),
    ("does-not-contain", "pred", "/v1/predict", False),
    ("does-not-contain", "x", "/v1/predict", True),
    ("does-not-contain", "1", 21, True),
    ("does-not-contain", "a", MISSING, True),
    ("does-not-contain", "a", None, True),
    # exists / does-not-exist
    ("exists", None, 0, True),
    ("exists", None, False, True),
    ("exists", None, "", True),
    ("exists", None, LIST, True),
    ("exists", None, None, False),
    ("exists", None, MISSING, False),
    ("does-not-exist", None, 0, False),
    ("does-not-exist", None, "", False),
    ("does-not-exist", None, None, True),
    ("does-not-exist", None, MISSING, True),
    # in / not-in: each element matches like =
    ("in", ["v1", "v2"], "v1", True),
    ("in", ["v1", "v2"], "v3", False),
    ("in", [1, 2], 2.0, True),
    ("in", [1, 2], "1", False),
    ("in", [1, 2], True, False),
    ("in", [True], 1, False),
    ("in", [True], True, True),
    ("in", [1, "a", False], "a", True),
    ("in", [1, "a", False], False, True),
    ("in", [1, "a", False], 0, False),
    ("in", [], "v1", False),
    ("in", ["v1"], MISSING, False),
    ("in", ["v1"], None, False),
    ("in", ["v1"], LIST, False),
    ("not-in", ["v1", "v2"], "v1", False),
    ("not-in", ["v1", "v2"], "v3", True),
    ("not-in", [1, 2], 1.0, False),
    ("not-in", [1, 2], "1", True),
    ("not-in", [True], 1, True),
    ("not-in", [], "v1", True),
    ("not-in", ["v1"], MISSING, True),
    ("not-in", ["v1"], None, True),
]


def _condition(op: str, value: Any) -> dict[str, Any]:
    cond: dict[str, Any] = {"column": "f.x", "op": op}
    if op not in ("exists", "does-not-exist"):
        cond["value"] = value
    return cond


def _event(value: Any) -> dict[str, Any]:
    return {} if value is MISSING else {"f.x": value, "other": 1}


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "other"


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    """One in-memory DuckDB connection for the module."""
    return duckdb.connect()


def _ids(case: tuple[str, Any, Any, bool]) -> str:
    op, cv, ev, expected = case
    shown = "MISSING" if ev is MISSING else json.dumps(ev)
    return f"{op} {json.dumps(cv)} on {shown} -> {expected}"


def test_table_covers_every_operator() -> None:
    """Every operator appears in the shared case table, on missing values too."""
    assert OPERATORS == {case[0] for case in CASES}
    assert OPERATORS == {case[0] for case in CASES if case[2] is MISSING}


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_python_predicate(case: tuple[str, Any, Any, bool]) -> None:
    """The compiled Python predicate gives the table's answer."""
    op, cond_value, event_value, expected = case
    predicate = compile_filter([_condition(op, cond_value)])
    assert expected == predicate(_event(event_value))


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_duckdb_json_column(case: tuple[str, Any, Any, bool], con: Any) -> None:
    """The SQL over a JSON column gives the table's answer (SQL NULL and JSON null alike)."""
    op, cond_value, event_value, expected = case
    sql = filter_sql([_condition(op, cond_value)])
    raw = None if event_value is MISSING else json.dumps(event_value)
    actual = con.execute(f'SELECT {sql} FROM (SELECT CAST(? AS JSON) AS "f.x")', [raw]).fetchone()
    assert expected == actual[0]


_SQL_TYPES = {"number": ["DOUBLE", "BIGINT"], "string": ["VARCHAR"], "boolean": ["BOOLEAN"]}


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_duckdb_typed_column(case: tuple[str, Any, Any, bool], con: Any) -> None:
    """The SQL over a uniformly typed column (or an absent one) gives the table's answer."""
    op, cond_value, event_value, expected = case
    cond = _condition(op, cond_value)
    if event_value is MISSING:
        sql = filter_sql([cond], column=lambda name: "no_such_column", kinds={"f.x": "missing"})
        assert expected == con.execute(f"SELECT {sql}").fetchone()[0]
        return
    if event_value is None:
        typings = [(kind, t) for kind, types in _SQL_TYPES.items() for t in types]
    elif _kind_of(event_value) == "other":
        typings = [("other", "JSON")]
    else:
        kind = _kind_of(event_value)
        types = _SQL_TYPES[kind]
        if kind == "number" and isinstance(event_value, float) and not event_value.is_integer():
            types = ["DOUBLE"]
        typings = [(kind, t) for t in types]
    for kind, sql_type in typings:
        sql = filter_sql([cond], kinds={"f.x": kind})  # type: ignore[dict-item]
        raw = event_value if kind != "other" else json.dumps(event_value)
        row = con.execute(f'SELECT {sql} FROM (SELECT CAST(? AS {sql_type}) AS "f.x")', [raw])
        assert (kind, sql_type, expected) == (kind, sql_type, row.fetchone()[0])


COMBINATIONS = [
    # (conditions, combination, event, expected)
    ([("=", 1), (">", 0)], "AND", 1, True),
    ([("=", 1), (">", 5)], "AND", 1, False),
    ([("=", 1), (">", 5)], "OR", 1, True),
    ([("=", 2), (">", 5)], "OR", 1, False),
    ([("=", 2), ("!=", 5), ("exists", None)], "AND", MISSING, False),
    ([("=", 2), ("!=", 5), ("exists", None)], "OR", MISSING, True),
    ([("=", 2), ("!=", 5), ("does-not-exist", None)], "AND", MISSING, False),
    ([("!=", 2), ("!=", 5), ("does-not-exist", None)], "AND", MISSING, True),
    ([], "AND", 1, True),
    ([], "OR", MISSING, True),
]


@pytest.mark.parametrize("conds, combination, event_value, expected", COMBINATIONS)
def test_combinations(
    conds: list[tuple[str, Any]], combination: str, event_value: Any, expected: bool, con: Any
) -> None:
    """AND / OR combine conditions identically in Python and DuckDB; none means true."""
    conditions = [_condition(op, v) for op, v in conds]
    python = compile_filter(conditions, combination)(_event(event_value))
    sql = filter_sql(conditions, combination)
    raw = None if event_value is MISSING else json.dumps(event_value)
    duck = con.execute(f'SELECT {sql} FROM (SELECT CAST(? AS JSON) AS "f.x")', [raw]).fetchone()
    assert (expected, expected) == (python, duck[0])


def test_numpy_and_subclass_values() -> None:
    """numpy scalars and int/str subclasses are classified by kind, like plain values."""
    import enum

    import numpy as np

    class Code(enum.IntEnum):
        OK = 200

    class Name(str):
        pass

    cases = [
        (("=", 200), Code.OK, True),
        ((">", 1.5), np.float32(2.0), True),
        (("=", 3), np.int64(3), True),
        (("=", True), np.bool_(True), True),
        (("=", 1), np.bool_(True), False),
        (("in", [3]), np.int16(3), True),
        (("starts-with", "ab"), Name("abc"), True),
        (("in", ["abc"]), Name("abc"), True),
        (("=", 1), object(), False),
    ]
    expected = [c[2] for c in cases]
    actual = [compile_filter([_condition(*c[0])])(_event(c[1])) for c in cases]
    assert expected == actual


BAD = [
    ({"column": "x", "op": "like", "value": 1}, "unknown operator"),
    ({"op": "=", "value": 1}, "'column'"),
    ({"column": "", "op": "=", "value": 1}, "'column'"),
    ({"column": 3, "op": "=", "value": 1}, "'column'"),
    ({"column": "x", "op": "="}, "needs a 'value'"),
    ({"column": "x", "op": "=", "value": None}, "needs a 'value'"),
    ({"column": "x", "op": ">", "value": True}, "a number or a string"),
    ({"column": "x", "op": ">", "value": [1]}, "a number or a string"),
    ({"column": "x", "op": "=", "value": (1,)}, "a boolean or a number or a string"),
    ({"column": "x", "op": "=", "value": float("nan")}, "finite"),
    ({"column": "x", "op": "<", "value": float("inf")}, "finite"),
    ({"column": "x", "op": "contains", "value": 5}, "a string"),
    ({"column": "x", "op": "starts-with", "value": None}, "needs a 'value'"),
    ({"column": "x", "op": "in", "value": "abc"}, "list of values"),
    ({"column": "x", "op": "not-in", "value": 5}, "list of values"),
    ({"column": "x", "op": "in", "value": [1, [2]]}, "a boolean or a number or a string"),
    ({"column": "x", "op": "in", "value": [None]}, "a boolean or a number or a string"),
    ({"column": "x", "op": "exists", "value": 1}, "takes no value"),
    ({"column": "x", "op": "=", "value": 1, "values": 2}, "unknown key"),
    ("x = 1", "not a mapping"),
]


@pytest.mark.parametrize("obj, message", BAD)
def test_parse_condition_rejects(obj: Any, message: str) -> None:
    """Bad conditions raise ConfigurationError saying what is wrong."""
    with pytest.raises(ConfigurationError) as info:
        parse_condition(obj)
    assert message in str(info.value)


def test_bad_combination() -> None:
    """A combination other than AND/OR is a ConfigurationError in both compilers."""
    for compiler in (compile_filter, filter_sql):
        with pytest.raises(ConfigurationError, match="'AND' or 'OR'"):
            compiler([], "XOR")


def test_parse_condition_normalises() -> None:
    """Mappings become Conditions; in-lists become tuples; exists has no value."""
    expected = [
        Condition("a", "in", (1, "b")),
        Condition("a", "exists", None),
        Condition("a", "=", 1.5),
        Condition("a", "=", 1.5),
    ]
    actual = [
        parse_condition({"column": "a", "op": "in", "value": [1, "b"]}),
        parse_condition({"column": "a", "op": "exists"}),
        parse_condition({"column": "a", "op": "=", "value": 1.5}),
        parse_condition(Condition("a", "=", 1.5)),
    ]
    assert expected == actual
    assert {"column": "a", "op": "in", "value": [1, "b"]} == actual[0].to_json()
    assert {"column": "a", "op": "exists"} == actual[1].to_json()


def test_sql_quotes_strange_names_and_values(con: Any) -> None:
    """Column names with quotes and values with quotes cannot break out of the SQL."""
    sql = filter_sql([{"column": 'we"ird', "op": "=", "value": "a'); DROP TABLE t; --"}])
    row = con.execute(
        f'SELECT {sql} FROM (SELECT CAST(? AS JSON) AS "we""ird")',
        [json.dumps("a'); DROP TABLE t; --")],
    ).fetchone()
    assert (True,) == row


def test_predicate_is_fast() -> None:
    """A simple compiled condition costs well under a microsecond (generous sanity bound)."""
    predicate = compile_filter([{"column": "duration_ms", "op": ">", "value": 100}])
    event = {f"k{i}": i for i in range(40)} | {"duration_ms": 150.0}
    per_call = min(timeit.repeat(lambda: predicate(event), number=20_000, repeat=3)) / 20_000
    assert per_call < 5e-6
