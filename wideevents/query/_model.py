"""Honeycomb's query specification as typed, validated objects, and the result type.

:class:`Query` holds every field of Honeycomb's query specification (docs/query.md, "The specification");
:meth:`Query.from_json` / :meth:`Query.to_json` round-trip the JSON Honeycomb accepts.
Validation happens when a :class:`Query` is built and raises
:class:`~wideevents.ConfigurationError` with a message saying what to change.

Exceptions of this package (querying is something a user asks for, not instrumentation,
so failures of a query are reported to the caller)::

    ValueError
    └── ConfigurationError      a bad specification, path, key or missing extra
    Exception
    └── QueryError              the query could not run (HTTP error, unreadable file)
        └── QueryTimeout        Honeycomb did not finish in time (also a TimeoutError)
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from wideevents._errors import ConfigurationError
from wideevents._filter import Condition, parse_combination, parse_condition

__all__ = [
    "CALCULATION_OPS",
    "COMPARE_OFFSETS",
    "PERCENTILES",
    "RATE_OPS",
    "Calculation",
    "Having",
    "Order",
    "Query",
    "QueryError",
    "QueryResult",
    "QueryTimeout",
]

# Pxx -> the percentile it means (P001 is the 0.1th, P999 the 99.9th).
PERCENTILES: Final[dict[str, float]] = {
    "P001": 0.1, "P01": 1, "P05": 5, "P10": 10, "P20": 20, "P25": 25, "P50": 50,
    "P75": 75, "P80": 80, "P90": 90, "P95": 95, "P99": 99, "P999": 99.9,
}  # fmt: skip
_NO_COLUMN: Final = ("COUNT", "CONCURRENCY")
# RATE_X(c): per time bucket, X of c minus X of c in the bucket before (Honeycomb docs,
# "Visualize Rate"); each is computed from the per-bucket SUM, AVG or MAX.
RATE_OPS: Final[dict[str, str]] = {"RATE_AVG": "AVG", "RATE_SUM": "SUM", "RATE_MAX": "MAX"}
CALCULATION_OPS: Final[tuple[str, ...]] = (
    *_NO_COLUMN, "SUM", "AVG", "MIN", "MAX", "COUNT_DISTINCT", *PERCENTILES, "HEATMAP",
    *RATE_OPS,
)  # fmt: skip
_HAVING_OPS: Final = ("=", "!=", ">", ">=", "<", "<=")
MAX_BREAKDOWNS: Final = 100
MAX_LIMIT: Final = 1000
# Honeycomb's default: "the default limit of 1_000 results" (API reference, "Create a Query
# Result"). The Query Data API client sends the limit explicitly, so both engines agree.
DEFAULT_LIMIT: Final = 1000
# The offsets Honeycomb accepts (API reference, "Create a Query": compare_time_offset_seconds).
COMPARE_OFFSETS: Final = (1800, 3600, 7200, 28800, 86400, 604800, 2419200, 15724800)
_FIELDS: Final = (
    "calculations", "filters", "filter_combination", "breakdowns", "havings", "orders",
    "limit", "time_range", "start_time", "end_time", "granularity", "calculated_fields",
    "formulas", "compare_time_offset_seconds",
)  # fmt: skip


class QueryError(Exception):
    """A query could not run; ``status`` is the HTTP status when Honeycomb said no."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class QueryTimeout(QueryError, TimeoutError):
    """Honeycomb did not complete the query result before the deadline."""


_CALC_TEXT = re.compile(r"^\s*([A-Za-z_0-9]+)\s*(?:\(\s*(.*?)\s*\))?\s*$")


@dataclass(frozen=True)
class Calculation:
    """One calculation: ``op`` and, except for COUNT and CONCURRENCY, a ``column``; a
    ``name`` (the result key, and a term orders can name in their ``column``) and
    ``filters`` that narrow the events of this calculation only (Honeycomb's calculation
    fields ``name``, ``filters``, ``filter_combination``). COUNT with a column is kept
    for Honeycomb; the local engine refuses it."""

    op: str
    column: str | None = None
    name: str | None = None
    filters: tuple[Condition, ...] = ()
    filter_combination: str = "AND"

    def __post_init__(self) -> None:
        if self.op not in CALCULATION_OPS:
            raise ConfigurationError(
                f"unknown calculation {self.op!r}; use one of {', '.join(CALCULATION_OPS)}"
            )
        if self.op == "CONCURRENCY" and self.column is not None:
            raise ConfigurationError(f"CONCURRENCY takes no column; remove {self.column!r}")
        if self.column is not None and (not isinstance(self.column, str) or not self.column):
            raise ConfigurationError(f"{self.op}: column must be a non-empty string")
        if self.op not in _NO_COLUMN and self.column is None:
            raise ConfigurationError(
                f"{self.op} needs a column, e.g. {self.op}(duration_ms) or "
                f'{{"op": "{self.op}", "column": "duration_ms"}}'
            )
        if self.name is not None and (not isinstance(self.name, str) or not self.name):
            raise ConfigurationError(f"{self.op}: a calculation's name must be a non-empty string")
        filters = tuple(parse_condition(f) for f in _items("calculation filters", self.filters))
        object.__setattr__(self, "filters", filters)
        object.__setattr__(self, "filter_combination", parse_combination(self.filter_combination))

    @property
    def key(self) -> str:
        """The result key: the ``name``, else ``COUNT``, ``P99(duration_ms)``..."""
        return self.name if self.name is not None else self.term

    @property
    def term(self) -> str:
        """``op(column)`` (or ``op``), whatever the name."""
        return self.op if self.column is None else f"{self.op}({self.column})"

    @classmethod
    def parse(cls, obj: Calculation | Mapping[str, Any] | str) -> Calculation:
        """From a Calculation, ``{"op", "column"}`` or text such as ``P99(duration_ms)``."""
        if isinstance(obj, Calculation):
            return obj
        if isinstance(obj, str):
            match = _CALC_TEXT.match(obj)
            if not match:
                raise ConfigurationError(
                    f"cannot read calculation {obj!r}; write e.g. COUNT or P99(duration_ms)"
                )
            return cls(match.group(1).upper(), match.group(2) or None)
        if isinstance(obj, Mapping):
            _check_keys(obj, {"op", "column", "name", "filters", "filter_combination"},
                        "calculation")  # fmt: skip
            return cls(obj.get("op"), obj.get("column"), obj.get("name"),  # type: ignore[arg-type]
                       obj.get("filters") or (), obj.get("filter_combination") or "AND")  # fmt: skip
        raise ConfigurationError(f"a calculation must be a dict or text, got {obj!r}")

    def to_json(self) -> dict[str, Any]:
        """Honeycomb's form: ``{"op", "column"?, "name"?, "filters"?, "filter_combination"?}``."""
        out: dict[str, Any] = {"op": self.op}
        if self.column is not None:
            out["column"] = self.column
        if self.name is not None:
            out["name"] = self.name
        if self.filters:
            out["filters"] = [f.to_json() for f in self.filters]
            out["filter_combination"] = self.filter_combination
        return out


@dataclass(frozen=True)
class Having:
    """Keep only groups whose ``calculate_op(column)`` satisfies ``op value``."""

    calculate_op: str
    op: str
    value: float
    column: str | None = None

    def __post_init__(self) -> None:
        Calculation(self.calculate_op, self.column)  # validates op/column
        if self.calculate_op == "HEATMAP":
            raise ConfigurationError("a having cannot use HEATMAP; use a percentile instead")
        if self.op not in _HAVING_OPS:
            raise ConfigurationError(
                f"having op {self.op!r} is not one of {', '.join(_HAVING_OPS)}"
            )
        if isinstance(self.value, bool) or not isinstance(self.value, (int, float)):
            raise ConfigurationError(f"having value must be a number, got {self.value!r}")

    @property
    def calculation(self) -> Calculation:
        """The calculation this having tests."""
        return Calculation(self.calculate_op, self.column)

    @classmethod
    def parse(cls, obj: Having | Mapping[str, Any]) -> Having:
        """From a Having or Honeycomb's ``{"calculate_op", "column"?, "op", "value"}``."""
        if isinstance(obj, Having):
            return obj
        if not isinstance(obj, Mapping):
            raise ConfigurationError(f"a having must be a dict, got {obj!r}")
        _check_keys(obj, {"calculate_op", "column", "op", "value"}, "having")
        return cls(obj.get("calculate_op"), obj.get("op"), obj.get("value"), obj.get("column"))  # type: ignore[arg-type]

    def to_json(self) -> dict[str, Any]:
        """Honeycomb's form of the having."""
        out: dict[str, Any] = {"calculate_op": self.calculate_op}
        if self.column is not None:
            out["column"] = self.column
        return out | {"op": self.op, "value": self.value}


@dataclass(frozen=True)
class Order:
    """Sort by a calculation (``op`` and its ``column``) or by a breakdown (``column`` only)."""

    op: str | None = None
    column: str | None = None
    order: Literal["ascending", "descending"] = "ascending"

    def __post_init__(self) -> None:
        if self.order not in ("ascending", "descending"):
            raise ConfigurationError(
                f"order must be 'ascending' or 'descending', got {self.order!r}"
            )
        if self.op is None and not self.column:
            raise ConfigurationError("an order needs an 'op' (a calculation) or a 'column'")
        if self.op is not None:
            Calculation(self.op, self.column)
            if self.op == "HEATMAP":
                raise ConfigurationError("cannot order by HEATMAP; order by a percentile")

    @property
    def calculation(self) -> Calculation | None:
        """The calculation ordered on, or None for a breakdown."""
        return None if self.op is None else Calculation(self.op, self.column)

    @classmethod
    def parse(cls, obj: Order | Mapping[str, Any]) -> Order:
        """From an Order or Honeycomb's ``{"op"?, "column"?, "order"?}``."""
        if isinstance(obj, Order):
            return obj
        if not isinstance(obj, Mapping):
            raise ConfigurationError(f"an order must be a dict, got {obj!r}")
        _check_keys(obj, {"op", "column", "order"}, "order")
        return cls(obj.get("op"), obj.get("column"), obj.get("order", "ascending"))

    def to_json(self) -> dict[str, Any]:
        """Honeycomb's form of the order."""
        out: dict[str, Any] = {}
        if self.op is not None:
            out["op"] = self.op
        if self.column is not None:
            out["column"] = self.column
        return out | {"order": self.order}


def _check_keys(obj: Mapping[str, Any], allowed: set[str], what: str) -> None:
    unknown = set(obj) - allowed
    if unknown:
        raise ConfigurationError(
            f"{what} {dict(obj)!r}: unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}"
        )


def _int_or_none(name: str, value: Any, *, minimum: int = 0) -> int | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _items(name: str, value: Any) -> Sequence[Any]:
    if value is None:
        return ()
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        raise ConfigurationError(f"{name} must be a list, got {type(value).__name__}")
    return value


@dataclass(frozen=True, init=False)
class Query:
    """A Honeycomb query specification (every field of docs/query.md, "The specification").

    Accepts the JSON forms for convenience (``calculations=["COUNT", "P99(duration_ms)"]``,
    ``filters=[{"column": ..., "op": ..., "value": ...}]``) and normalises them to the
    typed forms. No calculation means COUNT. ``limit`` None means Honeycomb's default
    (1,000). No time field means, locally, the whole file (Honeycomb's default is the last
    7,200 seconds); ``time_range`` pairs with at most one of ``start_time``/``end_time``.
    ``granularity`` 0 (as Honeycomb's UI writes it) means automatic, as None.
    ``calculated_fields`` and ``formulas`` are kept as given, for Honeycomb (the local
    engine refuses them); ``compare_time_offset_seconds`` is one of
    :data:`COMPARE_OFFSETS`.
    """

    calculations: tuple[Calculation, ...]
    filters: tuple[Condition, ...]
    filter_combination: str
    breakdowns: tuple[str, ...]
    havings: tuple[Having, ...]
    orders: tuple[Order, ...]
    limit: int | None
    time_range: int | None
    start_time: int | None
    end_time: int | None
    granularity: int | None
    calculated_fields: tuple[dict[str, Any], ...] = field(hash=False)
    formulas: tuple[dict[str, Any], ...] = field(hash=False)
    compare_time_offset_seconds: int | None = None

    def __init__(
        self,
        calculations: Sequence[Calculation | Mapping[str, Any] | str] = (),
        filters: Sequence[Condition | Mapping[str, Any]] = (),
        filter_combination: str = "AND",
        breakdowns: Sequence[str] = (),
        havings: Sequence[Having | Mapping[str, Any]] = (),
        orders: Sequence[Order | Mapping[str, Any]] = (),
        limit: int | None = None,
        time_range: int | None = None,
        start_time: int | None = None,
        end_time: int | None = None,
        granularity: int | None = None,
        calculated_fields: Sequence[Mapping[str, Any]] = (),
        formulas: Sequence[Mapping[str, Any]] = (),
        compare_time_offset_seconds: int | None = None,
    ) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        for name, value in (
            ("calculations", calculations), ("filters", filters),
            ("filter_combination", filter_combination), ("breakdowns", breakdowns),
            ("havings", havings), ("orders", orders), ("limit", limit),
            ("time_range", time_range), ("start_time", start_time), ("end_time", end_time),
            ("granularity", granularity), ("calculated_fields", calculated_fields),
            ("formulas", formulas), ("compare_time_offset_seconds", compare_time_offset_seconds),
        ):  # fmt: skip
            put(name, value)
        self._validate(put)
        self._validate_extras(put)

    def _validate(self, put: Any) -> None:

        calcs = tuple(Calculation.parse(c) for c in _items("calculations", self.calculations))
        put("calculations", calcs or (Calculation("COUNT"),))
        keys = [c.key for c in self.calculations]
        if len(set(keys)) != len(keys):
            raise ConfigurationError(
                f"duplicate calculation in {keys}; list each once (or give each a 'name')"
            )
        put("filters", tuple(parse_condition(f) for f in _items("filters", self.filters)))
        put("filter_combination", parse_combination(self.filter_combination))
        breakdowns = tuple(_items("breakdowns", self.breakdowns))
        if any(not isinstance(b, str) or not b for b in breakdowns):
            raise ConfigurationError(f"breakdowns must be non-empty column names: {breakdowns}")
        if len(set(breakdowns)) != len(breakdowns):
            raise ConfigurationError(f"duplicate breakdown in {list(breakdowns)}")
        if len(breakdowns) > MAX_BREAKDOWNS:
            raise ConfigurationError(f"at most {MAX_BREAKDOWNS} breakdowns, got {len(breakdowns)}")
        put("breakdowns", breakdowns)
        put("havings", tuple(Having.parse(h) for h in _items("havings", self.havings)))
        for having in self.havings:
            if self.calculation_for(having.calculate_op, having.column) is None:
                raise ConfigurationError(
                    f"having on {having.calculation.term} needs that calculation in the "
                    f"query; add it to calculations ({', '.join(keys)})"
                )
        put("orders", tuple(Order.parse(o) for o in _items("orders", self.orders)))
        names = {c.name for c in self.calculations if c.name is not None}
        for order in self.orders:
            calc = order.calculation
            if calc is None and order.column not in breakdowns and order.column not in names:
                raise ConfigurationError(
                    f"order on {order.column!r}: it is neither a breakdown nor a calculation;"
                    f" breakdowns are {list(breakdowns)}"
                    + (f", calculation names {sorted(names)}" if names else "")
                )
            if calc is not None and self.calculation_for(calc.op, calc.column) is None:
                raise ConfigurationError(
                    f"order on {calc.term}: it is not one of the calculations ({', '.join(keys)})"
                )
        limit = _int_or_none("limit", self.limit, minimum=1)
        if limit is not None and limit > MAX_LIMIT:
            raise ConfigurationError(f"limit is at most {MAX_LIMIT}, got {limit}")
        put("limit", limit)
        if self.granularity == 0:
            put("granularity", None)  # Honeycomb's UI writes 0 for "automatic"
        for name in ("time_range", "start_time", "end_time", "granularity"):
            put(
                name,
                _int_or_none(name, getattr(self, name), minimum=1 if name != "start_time" else 0),
            )
        self._check_times()

    def _validate_extras(self, put: Any) -> None:
        for name in ("calculated_fields", "formulas"):
            items = _items(name, getattr(self, name))
            if any(not isinstance(item, Mapping) for item in items):
                raise ConfigurationError(f"{name} must be a list of objects, got {items!r}")
            put(name, tuple(dict(item) for item in items))
        offset = _int_or_none("compare_time_offset_seconds", self.compare_time_offset_seconds)
        if offset is not None and offset not in COMPARE_OFFSETS:
            raise ConfigurationError(
                f"compare_time_offset_seconds {offset} is not one Honeycomb accepts; use one "
                f"of {', '.join(map(str, COMPARE_OFFSETS))}"
            )
        put("compare_time_offset_seconds", offset)

    def calculation_for(self, op: str, column: str | None) -> Calculation | None:
        """The first calculation with this op and column (what a having or an order with
        an ``op`` refers to), or None."""
        return next((c for c in self.calculations if (c.op, c.column) == (op, column)), None)

    def order_key(self, order: Order) -> str:
        """The row key an order sorts on: a calculation's result key or a breakdown."""
        if order.op is not None:
            calc = self.calculation_for(order.op, order.column)
            return calc.key if calc is not None else order.op
        if order.column in self.breakdowns:
            return order.column
        named = next((c for c in self.calculations if c.name == order.column), None)
        return named.key if named is not None else order.column or ""

    def having_key(self, having: Having) -> str:
        """The row key of the calculation a having tests."""
        calc = self.calculation_for(having.calculate_op, having.column)
        return calc.key if calc is not None else having.calculation.term

    def _check_times(self) -> None:
        if (
            self.time_range is not None
            and self.start_time is not None
            and self.end_time is not None
        ):
            raise ConfigurationError(
                "time_range with both start_time and end_time is ambiguous; drop one of the three"
            )
        start, end = self.start_time, self.end_time
        if start is not None and end is not None and start >= end:
            raise ConfigurationError(f"start_time {start} must be before end_time {end}")
        span = self.span()
        if self.granularity is not None and span is not None:
            check_granularity(self.granularity, span)

    def span(self) -> int | None:
        """The length of the time window in seconds when the spec fixes it, else None."""
        if self.start_time is not None and self.end_time is not None:
            return self.end_time - self.start_time
        return self.time_range

    @property
    def has_time(self) -> bool:
        """True when any time field is set (else, locally, the whole file)."""
        return any(v is not None for v in (self.time_range, self.start_time, self.end_time))

    def window(self, now: float) -> tuple[float, float] | None:
        """``(start, end)`` in Unix seconds, times relative to ``now``; None for no window."""
        if not self.has_time:
            return None
        start, end, span = self.start_time, self.end_time, self.time_range
        if start is not None and end is not None:
            return float(start), float(end)
        if start is not None:
            return float(start), (float(start + span) if span is not None else now)
        end_f = float(end) if end is not None else now
        return end_f - (span if span is not None else 7200), end_f

    @classmethod
    def from_json(cls, spec: Mapping[str, Any] | str | bytes) -> Query:
        """A Query from Honeycomb's JSON specification (a dict or JSON text)."""
        if isinstance(spec, (str, bytes)):
            try:
                spec = json.loads(spec)
            except ValueError as exc:
                raise ConfigurationError(f"query spec is not valid JSON: {exc}") from None
            except RecursionError:
                raise ConfigurationError(
                    "query spec is nested too deeply to read; a spec is a flat JSON object "
                    'such as {"calculations": [{"op": "COUNT"}]}'
                ) from None
        if not isinstance(spec, Mapping):
            raise ConfigurationError("a query spec must be a JSON object")
        _check_keys(spec, set(_FIELDS), "query spec")
        return cls(**{k: spec[k] for k in _FIELDS if k in spec and spec[k] is not None})

    def to_json(self) -> dict[str, Any]:
        """Honeycomb's JSON specification; fields left at their default are omitted."""
        out: dict[str, Any] = {"calculations": [c.to_json() for c in self.calculations]}
        if self.filters:
            out["filters"] = [f.to_json() for f in self.filters]
            out["filter_combination"] = self.filter_combination
        if self.breakdowns:
            out["breakdowns"] = list(self.breakdowns)
        if self.havings:
            out["havings"] = [h.to_json() for h in self.havings]
        if self.orders:
            out["orders"] = [o.to_json() for o in self.orders]
        for name in ("limit", "time_range", "start_time", "end_time", "granularity"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        for name in ("calculated_fields", "formulas"):
            if getattr(self, name):
                out[name] = [dict(item) for item in getattr(self, name)]
        if self.compare_time_offset_seconds is not None:
            out["compare_time_offset_seconds"] = self.compare_time_offset_seconds
        return out


def check_granularity(granularity: int, span: float) -> None:
    """Honeycomb's rule: granularity between span/1000 and span, so as few as one bucket
    (API reference, "Create a Query": "Given a query time range T, valid values
    (T/1000...T/1)")."""
    if not span / 1000 <= granularity <= span:
        low, high = max(1, -(-int(span) // 1000)), int(span)
        raise ConfigurationError(
            f"granularity {granularity}s is out of range for a {int(span)}s window: use "
            f"between {low} and {high} seconds (window/1000 to the window)"
        )


@dataclass
class QueryResult:
    """Rows keyed like Honeycomb's results, the time series when granularity was set, and
    whether the result is complete. ``query_url`` links to the query in Honeycomb's UI
    when the result came from Honeycomb. ``skipped_lines`` (local queries): lines of the
    files that are not JSON objects and so are in no row (malformed or truncated JSON,
    invalid UTF-8, a lone surrogate escape, an array or a scalar);
    ``complete`` stays True, as the query did run over everything that could be read.
    ``warnings`` (local queries): a column of the query that no event has, with the
    nearest column seen (the query runs anyway, as in Honeycomb, where it gives nulls).
    ``compare`` (local queries with ``compare_time_offset_seconds``): the same
    calculations ``compare_time_offset_seconds`` earlier, one row per row of ``rows`` (same
    groups, same order) and the series of that earlier window."""

    rows: list[dict[str, Any]]
    series: list[dict[str, Any]] | None = None
    complete: bool = True
    query_url: str | None = None
    skipped_lines: int = 0
    warnings: list[str] = field(default_factory=list)
    compare: QueryResult | None = None
