"""The one filter module: Honeycomb's filter operators, as Python predicates and DuckDB SQL.

Every operator is defined once, in :data:`_OPERATORS`; a condition compiles both to a
Python predicate over an event dict (:func:`compile_filter`, used by ``RulesSampler``) and
to a DuckDB boolean expression (:func:`filter_sql`, used by ``run_local`` and the CLI's
``--where``). ``tests/query/test_filter.py`` runs one table of cases against both engines.

Semantics (identical in both engines):

* A value is *missing* when the key is absent or its value is ``None`` (JSON ``null``).
* Values have one of four kinds: boolean, number (int or float, compared numerically;
  ``bool`` is **not** a number), string (lists and objects included, see below), other.
* A positive operator (``=``, ``>``, ``>=``, ``<``, ``<=``, ``starts-with``,
  ``ends-with``, ``contains``, ``in``, ``exists``) never matches a missing value, and
  matches only a value of the condition value's kind: ``duration_ms > 5`` is false on the
  string ``"7"``; ``error = true`` is false on the number ``1``.
* Each negative operator (``!=``, ``does-not-start-with``, ``does-not-end-with``,
  ``does-not-contain``, ``not-in``, ``does-not-exist``) is exactly the negation of its
  positive twin, so it matches a missing value and a value of another kind.
* ``>``, ``>=``, ``<``, ``<=`` take a number (numeric comparison) or a string (comparison
  by Unicode code point, which is also DuckDB's byte order for UTF-8); any other value
  is a :class:`ConfigurationError`.
* ``starts-with``, ``ends-with``, ``contains`` and their negations take a string and look
  only at string values (``contains`` is a substring test, not list membership).
* **A list or object is a string: its compact JSON text** (:func:`json_text`), as in
  Honeycomb, which stores a nested value as its JSON text (docs, "Send JSON Logs", "Data
  Expectations"). Every operator that compares with a string sees that text
  (``tags contains "b"`` matches ``["a","b"]``), and a list or object given as the value
  of ``=``, ``!=`` or a string operator stands for its text. The text is DuckDB's JSON
  writer's, so both engines see the same characters: no spaces, keys in order,
  non-ASCII as is, controls as ``\\u001F``, floats in shortest form, in decimal between
  1e-7 and 1e21 (``1.0``, ``0.000001``), else as ``1e21``.
* ``in`` / ``not-in`` take a list of booleans, numbers and strings; an element matches
  like ``=``. ``exists`` / ``does-not-exist`` take no value.
* Non-finite numbers (NaN, infinity) are rejected as condition values; events never hold
  them (normalisation turns them into ``null``).
"""

from __future__ import annotations

import math
import numbers
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from operator import methodcaller
from typing import Any, Final, Literal

import orjson

from wideevents._errors import ConfigurationError

__all__ = [
    "COLUMN_KINDS",
    "OPERATORS",
    "ColumnKind",
    "Condition",
    "Predicate",
    "compile_condition",
    "compile_filter",
    "condition_sql",
    "filter_sql",
    "json_text",
    "parse_combination",
    "parse_condition",
    "quote_identifier",
    "sql_literal",
]

Predicate = Callable[[Mapping[str, Any]], bool]

# How a column is stored where the SQL will run. ``json``: a DuckDB JSON value (any kind,
# checked per row with json_type); the typed kinds let a uniformly typed column skip that.
ColumnKind = Literal["json", "number", "string", "boolean", "other", "missing"]
COLUMN_KINDS: Final[frozenset[str]] = frozenset(
    ("json", "number", "string", "boolean", "other", "missing")
)

# The operator table: name -> (positive base operator, negated, kind of value it takes).
# Value kinds: "scalar" bool/number/string, "ordered" number/string, "string", "list",
# "none" (no value).
_OPERATORS: Final[dict[str, tuple[str, bool, str]]] = {
    "=": ("=", False, "scalar"),
    "!=": ("=", True, "scalar"),
    ">": (">", False, "ordered"),
    ">=": (">=", False, "ordered"),
    "<": ("<", False, "ordered"),
    "<=": ("<=", False, "ordered"),
    "starts-with": ("starts-with", False, "string"),
    "does-not-start-with": ("starts-with", True, "string"),
    "ends-with": ("ends-with", False, "string"),
    "does-not-end-with": ("ends-with", True, "string"),
    "contains": ("contains", False, "string"),
    "does-not-contain": ("contains", True, "string"),
    "exists": ("exists", False, "none"),
    "does-not-exist": ("exists", True, "none"),
    "in": ("in", False, "list"),
    "not-in": ("in", True, "list"),
}

OPERATORS: Final[frozenset[str]] = frozenset(_OPERATORS)

_COMBINATIONS: Final[frozenset[str]] = frozenset(("AND", "OR"))

# Value kinds of event values and condition values.
_BOOL: Final = "boolean"
_NUM: Final = "number"
_STR: Final = "string"
_OTHER: Final = "other"


@dataclass(frozen=True)
class Condition:
    """One filter condition. ``value`` is ``None`` for exists/does-not-exist and a tuple
    for in/not-in once it has gone through :func:`parse_condition`."""

    column: str
    op: str
    value: Any = None

    def to_json(self) -> dict[str, Any]:
        """The Honeycomb JSON form: ``{"column", "op"}`` plus ``"value"`` when it takes one."""
        out: dict[str, Any] = {"column": self.column, "op": self.op}
        if _OPERATORS[self.op][2] == "list":
            out["value"] = list(self.value)
        elif self.value is not None:
            out["value"] = self.value
        return out


def _value_kind(value: Any) -> str:
    """The kind of a value: exact types first (the common case), then subclasses and numpy."""
    t = type(value)
    if t is str:
        return _STR
    if t is bool:
        return _BOOL
    if t is int or t is float:
        return _NUM
    if value is None:
        return _OTHER
    if isinstance(value, bool):
        return _BOOL
    if isinstance(value, str):
        return _STR
    dtype = getattr(value, "dtype", None)
    if dtype is not None and getattr(dtype, "kind", "") == "b":
        return _BOOL  # numpy.bool_ is neither bool nor a numbers.Number
    if isinstance(value, numbers.Real):
        return _NUM
    return _OTHER


def _describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


# --- the JSON text of a list or object ---------------------------------------------------

_TOKEN: Final = re.compile(r'"(?:[^"\\]|\\.)*"|-?[0-9][0-9.eE+-]*')
_ESCAPE: Final = re.compile(r"\\(u[0-9a-f]{4}|.)")


def _upper_hex(match: re.Match[str]) -> str:
    text = match.group(1)
    return "\\" + ("u" + text[1:].upper() if text[0] == "u" else text)


def _float_text(token: str) -> str:
    """A JSON number as yyjson writes it (shortest digits; decimal for 1e-7 < |x| < 1e21)."""
    if "." not in token and "e" not in token and "E" not in token:
        return token  # an integer: written as is
    x = float(token)
    sign = "-" if math.copysign(1.0, x) < 0 else ""
    mantissa, _, exp = repr(abs(x)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    if exp:
        digits, e = (whole + fraction).rstrip("0") or "0", int(exp)
    elif whole.strip("0"):
        digits, e = (whole + fraction).lstrip("0").rstrip("0"), len(whole.lstrip("0")) - 1
    elif fraction.strip("0"):
        digits = fraction.lstrip("0").rstrip("0")
        e = -(len(fraction) - len(fraction.lstrip("0")) + 1)
    else:
        return sign + "0.0"
    if -7 < e < 21:
        if e >= 0:
            return f"{sign}{digits[: e + 1].ljust(e + 1, '0')}.{digits[e + 1 :] or '0'}"
        return f"{sign}0.{'0' * (-e - 1)}{digits}"
    return f"{sign}{digits[0]}{'.' + digits[1:] if len(digits) > 1 else ''}e{e}"


def _token(match: re.Match[str]) -> str:
    text = match.group(0)
    if text[0] == '"':
        return _ESCAPE.sub(_upper_hex, text) if "\\u" in text else text
    return _float_text(text)


def json_text(value: Any) -> str | None:
    """The compact JSON text of a list or object, character for character as DuckDB's JSON
    writer gives it (module docstring); None when it is not JSON-serialisable."""
    try:
        raw = orjson.dumps(value).decode()
    except (TypeError, ValueError):  # orjson.JSONEncodeError: depth, big int, odd keys
        return None
    return _TOKEN.sub(_token, raw)


def _check_scalar(column: str, op: str, value: Any, allowed: tuple[str, ...]) -> Any:
    if _OPERATORS[op][2] in ("scalar", "string") and isinstance(value, (list, dict)):
        text = json_text(value)  # a list or object value stands for its JSON text
        if text is None:
            raise ConfigurationError(
                f"filter on {column!r}: value {value!r} cannot be written as JSON; " + _hint(op)
            )
        value = text
    kind = _value_kind(value)
    if value is None or kind not in allowed:
        raise ConfigurationError(
            f"filter on {column!r}: operator {op!r} needs a value that is "
            f"{' or '.join(_KIND_WORDS[k] for k in allowed)}, got {_describe(value)}; " + _hint(op)
        )
    if kind == _NUM:
        if not math.isfinite(value):
            raise ConfigurationError(
                f"filter on {column!r}: value {value!r} is not a finite number; "
                "use does-not-exist to find missing (null) values"
            )
        return value if type(value) in (int, float) else float(value)
    if kind == _BOOL:
        return bool(value)
    if kind == _STR:
        return str(value)
    return value


_KIND_WORDS: Final = {_BOOL: "a boolean", _NUM: "a number", _STR: "a string"}
_EXAMPLES: Final = {
    "scalar": ("error", "true"),
    "ordered": ("duration_ms", "250"),
    "string": ("http.route", '"/v1/"'),
    "list": ("model.version", '["v1", "v2"]'),
}


def _hint(op: str) -> str:
    column, value = _EXAMPLES[_OPERATORS[op][2]]
    return f'e.g. {{"column": "{column}", "op": "{op}", "value": {value}}}'


def parse_condition(obj: Mapping[str, Any] | Condition) -> Condition:
    """Validate one condition (a Honeycomb filter dict or a :class:`Condition`).

    Raises :class:`ConfigurationError` on an unknown operator, a missing or empty column,
    a missing value where the operator needs one, a value given to exists/does-not-exist,
    a non-list value for in/not-in, or a value of a kind the operator cannot use (see the
    module docstring). ``in`` values come back as a tuple.
    """
    column: Any
    op: Any
    value: Any
    if isinstance(obj, Condition):
        column, op, value, has_value = obj.column, obj.op, obj.value, obj.value is not None
    elif isinstance(obj, Mapping):
        unknown = set(obj) - {"column", "op", "value"}
        if unknown:
            raise ConfigurationError(
                f"filter {dict(obj)!r}: unknown key(s) {sorted(unknown)}; "
                'a filter is {"column": ..., "op": ..., "value": ...}'
            )
        column, op, value = obj.get("column"), obj.get("op"), obj.get("value")
        has_value = "value" in obj and value is not None
    else:
        raise ConfigurationError(
            f"filter {obj!r} is not a mapping; "
            'write {"column": "duration_ms", "op": ">", "value": 250}'
        )
    if not isinstance(column, str) or not column:
        raise ConfigurationError(
            f"filter {_shown(obj)}: 'column' must be a non-empty string (the field name, "
            "e.g. 'duration_ms')"
        )
    if op not in _OPERATORS:
        raise ConfigurationError(
            f"filter on {column!r}: unknown operator {op!r}; use one of " + ", ".join(_OPERATORS)
        )
    value_kind = _OPERATORS[op][2]
    if value_kind == "none":
        if has_value:
            raise ConfigurationError(
                f"filter on {column!r}: operator {op!r} takes no value; remove 'value'"
            )
        return Condition(column, op, None)
    if not has_value:
        raise ConfigurationError(
            f"filter on {column!r}: operator {op!r} needs a 'value'; " + _hint(op)
        )
    if value_kind == "list":
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ConfigurationError(
                f"filter on {column!r}: operator {op!r} needs a list of values, got "
                f"{_describe(value)}; " + _hint(op)
            )
        items = tuple(_check_scalar(column, op, v, (_BOOL, _NUM, _STR)) for v in value)
        return Condition(column, op, items)
    allowed = {"scalar": (_BOOL, _NUM, _STR), "ordered": (_NUM, _STR), "string": (_STR,)}
    return Condition(column, op, _check_scalar(column, op, value, allowed[value_kind]))


def _shown(obj: object) -> str:
    return repr(dict(obj) if isinstance(obj, Mapping) else obj)


def parse_combination(combination: str) -> str:
    """``"AND"`` or ``"OR"`` (any case) -> upper case; anything else: ConfigurationError."""
    if isinstance(combination, str) and combination.upper() in _COMBINATIONS:
        return combination.upper()
    raise ConfigurationError(f"filter_combination must be 'AND' or 'OR', got {combination!r}")


# --- Python predicates ------------------------------------------------------------------


def _slow_test(x: Any, kind: str, test: Callable[[Any], bool]) -> bool:
    """``test`` on a value that is not of an exact builtin type (subclass, numpy scalar)."""
    if x is None:
        return False
    try:
        if _value_kind(x) != kind:
            return False
        return test(float(x) if kind == _NUM else bool(x) if kind == _BOOL else str(x))
    except Exception:  # noqa: BLE001  # an exotic value makes the condition false
        return False


def _kind_predicate(column: str, kind: str, test: Callable[[Any], bool]) -> Predicate:
    """``test(value)`` when the column holds a value of ``kind``, else False."""
    if kind == _NUM:

        def number_test(event: Mapping[str, Any]) -> bool:
            x = event.get(column)
            t = type(x)
            if t is int or t is float:
                return test(x)
            return _slow_test(x, kind, test)

        return number_test
    if kind == _STR:

        def string_test(event: Mapping[str, Any]) -> bool:
            x = event.get(column)
            t = type(x)
            if t is str:
                return test(x)
            if t is list or t is dict:  # a nested value is its JSON text, as in Honeycomb
                text = json_text(x)
                return text is not None and test(text)
            return _slow_test(x, kind, test)

        return string_test

    def bool_test(event: Mapping[str, Any]) -> bool:
        x = event.get(column)
        if type(x) is bool:
            return test(x)
        return _slow_test(x, kind, test)

    return bool_test


# Tests bound to the condition value; C-level callables, so no extra Python frame per event.
_TESTS: Final[dict[str, Callable[[Any], Callable[[Any], bool]]]] = {
    "=": lambda v: partial(operator.is_, v) if type(v) is bool else partial(operator.eq, v),
    ">": lambda v: partial(operator.lt, v),
    ">=": lambda v: partial(operator.le, v),
    "<": lambda v: partial(operator.gt, v),
    "<=": lambda v: partial(operator.ge, v),
    "starts-with": lambda v: methodcaller("startswith", v),
    "ends-with": lambda v: methodcaller("endswith", v),
    "contains": lambda v: methodcaller("__contains__", v),
}


def _in_predicate(column: str, values: tuple[Any, ...]) -> Predicate:
    # Split by kind so that True never matches 1 (True == 1 and hash(True) == hash(1)).
    strings = frozenset(v for v in values if _value_kind(v) == _STR)
    numbers_ = frozenset(v for v in values if _value_kind(v) == _NUM)
    bools = frozenset(v for v in values if _value_kind(v) == _BOOL)
    by_kind = {_STR: strings, _NUM: numbers_, _BOOL: bools}

    def is_in(event: Mapping[str, Any]) -> bool:
        x = event.get(column)
        t = type(x)
        if t is str:
            return x in strings
        if t is int or t is float:
            return x in numbers_
        if t is bool:
            return x in bools
        if isinstance(x, (list, dict)):
            return json_text(x) in strings
        return any(_slow_test(x, k, values.__contains__) for k, values in by_kind.items())

    return is_in


def _exists_predicate(column: str) -> Predicate:
    def exists(event: Mapping[str, Any]) -> bool:
        return event.get(column) is not None

    return exists


def _positive_predicate(base: str, column: str, value: Any) -> Predicate:
    if base == "in":
        return _in_predicate(column, value)
    if base == "exists":
        return _exists_predicate(column)
    kind = _STR if base in ("starts-with", "ends-with", "contains") else _value_kind(value)
    return _kind_predicate(column, kind, _TESTS[base](value))


def compile_condition(condition: Mapping[str, Any] | Condition) -> Predicate:
    """One condition -> ``predicate(event) -> bool``; never raises on any event value."""
    cond = parse_condition(condition)
    base, negated, _ = _OPERATORS[cond.op]
    if base == "exists" and negated:
        column = cond.column

        def does_not_exist(event: Mapping[str, Any]) -> bool:
            return event.get(column) is None

        return does_not_exist
    positive = _positive_predicate(base, cond.column, cond.value)
    if not negated:
        return positive

    def negation(event: Mapping[str, Any]) -> bool:
        return not positive(event)

    return negation


def compile_filter(
    conditions: Sequence[Mapping[str, Any] | Condition], combination: str = "AND"
) -> Predicate:
    """Conditions -> one ``predicate(event) -> bool`` (all bound at compile time).

    No conditions: always true. Raises :class:`ConfigurationError` on a bad condition or a
    combination other than AND/OR; the predicate itself never raises.
    """
    combo = parse_combination(combination)
    if isinstance(conditions, (str, bytes, Mapping)):
        raise ConfigurationError(
            f"filters must be a list of conditions, got {type(conditions).__name__}"
        )
    preds = tuple(compile_condition(c) for c in conditions)
    if not preds:
        return lambda event: True
    if len(preds) == 1:
        return preds[0]
    if len(preds) == 2:
        first, second = preds
        if combo == "AND":
            return lambda event: first(event) and second(event)
        return lambda event: first(event) or second(event)
    if combo == "AND":
        return lambda event: all(p(event) for p in preds)
    return lambda event: any(p(event) for p in preds)


# --- DuckDB SQL --------------------------------------------------------------------------


def quote_identifier(name: str) -> str:
    """A DuckDB quoted identifier (dotted field names are one identifier)."""
    return '"' + name.replace('"', '""') + '"'


def sql_literal(value: Any) -> str:
    """A DuckDB literal for a boolean, number or string (floats typed DOUBLE, not DECIMAL)."""
    kind = _value_kind(value)
    if kind == _BOOL:
        return "TRUE" if value else "FALSE"
    if kind == _NUM:
        if type(value) is int or isinstance(value, numbers.Integral):
            return str(int(value))
        return f"CAST('{float(value)!r}' AS DOUBLE)"
    if kind == _STR:
        return "'" + str(value).replace("'", "''") + "'"
    raise ConfigurationError(f"cannot use {_describe(value)} as a SQL literal")


_JSON_NUMBER = "json_type({0}) IN ('BIGINT', 'UBIGINT', 'DOUBLE')"
# A string test also sees lists and objects, as their JSON text: json() writes it anew
# (compact, whatever the spacing of the text the JSON value came from).
_JSON_TYPES = {
    _NUM: _JSON_NUMBER,
    _STR: "json_type({0}) IN ('VARCHAR', 'ARRAY', 'OBJECT')",
    _BOOL: "json_type({0}) = 'BOOLEAN'",
}
_JSON_VALUE = {
    _NUM: "TRY_CAST({0} AS DOUBLE)",
    _STR: "(CASE WHEN json_type({0}) = 'VARCHAR' THEN {0} ->> '$' ELSE CAST(json({0}) AS VARCHAR) END)",
    _BOOL: "TRY_CAST({0} AS BOOLEAN)",
}


def _typed(expr: str, kind: ColumnKind, value_kind: str, test: Callable[[str], str]) -> str:
    """``test`` applied to the column seen as ``value_kind``; FALSE when it is another kind."""
    if kind == "json":
        return f"({_JSON_TYPES[value_kind].format(expr)} AND {test(_JSON_VALUE[value_kind].format(expr))})"
    if kind == value_kind:
        return test(expr)
    if kind == "other" and value_kind == _STR:
        return test(f"CAST(json({expr}) AS VARCHAR)")
    return "FALSE"


def _in_list(literals: list[str]) -> Callable[[str], str]:
    listed = ", ".join(literals)
    return lambda expr: f"{expr} IN ({listed})"


def _positive_sql(base: str, expr: str, kind: ColumnKind, value: Any) -> str:
    if kind == "missing":
        return "FALSE"
    if base == "exists":
        if kind == "json":
            return f"({expr} IS NOT NULL AND json_type({expr}) <> 'NULL')"
        return f"({expr} IS NOT NULL)"
    if base == "in":
        by_kind: dict[str, list[str]] = {}
        for v in value:
            by_kind.setdefault(_value_kind(v), []).append(sql_literal(v))
        parts = [_typed(expr, kind, k, _in_list(lits)) for k, lits in by_kind.items()]
        parts = [p for p in parts if p != "FALSE"]
        return "(" + " OR ".join(parts) + ")" if parts else "FALSE"
    lit = sql_literal(value)
    value_kind = _value_kind(value)
    if base in ("=", ">", ">=", "<", "<="):
        return _typed(expr, kind, value_kind, lambda e: f"{e} {base} {lit}")
    function = {"starts-with": "starts_with", "ends-with": "ends_with", "contains": "contains"}
    return _typed(expr, kind, _STR, lambda e: f"{function[base]}({e}, {lit})")


def condition_sql(
    condition: Mapping[str, Any] | Condition,
    *,
    column: Callable[[str], str] = quote_identifier,
    kinds: Mapping[str, ColumnKind] | None = None,
) -> str:
    """One condition -> a DuckDB expression that is always TRUE or FALSE, never NULL."""
    cond = parse_condition(condition)
    base, negated, _ = _OPERATORS[cond.op]
    kind: ColumnKind = (kinds or {}).get(cond.column, "json")
    if kind not in COLUMN_KINDS:
        raise ConfigurationError(f"unknown column kind {kind!r} for {cond.column!r}")
    positive = _positive_sql(base, column(cond.column), kind, cond.value)
    if positive == "FALSE":
        return "TRUE" if negated else "FALSE"
    # IS TRUE / IS NOT TRUE turn SQL's NULL (missing) into the filter's two-valued answer.
    return f"({positive} IS NOT TRUE)" if negated else f"({positive} IS TRUE)"


def filter_sql(
    conditions: Sequence[Mapping[str, Any] | Condition],
    combination: str = "AND",
    *,
    column: Callable[[str], str] = quote_identifier,
    kinds: Mapping[str, ColumnKind] | None = None,
) -> str:
    """Conditions -> one DuckDB boolean expression (``TRUE`` when there are none).

    ``column(name)`` gives the SQL expression of a field (default: the quoted name).
    ``kinds[name]`` says how that expression is typed: ``"json"`` (the default) for a DuckDB
    JSON value of any kind; ``"number"`` (any numeric type), ``"string"`` (VARCHAR),
    ``"boolean"`` when the column holds only that kind (or NULL); ``"other"`` for a column
    of lists/objects; ``"missing"`` when the field is absent from the data altogether.
    """
    combo = parse_combination(combination)
    if isinstance(conditions, (str, bytes, Mapping)):
        raise ConfigurationError(
            f"filters must be a list of conditions, got {type(conditions).__name__}"
        )
    parts = [condition_sql(c, column=column, kinds=kinds) for c in conditions]
    if not parts:
        return "TRUE"
    if len(parts) == 1:
        return parts[0]
    return "(" + f" {combo} ".join(parts) + ")"
