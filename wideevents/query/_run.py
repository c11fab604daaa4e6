"""One local execution of a :class:`Query`: the source relation, then statements merged by group.

The events that pass the query's filters (and time window) form the groups, that is the
rows. Calculations are computed in *passes*, one per distinct set of calculation
filters (Honeycomb's per-calculation ``filters``): pass 0 over all those events, pass k
over those that also pass the k-th set; a group a pass does not reach gets COUNT 0 and
nulls. Each calculation's value is stored under its result key (its ``name``, else
``op(column)``).

RATE_AVG / RATE_SUM / RATE_MAX (Honeycomb docs, "Visualize Rate": "the difference between
subsequent field values after applying the AVG/SUM/MAX operator"): per group and time
bucket of the query's granularity, the bucket's weighted AVG / weighted SUM / MAX of the
column minus that of the bucket just before it; null for a bucket whose previous bucket
has no value (the first bucket, a gap). The row's value is the average of the group's
per-bucket differences (null when there are none).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from wideevents._core.timefmt import rfc3339
from wideevents._filter import ColumnKind, filter_sql, quote_identifier, sql_literal
from wideevents.query._hints import missing_column, sampled_columns
from wideevents.query._model import (
    DEFAULT_LIMIT,
    PERCENTILES,
    RATE_OPS,
    Calculation,
    Query,
    QueryResult,
)
from wideevents.query._plan import Plan, alias, canonical, numeric, sample_rate
from wideevents.query._store import ColumnStore, combined_kind

__all__ = ["Run"]

Key = tuple[Any, ...]
Groups = dict[Key, dict[str, Any]]


class Run:
    """Builds the source relation of ``query`` over ``files`` in ``window``; :meth:`result`
    runs it; :meth:`aligned` gives the rows of given groups (a comparison window)."""

    def __init__(
        self,
        query: Query,
        files: list[str],
        store: ColumnStore,
        con: Any,
        window: tuple[float, float] | None,
        timestamp_field: str,
        duration_field: str,
        heatmap_buckets: int,
    ) -> None:
        self.query, self.con, self.window, self.files = query, con, window, files
        calcs = query.calculations
        ops = {c.op for c in calcs}
        sets: dict[tuple[Any, ...], int] = {((), "AND"): 0}
        for calc in calcs:
            if calc.filters:
                sets.setdefault((calc.filters, calc.filter_combination), len(sets))
        self.sets = list(sets)
        self.pass_of = {c.key: sets[(c.filters, c.filter_combination) if c.filters else ((), "AND")]
                        for c in calcs}  # fmt: skip
        roles = {b: "breakdown" for b in query.breakdowns}
        roles |= {f.column: "filter" for s in self.sets for f in s[0]}
        roles |= {f.column: "filter" for f in query.filters}
        roles |= {c.column: "calculation" for c in calcs if c.column is not None}
        fields = [*query.breakdowns, "samplerate"]
        fields += [c.column for c in calcs if c.column is not None]
        fields += [f.column for f in query.filters]
        fields += [f.column for s in self.sets for f in s[0]]
        needs_time = window is not None or query.granularity is not None or "CONCURRENCY" in ops
        if "CONCURRENCY" in ops:
            fields.append(duration_field)
        fields = list(dict.fromkeys(fields))
        parts = [store.columns(f, fields, [timestamp_field] if needs_time else []) for f in files]
        self.skipped_lines = sum(p.skipped for p in parts)
        combined = {f: combined_kind(parts, f) for f in fields}
        self.kinds: dict[str, ColumnKind] = {f: kind for f, (kind, _) in combined.items()}
        missing = [c for c in roles if self.kinds[c] == "missing"]
        seen = sampled_columns(files) if missing else set()
        self.warnings = [missing_column(c, roles[c], seen) for c in missing]
        self.alias = {f: alias(n) for n, f in enumerate(fields)}
        selects = []
        for part in parts:
            cols = [f"{part.expression(f, *combined[f])} AS {self.alias[f]}" for f in fields]
            if needs_time:
                cols.append(f"{part.time(timestamp_field)} AS __t")
            selects.append(f"SELECT {', '.join(cols)} FROM {part.source}")
        source = " UNION ALL ".join(selects)
        weight = sample_rate(self.alias["samplerate"], self.kinds["samplerate"])
        where = self._where(query.filters, query.filter_combination)
        if window is not None:
            where += f" AND __t >= {sql_literal(window[0])} AND __t < {sql_literal(window[1])}"
        base = [f"{weight} AS __w"]
        base += [
            f"{canonical(self.alias[b], self.kinds[b])} AS {_key(n)}"
            for n, b in enumerate(query.breakdowns)
        ]
        base += [f"{self._where(*s)} AS __s{k}" for k, s in enumerate(self.sets) if k]
        numbers, values = {}, {}
        for n, col in enumerate(dict.fromkeys(c.column for c in calcs if c.column)):
            numbers[col], values[col] = f"__n{n}", f"__v{n}"
            base.append(f"{numeric(self.alias[col], self.kinds[col])} AS __n{n}")
            base.append(f"{canonical(self.alias[col], self.kinds[col])} AS __v{n}")
        if needs_time:
            base.append("__t")
            if "CONCURRENCY" in ops:
                duration = numeric(self.alias[duration_field], self.kinds[duration_field])
                base.append(f"__t + greatest(coalesce({duration}, 0), 0) / 1000.0 AS __te")
            else:
                base.append("__t AS __te")
        if query.granularity is not None:
            base.append(f"floor(__t / {query.granularity}) * {query.granularity} AS __bucket")
        self.base_sql = f"__all AS (SELECT {', '.join(base)} FROM ({source}) WHERE {where})"
        self.numbers, self.values = numbers, values
        self.heatmap_buckets = heatmap_buckets
        self.decoders = [_decoder(self.kinds[b]) for b in query.breakdowns]
        self._rate_cache: dict[int, tuple[Groups, Groups]] = {}

    def _where(self, conditions: Sequence[Any], combination: str) -> str:
        return filter_sql(conditions, combination, column=lambda name: self.alias[name],
                          kinds=self.kinds)  # fmt: skip

    def _plan(self, series: bool, k: int) -> Plan:
        keys = tuple(_key(n) for n in range(len(self.query.breakdowns)))
        base = self.base_sql
        if series:
            keys += ("__bucket",)
            base = base[:-1] + " AND __t IS NOT NULL)"
        base += f", base AS (SELECT * FROM __all{f' WHERE __s{k}' if k else ''})"
        return Plan(base, keys, self.numbers, self.values, self.heatmap_buckets)

    def _compute(self, series: bool) -> Groups:
        """Every calculation for every group (keys include the bucket for a series), each
        under its result key; COUNT of a pass a group is not in stays unset (0 in rows)."""
        width = len(self.query.breakdowns) + (1 if series else 0)
        groups: Groups = {}
        for k in range(len(self.sets)):
            calcs = [c for c in self.query.calculations if self.pass_of[c.key] == k]
            values = self._pass(self._plan(series, k), calcs, width, series, k)
            if k == 0:
                groups = {key: {} for key in values}
            for key, entry in groups.items():
                found = values.get(key, {})
                for calc in calcs:
                    entry[calc.key] = found.get("COUNT" if calc.op == "COUNT" else calc.term)
        return groups

    def _pass(
        self, plan: Plan, calcs: Sequence[Calculation], width: int, series: bool, k: int
    ) -> Groups:
        """The calculations of one pass, by group and ``op(column)``; ``COUNT`` always."""
        groups: Groups = {}
        sql, names = plan.aggregates(calcs)
        for row in self.con.execute(sql).fetchall():
            groups[tuple(row[:width])] = dict(zip(names, row[width:], strict=True))
        by_column: dict[str, list[str]] = {}
        for calc in calcs:
            if calc.op in PERCENTILES:
                by_column.setdefault(calc.column or "", []).append(calc.op)
        for column, ops in by_column.items():
            ops = list(dict.fromkeys(ops))
            for row in self.con.execute(plan.percentiles(column, ops)).fetchall():
                entry = groups.setdefault(tuple(row[:width]), {})
                for op, value in zip(ops, row[width:], strict=True):
                    entry[f"{op}({column})"] = value
        for calc in calcs:
            if calc.op == "HEATMAP":
                self._heatmap(plan, calc, groups, width)
            elif calc.op == "CONCURRENCY":
                self._concurrency(plan, groups, width, series)
        rates = [c for c in calcs if c.op in RATE_OPS]
        if rates:
            per_bucket, summary = self._rates(k, rates)
            for key, entry in groups.items():
                entry.update((per_bucket if series else summary).get(key, {}))
        return groups

    def _rates(self, k: int, rates: Sequence[Calculation]) -> tuple[Groups, Groups]:
        """RATE_* of pass ``k`` (module docstring): per (group, bucket) and per group."""
        if k in self._rate_cache:
            return self._rate_cache[k]
        bases = list(dict.fromkeys(Calculation(RATE_OPS[c.op], c.column) for c in rates))
        plan = self._plan(True, k)
        width = len(plan.keys)
        sql, names = plan.aggregates(bases)
        series: dict[Key, dict[Any, dict[str, Any]]] = {}
        for row in self.con.execute(sql).fetchall():
            series.setdefault(tuple(row[: width - 1]), {})[row[width - 1]] = dict(
                zip(names, row[width:], strict=True)
            )
        step = self.query.granularity or 1
        per_bucket: Groups = {}
        summary: Groups = {}
        for group, buckets in series.items():
            totals: dict[str, list[float]] = {}
            for bucket, here in buckets.items():
                before = buckets.get(bucket - step, {})
                entry = per_bucket.setdefault((*group, bucket), {})
                for calc in rates:
                    base = f"{RATE_OPS[calc.op]}({calc.column})"
                    now, then = here.get(base), before.get(base)
                    rate = None if now is None or then is None else float(now) - float(then)
                    entry[calc.term] = rate
                    if rate is not None:
                        totals.setdefault(calc.term, []).append(rate)
            summary[group] = {
                c.term: (sum(totals[c.term]) / len(totals[c.term]) if c.term in totals else None)
                for c in rates
            }
        self._rate_cache[k] = (per_bucket, summary)
        return per_bucket, summary

    def _heatmap(self, plan: Plan, calc: Calculation, groups: Groups, width: int) -> None:
        n = self.heatmap_buckets
        filled: dict[Key, list[dict[str, Any]]] = {}
        for row in self.con.execute(plan.heatmap(calc.column or "")).fetchall():
            key, (lo, hi, index, weight) = tuple(row[:width]), row[width:]
            if key not in filled:
                if lo == hi:
                    filled[key] = [{"lower": lo, "upper": hi, "count": 0}]
                else:
                    step = (hi - lo) / n
                    edges = [k * step + lo for k in range(n)] + [hi]
                    filled[key] = [
                        {"lower": edges[k], "upper": edges[k + 1], "count": 0} for k in range(n)
                    ]
            filled[key][index]["count"] += _number(weight)
        for key, entry in groups.items():
            entry[calc.term] = {"buckets": filled.get(key, [])}

    def _concurrency(self, plan: Plan, groups: Groups, width: int, series: bool) -> None:
        if series:
            granularity = self.query.granularity or 1
            end = self.window[1] if self.window else None
            sql = plan.concurrency_series(granularity, end)
        else:
            if self.window is not None:
                start, end_ = self.window
            else:
                start, end_ = self.con.execute(plan.extent()).fetchone()
            if start is None:
                for entry in groups.values():
                    entry["CONCURRENCY"] = 0.0
                return
            sql = plan.concurrency(float(start), float(end_))
        for row in self.con.execute(sql).fetchall():
            key = tuple(row[:width])
            if key in groups or series:  # events in progress reach buckets where none start
                groups.setdefault(key, {})["CONCURRENCY"] = float(row[width])
        for entry in groups.values():
            entry.setdefault("CONCURRENCY", 0.0)

    def result(self) -> tuple[QueryResult, list[Key]]:
        """The result, and the group of each of its rows (for a comparison)."""
        query = self.query
        groups = self._compute(series=False)
        if not query.breakdowns and not groups:
            groups[()] = {}
        rows = [self._row(key, values) for key, values in groups.items()]
        kept = [(k, r) for k, r in zip(list(groups), rows, strict=True) if _passes(r, query)]
        ordered = _order(kept, query)[: query.limit or DEFAULT_LIMIT]
        keys = [key for key, _ in ordered]
        result = QueryResult(rows=[r for _, r in ordered], series=self._series(keys),
                             complete=True, skipped_lines=self.skipped_lines,
                             warnings=self.warnings)  # fmt: skip
        return result, keys

    def aligned(self, keys: Sequence[Key]) -> QueryResult:
        """The rows of the groups ``keys`` (in that order; a group with no event here gets
        COUNT 0 and nulls), and their series."""
        groups = self._compute(series=False)
        rows = [self._row(key, groups.get(key, {})) for key in keys]
        return QueryResult(rows=rows, series=self._series(list(keys)), complete=True,
                           skipped_lines=self.skipped_lines)  # fmt: skip

    def _series(self, keys: Sequence[Key]) -> list[dict[str, Any]] | None:
        if self.query.granularity is None:
            return None
        rank = {key: n for n, key in enumerate(keys)}
        buckets = self._compute(series=True)
        entries = sorted(
            ((key[-1], rank[key[:-1]], key, values) for key, values in buckets.items()
             if key[:-1] in rank),
            key=lambda item: (item[0], item[1]),
        )  # fmt: skip
        return [
            {"time": rfc3339(t, fraction=False), "data": self._row(key[:-1], values)}
            for t, _, key, values in entries
        ]

    def _row(self, key: Key, values: Mapping[str, Any]) -> dict[str, Any]:
        row: dict[str, Any] = {
            b: self.decoders[n](key[n]) for n, b in enumerate(self.query.breakdowns)
        }
        for calc in self.query.calculations:
            value = values.get(calc.key)
            if calc.op == "COUNT":
                value = _number(value or 0)
            elif calc.op == "COUNT_DISTINCT":
                value = int(value or 0)
            elif calc.op == "HEATMAP":
                value = value if value is not None else {"buckets": []}
            row[calc.key] = value
        return row


def _key(n: int) -> str:
    return quote_identifier(f"__g{n}")


def _decoder(kind: ColumnKind) -> Any:
    if kind in ("json", "other"):
        return _decode_json
    return lambda v: v


_MAX_DEPTH = 100


def _decode_json(text: str | None) -> Any:
    """A breakdown value of a JSON column; a list or object nested more than 100 levels
    stays its JSON text (a string), so that neither parsing it nor printing it can raise
    RecursionError."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except RecursionError:
        return text
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            if depth > _MAX_DEPTH:
                return text
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return value


def _number(value: Any) -> int | float:
    """Integral floats (weighted sums of integer sample rates) become ints."""
    if isinstance(value, int):
        return value
    as_float = float(value)
    return int(as_float) if as_float.is_integer() and abs(as_float) < 2**53 else as_float


_HAVING = {
    "=": lambda a, b: a == b, "!=": lambda a, b: a != b, ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b, "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
}  # fmt: skip


def _passes(row: Mapping[str, Any], query: Query) -> bool:
    for having in query.havings:
        value = row.get(query.having_key(having))
        if value is None or not _HAVING[having.op](value, having.value):
            return False
    return True


def _sortable(value: Any) -> tuple[int, Any]:
    if isinstance(value, bool):
        return (0, value)
    if isinstance(value, (int, float)):
        return (1, value)
    if isinstance(value, str):
        return (2, value)
    return (3, json.dumps(value, sort_keys=True))


def _order(rows: list[tuple[Key, dict[str, Any]]], query: Query) -> list[tuple[Key, dict[str, Any]]]:
    """Sort by the query's orders (default: the first calculation, descending), then by the
    breakdowns ascending; nulls last in either direction."""
    terms = [(query.order_key(o), o.order == "descending") for o in query.orders]
    if not query.orders:
        first = next((c for c in query.calculations if c.op != "HEATMAP"), None)
        if first is not None:
            terms.append((first.key, True))
    terms += [(b, False) for b in query.breakdowns]
    out = list(rows)
    for name, descending in reversed(terms):
        present = [r for r in out if r[1].get(name) is not None]
        present.sort(key=lambda r: _sortable(r[1][name]), reverse=descending)
        out = present + [r for r in out if r[1].get(name) is None]
    return out
