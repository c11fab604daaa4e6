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
from dataclasses import dataclass
from typing import Any, Final, Literal

from wideevents._errors import ConfigurationError
from wideevents._filter import Condition, parse_combination, parse_condition

__all__ = [
    "CALCULATION_OPS",
    "PERCENTILES",
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
CALCULATION_OPS: Final[tuple[str, ...]] = (
    *_NO_COLUMN, "SUM", "AVG", "MIN", "MAX", "COUNT_DISTINCT", *PERCENTILES, "HEATMAP",
)  # fmt: skip
_HAVING_OPS: Final = ("=", "!=", ">", ">=", "<", "<=")
MAX_BREAKDOWNS: Final = 100
MAX_LIMIT: Final = 1000
DEFAULT_LIMIT: Final = 100
_FIELDS: Final = (
    "calculations", "filters", "filter_combination", "breakdowns", "havings", "orders",
    "limit", "time_range", "start_time", "end_time", "granularity",
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
    """One calculation: ``op`` and, except for COUNT and CONCURRENCY, a ``column``."""

    op: str
    column: str | None = None

    def __post_init__(self) -> None:
        if self.op not in CALCULATION_OPS:
            raise ConfigurationError(
                f"unknown calculation {self.op!r}; use one of {', '.join(CALCULATION_OPS)}"
            )
        if self.op in _NO_COLUMN and self.column is not None:
            raise ConfigurationError(f"{self.op} takes no column; remove {self.column!r}")
        if self.op not in _NO_COLUMN and (not isinstance(self.column, str) or not self.column):
            raise ConfigurationError(
                f"{self.op} needs a column, e.g. {self.op}(duration_ms) or "
                f'{{"op": "{self.op}", "column": "duration_ms"}}'
            )

    @property
    def key(self) -> str:
        """The result key: ``COUNT``, ``P99(duration_ms)``, ``HEATMAP(score.top1)``."""
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
            _check_keys(obj, {"op", "column"}, "calculation")
            return cls(obj.get("op"), obj.get("column"))  # type: ignore[arg-type]
        raise ConfigurationError(f"a calculation must be a dict or text, got {obj!r}")

    def to_json(self) -> dict[str, Any]:
        """Honeycomb's form: ``{"op": ..., "column": ...}`` (no column for COUNT)."""
        return {"op": self.op} if self.column is None else {"op": self.op, "column": self.column}


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
    (100). No time field means, locally, the whole file (Honeycomb's default is the last
    7,200 seconds); ``time_range`` pairs with at most one of ``start_time``/``end_time``.
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
    ) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        for name, value in (
            ("calculations", calculations), ("filters", filters),
            ("filter_combination", filter_combination), ("breakdowns", breakdowns),
            ("havings", havings), ("orders", orders), ("limit", limit),
            ("time_range", time_range), ("start_time", start_time), ("end_time", end_time),
            ("granularity", granularity),
        ):  # fmt: skip
            put(name, value)
        self._validate(put)

    def _validate(self, put: Any) -> None:

        calcs = tuple(Calculation.parse(c) for c in _items("calculations", self.calculations))
        put("calculations", calcs or (Calculation("COUNT"),))
        keys = [c.key for c in self.calculations]
        if len(set(keys)) != len(keys):
            raise ConfigurationError(f"duplicate calculation in {keys}; list each once")
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
            if having.calculation.key not in keys:
                raise ConfigurationError(
                    f"having on {having.calculation.key} needs that calculation in the "
                    f"query; add it to calculations ({', '.join(keys)})"
                )
        put("orders", tuple(Order.parse(o) for o in _items("orders", self.orders)))
        for order in self.orders:
            calc = order.calculation
            if calc is None and order.column not in breakdowns:
                raise ConfigurationError(
                    f"order on {order.column!r}: it is neither a breakdown nor a calculation;"
                    f" breakdowns are {list(breakdowns)}"
                )
            if calc is not None and calc.key not in keys:
                raise ConfigurationError(
                    f"order on {calc.key}: it is not one of the calculations ({', '.join(keys)})"
                )
        limit = _int_or_none("limit", self.limit, minimum=1)
        if limit is not None and limit > MAX_LIMIT:
            raise ConfigurationError(f"limit is at most {MAX_LIMIT}, got {limit}")
        put("limit", limit)
        for name in ("time_range", "start_time", "end_time", "granularity"):
            put(
                name,
                _int_or_none(name, getattr(self, name), minimum=1 if name != "start_time" else 0),
            )
        self._check_times()

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
        return out


def check_granularity(granularity: int, span: float) -> None:
    """Honeycomb's rule: granularity between span/1000 and span/10 (seconds)."""
    if not span / 1000 <= granularity <= span / 10:
        low, high = max(1, -(-int(span) // 1000)), int(span // 10)
        raise ConfigurationError(
            f"granularity {granularity}s is out of range for a {int(span)}s window: use "
            f"between {low} and {high} seconds (window/1000 to window/10)"
        )


@dataclass
class QueryResult:
    """Rows keyed like Honeycomb's results, the time series when granularity was set, and
    whether the result is complete. ``query_url`` links to the query in Honeycomb's UI
    when the result came from Honeycomb. ``skipped_lines`` (local queries): lines of the
    files that are not JSON objects and so are in no row (malformed or truncated JSON,
    invalid UTF-8, a lone surrogate escape, an array or a scalar);
    ``complete`` stays True, as the query did run over everything that could be read."""

    rows: list[dict[str, Any]]
    series: list[dict[str, Any]] | None = None
    complete: bool = True
    query_url: str | None = None
    skipped_lines: int = 0
