"""DuckDB SQL for one :class:`Query` over typed columns (see ``_store``).

The source relation exposes, per field, one column of a single *kind* (``number``,
``string``, ``boolean``, ``other`` or ``json`` for a field of several kinds), ``__w``
(the event's weight: its sample rate by the one rule of ``wideevents._core.samplerate``,
see :func:`sample_rate`), and
``__t`` / ``__te`` (start and end, Unix seconds) when time is needed. Each statement
here aggregates it grouped by the breakdowns (plus ``__bucket`` for a time series).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from wideevents._core.samplerate import MAX_RATE, NUMERIC_PATTERN
from wideevents._filter import ColumnKind, quote_identifier, sql_literal
from wideevents.query._model import PERCENTILES, Calculation

__all__ = ["Plan", "alias", "canonical", "numeric", "sample_rate"]

_JSON_NUMBER: Final = "json_type({0}) IN ('BIGINT', 'UBIGINT', 'DOUBLE')"
_SEARCH_BUCKETS: Final = 4096


def numeric(expr: str, kind: ColumnKind) -> str:
    """The field as a number, NULL when the value is not a number (bools are not)."""
    if kind == "number":
        return expr
    if kind == "json":
        return f"CASE WHEN {_JSON_NUMBER.format(expr)} THEN TRY_CAST({expr} AS DOUBLE) END"
    return "CAST(NULL AS DOUBLE)"


def _rate_of_number(number: str) -> str:
    # Rounded half up, at least 1, at most MAX_RATE; NaN or infinite: 1.
    return (f"CASE WHEN isfinite({number}) THEN LEAST(GREATEST(floor({number} + 0.5), 1), "
            f"{MAX_RATE}) ELSE 1 END")


def _rate_of_text(text: str) -> str:
    pattern = sql_literal(NUMERIC_PATTERN)
    return (f"CASE WHEN length({text}) <= 64 AND regexp_full_match({text}, {pattern}) "
            f"THEN {_rate_of_number(f'CAST({text} AS DOUBLE)')} ELSE 1 END")


def sample_rate(expr: str, kind: ColumnKind) -> str:
    """The event's weight: ``samplerate`` by the one rule of ``wideevents._core.samplerate``
    (numbers and numeric strings rounded half up, at least 1; anything else 1)."""
    if kind == "number":
        # DOUBLE, not the DECIMAL that BIGINT + 0.5 gives: weighted sums must come back
        # as numbers (a DECIMAL is a decimal.Decimal in Python, and not JSON).
        return f"COALESCE({_rate_of_number(f'CAST({expr} AS DOUBLE)')}, 1)"
    if kind == "string":
        return f"COALESCE({_rate_of_text(expr)}, 1)"
    if kind == "json":
        number = _rate_of_number(f"TRY_CAST({expr} AS DOUBLE)")
        text = _rate_of_text(f"({expr} ->> '$')")
        return (f"COALESCE(CASE WHEN {_JSON_NUMBER.format(expr)} THEN {number} "
                f"WHEN json_type({expr}) = 'VARCHAR' THEN {text} END, 1)")
    return "1"


def canonical(expr: str, kind: ColumnKind) -> str:
    """The field as a grouping value: in a JSON column numbers compare numerically, so
    3 and 3.0 are one group (shown as 3); other values keep their JSON text."""
    if kind != "json":
        return expr
    number = f"TRY_CAST({expr} AS DOUBLE)"
    return (
        f"CASE WHEN {_JSON_NUMBER.format(expr)} THEN CASE WHEN {number} = trunc({number})"
        f" AND abs({number}) < 9007199254740992 THEN to_json(CAST({number} AS BIGINT))"
        f" ELSE to_json({number}) END ELSE {expr} END"
    )


@dataclass(frozen=True)
class Plan:
    """SQL statements over ``base`` (the filtered, windowed events); ``keys`` are the
    group columns (breakdown aliases, and ``__bucket`` for a series)."""

    base: str
    keys: tuple[str, ...]
    numbers: dict[str, str]  # calculation column -> numeric alias in base
    values: dict[str, str]  # calculation column -> raw alias in base (COUNT_DISTINCT)
    heatmap_buckets: int

    def _group(self) -> tuple[str, str, str]:
        """(select prefix, GROUP BY clause, PARTITION BY clause) for the keys."""
        if not self.keys:
            return "", "", ""
        keys = ", ".join(self.keys)
        return keys + ", ", f" GROUP BY {keys}", f"PARTITION BY {keys} "

    def aggregates(self, calcs: Sequence[Calculation]) -> tuple[str, list[str]]:
        """COUNT, SUM, AVG, MIN, MAX, COUNT_DISTINCT in one statement; returns the SQL and
        the ``op(column)`` of each selected value after the group keys (``COUNT`` first)."""
        select, group, _ = self._group()
        exprs, keys = ["sum(__w)"], ["COUNT"]
        for calc in calcs:
            if calc.op in ("SUM", "AVG", "MIN", "MAX"):
                x = self.numbers[calc.column or ""]
                exprs.append(
                    {
                        "SUM": f"sum(__w * {x})",
                        "AVG": f"sum(__w * {x}) / sum(__w) FILTER (WHERE {x} IS NOT NULL)",
                        "MIN": f"min({x})",
                        "MAX": f"max({x})",
                    }[calc.op]
                )
                keys.append(calc.term)
            elif calc.op == "COUNT_DISTINCT":
                exprs.append(f"count(DISTINCT {self.values[calc.column or '']})")
                keys.append(calc.term)
        return f"WITH {self.base} SELECT {select}{', '.join(exprs)} FROM base{group}", keys

    def percentiles(self, column: str, ops: Sequence[str]) -> str:
        """Every Pxx of one column: the smallest value whose cumulative weight, divided by
        the total, reaches xx/100 (numpy's weighted ``inverted_cdf``, same float steps).

        Exact without sorting everything: values go into ``_SEARCH_BUCKETS`` equal-width
        buckets between the column's overall min and max (an order-preserving map); per
        group, the bucket where the cumulative weight first reaches each target holds the
        answer, and only the values of those buckets are sorted, their running weight
        offset by the group's weight before the bucket.
        """
        keys = list(self.keys)
        select = "".join(f"{k}, " for k in keys)
        group = f" GROUP BY {', '.join(keys)}" if keys else ""
        partition = f"PARTITION BY {', '.join(keys)}" if keys else ""
        n = _SEARCH_BUCKETS
        targets = [sql_literal(PERCENTILES[op] / 100) for op in ops]
        picks = ", ".join(
            f"min(__i) FILTER (WHERE (__before + __bw) / __tot >= {t}) AS __p{m}"
            for m, t in enumerate(targets)
        )
        chosen = ", ".join(f"__pick.__p{m}" for m in range(len(targets)))
        answers = ", ".join(f"min(__x) FILTER (WHERE __cw / __tot >= {t})" for t in targets)
        x = self.numbers[column]
        index = (
            f"CASE WHEN __hi = __lo THEN 0 ELSE least(floor((__x - __lo) / (__hi - __lo) * {n})"
            f"::BIGINT, {n - 1}) END"
        )
        return (
            f"WITH {self.base}, "
            f"__v AS (SELECT {select}{x} AS __x, __w FROM base WHERE {x} IS NOT NULL), "
            "__r AS (SELECT min(__x) AS __lo, max(__x) AS __hi FROM __v), "
            f"__vb AS (SELECT {select}__x, __w, {index} AS __i FROM __v, __r), "
            f"__b AS (SELECT {select}__i, sum(__w) AS __bw FROM __vb GROUP BY {select}__i), "
            f"__c AS (SELECT {select}__i, __bw, sum(__bw) OVER ({partition}) AS __tot,"
            f" sum(__bw) OVER ({partition} ORDER BY __i ROWS BETWEEN UNBOUNDED PRECEDING AND"
            " CURRENT ROW) - __bw AS __before FROM __b), "
            f"__pick AS (SELECT {select}{picks} FROM __c{group}), "
            f"__sel AS (SELECT {_cols('__c', keys)}__c.__i, __before, __tot FROM __c JOIN __pick"
            f" ON {_same('__c', '__pick', keys)} WHERE __c.__i IN ({chosen})), "
            # Only the rows of chosen buckets reach the join and the sort.
            f"__few AS (SELECT * FROM __vb WHERE __i IN (SELECT __i FROM __sel)), "
            f"__fin AS (SELECT {_cols('__few', keys)}__few.__x, __tot, __before + sum(__few.__w)"
            f" OVER (PARTITION BY {_cols('__few', keys)}__few.__i ORDER BY __few.__x ROWS BETWEEN"
            f" UNBOUNDED PRECEDING AND CURRENT ROW) AS __cw FROM __few JOIN __sel"
            f" ON {_same('__few', '__sel', keys)} AND __few.__i = __sel.__i) "
            f"SELECT {select}{answers} FROM __fin{group}"
        )

    def heatmap(self, column: str) -> str:
        """Weighted equal-width buckets between each group's min and max, bucketed exactly
        as ``numpy.histogram`` does (edges ``k * ((hi - lo) / n) + lo``, last edge ``hi``).
        Rows: keys, lo, hi, bucket index, weight."""
        select, group, partition = self._group()
        n = self.heatmap_buckets
        x = f"CAST({self.numbers[column]} AS DOUBLE)"

        def edge(k: str) -> str:
            return (
                f"(CASE WHEN ({k}) >= {n} THEN __hi ELSE ({k}) * ((__hi - __lo) / {n}) + __lo END)"
            )

        first = f"least(trunc((__x - __lo) / (__hi - __lo) * {n})::BIGINT, {n - 1})"
        lowered = f"CASE WHEN __x < {edge('__i0')} THEN __i0 - 1 ELSE __i0 END"
        raised = (
            f"CASE WHEN __hi = __lo THEN 0 WHEN __i1 < {n - 1} AND __x >= {edge('__i1 + 1')}"
            " THEN __i1 + 1 ELSE __i1 END"
        )
        keys = (group + ", " if group else " GROUP BY ") + "__lo, __hi, __i"
        return (
            f"WITH {self.base} SELECT {select}__lo, __hi, __i, sum(__w) FROM ("
            f"SELECT *, {raised} AS __i FROM (SELECT *, {lowered} AS __i1 FROM ("
            f"SELECT *, CASE WHEN __hi = __lo THEN 0 ELSE {first} END AS __i0 FROM ("
            f"SELECT {select}__w, {x} AS __x, min({x}) OVER ({partition.strip()}) AS __lo,"
            f" max({x}) OVER ({partition.strip()}) AS __hi FROM base WHERE {x} IS NOT NULL))))"
            f"{keys}"
        )

    def extent(self) -> str:
        """The time extent of the selected events: min start, max end."""
        return f"WITH {self.base} SELECT min(__t), max(__te) FROM base WHERE __t IS NOT NULL"

    def concurrency(self, start: float, end: float) -> str:
        """Weighted time-average number of events in progress during [start, end)."""
        select, group, _ = self._group()
        span = end - start
        overlap = (
            f"greatest(0, least(__te, {sql_literal(end)}) - greatest(__t, {sql_literal(start)}))"
        )
        value = f"sum(__w * {overlap}) / {sql_literal(span)}" if span > 0 else "0.0"
        return f"WITH {self.base} SELECT {select}{value} FROM base WHERE __t IS NOT NULL{group}"

    def concurrency_series(self, granularity: int, end: float | None) -> str:
        """Per bucket: weighted average number of events in progress (events spill over
        into later buckets for as long as they last)."""
        keys = [k for k in self.keys if k != "__bucket"]
        select = "".join(k + ", " for k in keys)
        g = granularity
        clip = f" AND __k * {g} < {sql_literal(end)}" if end is not None else ""
        overlap = f"greatest(0, least(__te, (__k + 1) * {g}) - greatest(__t, __k * {g}))"
        # Cap a single event at 100,000 buckets so a bogus duration cannot explode the query.
        ks = (
            f"unnest(range(floor(__t / {g})::BIGINT, least(floor(__te / {g})::BIGINT,"
            f" floor(__t / {g})::BIGINT + 100000) + 1)) AS __k"
        )
        return (
            f"WITH {self.base} SELECT {select}__k * {g} AS __bucket, sum(__w * {overlap}) / {g}"
            f" FROM (SELECT *, {ks} FROM base WHERE __t IS NOT NULL) WHERE TRUE{clip}"
            f" GROUP BY {select}__k"
        )


def _cols(table: str, keys: list[str]) -> str:
    return "".join(f"{table}.{k}, " for k in keys)


def _partition(table: str, keys: list[str]) -> str:
    return f"PARTITION BY {', '.join(f'{table}.{k}' for k in keys)} " if keys else ""


def _same(left: str, right: str, keys: list[str]) -> str:
    """Join condition on the group keys; NULL is a group like any other value."""
    if not keys:
        return "TRUE"
    return " AND ".join(f"{left}.{k} IS NOT DISTINCT FROM {right}.{k}" for k in keys)


def alias(n: int) -> str:
    """A safe SQL alias for the n-th field of a query."""
    return quote_identifier(f"f{n}")
