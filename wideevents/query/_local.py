"""``run_local``: a Honeycomb query over JSON-lines files, with DuckDB as the engine."""

from __future__ import annotations

import glob
import json
import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from wideevents._core.timefmt import rfc3339
from wideevents._errors import ConfigurationError
from wideevents._filter import ColumnKind, filter_sql, quote_identifier, sql_literal
from wideevents.query._model import (
    DEFAULT_LIMIT,
    PERCENTILES,
    Calculation,
    Query,
    QueryError,
    QueryResult,
    check_granularity,
)
from wideevents.query._plan import Plan, alias, canonical, numeric, sample_rate
from wideevents.query._store import ColumnStore, combined_kind, default_cache_dir

__all__ = ["expand_paths", "import_duckdb", "run_local"]

Key = tuple[Any, ...]


def import_duckdb() -> Any:
    """duckdb, or a ConfigurationError naming the extra that installs it."""
    try:
        import duckdb
    except ImportError:
        raise ConfigurationError(
            "local queries need DuckDB: pip install 'wideevents[query]'"
        ) from None
    return duckdb


def expand_paths(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[str]:
    """Files named or matched by glob patterns (``**`` recursive), in order, deduplicated."""
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not items:
        raise ConfigurationError("no file given: pass a path or a glob such as 'events/*.jsonl'")
    found: dict[str, None] = {}
    for item in items:
        text = os.fspath(item)
        if os.path.isdir(text):
            raise ConfigurationError(f"{text} is a directory; pass a glob such as {text}/*.jsonl")
        # A file that exists under this very name is that file, even when its name has
        # glob characters in it (x[1].jsonl must not read x1.jsonl).
        literal = os.path.isfile(text) or not glob.has_magic(text)
        matches = [text] if literal else sorted(glob.glob(text, recursive=True))
        matches = [m for m in matches if os.path.isfile(m)]
        if not matches:
            raise ConfigurationError(f"no file matches {text!r}")
        for match in matches:
            found[os.path.realpath(match)] = None
    return list(found)


def run_local(
    query: Query | Mapping[str, Any] | str,
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    now: float | None = None,
    cache: bool | str | os.PathLike[str] = True,
    timestamp_field: str = "timestamp",
    duration_field: str = "duration_ms",
    heatmap_buckets: int = 20,
) -> QueryResult:
    """Run ``query`` over JSON-lines files (globs, several files, ``.gz``).

    Weighting as Honeycomb: each event counts ``samplerate`` times, by the one sample-rate
    rule (numbers and numeric strings rounded half up, at least 1; anything else 1); SUM
    and AVG are weighted; Pxx is the smallest value whose
    cumulative weight reaches xx% (numpy's ``inverted_cdf``); COUNT_DISTINCT is not
    weighted; MIN/MAX/SUM/AVG/Pxx/HEATMAP use number values only (null when a group has
    none). HEATMAP is ``{"buckets": [{"lower", "upper", "count"}]}`` with
    ``heatmap_buckets`` equal-width buckets from the group's min to max. CONCURRENCY is
    the weighted time-average number of events in progress (``timestamp`` to
    ``timestamp + duration_ms``) over the query window, per bucket in a series. Filters
    follow the shared filter semantics. With no time field the whole files are covered,
    otherwise times are relative to ``now`` (default: the clock).

    ``cache``: True keeps a typed Parquet copy of the fields each query reads under
    :func:`default_cache_dir` (keyed by path, size and mtime), a path puts it there,
    False keeps nothing. Raises ConfigurationError for a bad query, no matching file or
    a missing DuckDB; QueryError when DuckDB cannot read a file.
    """
    if not isinstance(query, Query):
        query = Query.from_json(query)
    if heatmap_buckets < 1:
        raise ConfigurationError(f"heatmap_buckets must be >= 1, got {heatmap_buckets}")
    files = expand_paths(paths)
    duckdb = import_duckdb()
    if cache is True:
        cache_dir: Path | None = default_cache_dir()
    elif cache is False:
        cache_dir = None
    else:
        cache_dir = Path(cache)
    window = query.window(time.time() if now is None else now)
    if window is not None and query.granularity is not None:
        check_granularity(query.granularity, window[1] - window[0])
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        return _Run(query, files, ColumnStore(con, cache_dir), con, window,
                    timestamp_field, duration_field, heatmap_buckets).result()  # fmt: skip
    except duckdb.Error as exc:
        raise QueryError(f"DuckDB could not run the query: {exc}") from exc
    except OSError as exc:  # a file vanished or became unreadable after it was matched
        raise QueryError(f"cannot read {exc.filename}: {exc.strerror}") from exc
    finally:
        con.close()


class _Run:
    """One execution of a query: the source relation, then statements merged by group."""

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
        self.query, self.con, self.window = query, con, window
        ops = {c.op for c in query.calculations}
        fields = [*query.breakdowns, "samplerate"]
        fields += [c.column for c in query.calculations if c.column is not None]
        fields += [f.column for f in query.filters]
        needs_time = window is not None or query.granularity is not None or "CONCURRENCY" in ops
        if "CONCURRENCY" in ops:
            fields.append(duration_field)
        fields = list(dict.fromkeys(fields))
        parts = [store.columns(f, fields, [timestamp_field] if needs_time else []) for f in files]
        self.skipped_lines = sum(p.skipped for p in parts)
        combined = {f: combined_kind(parts, f) for f in fields}
        self.kinds: dict[str, ColumnKind] = {f: kind for f, (kind, _) in combined.items()}
        self.alias = {f: alias(n) for n, f in enumerate(fields)}
        selects = []
        for part in parts:
            cols = [f"{part.expression(f, *combined[f])} AS {self.alias[f]}" for f in fields]
            if needs_time:
                cols.append(f"{part.time(timestamp_field)} AS __t")
            selects.append(f"SELECT {', '.join(cols)} FROM {part.source}")
        source = " UNION ALL ".join(selects)
        weight = sample_rate(self.alias["samplerate"], self.kinds["samplerate"])
        where = filter_sql(
            query.filters, query.filter_combination,
            column=lambda name: self.alias[name], kinds=self.kinds,
        )  # fmt: skip
        if window is not None:
            where += f" AND __t >= {sql_literal(window[0])} AND __t < {sql_literal(window[1])}"
        base = [f"{weight} AS __w"]
        base += [
            f"{canonical(self.alias[b], self.kinds[b])} AS {self._key(n)}"
            for n, b in enumerate(query.breakdowns)
        ]
        numbers, values = {}, {}
        for n, col in enumerate(dict.fromkeys(c.column for c in query.calculations if c.column)):
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
        self.base_sql = f"base AS (SELECT {', '.join(base)} FROM ({source}) WHERE {where})"
        self.numbers, self.values = numbers, values
        self.heatmap_buckets = heatmap_buckets
        self.decoders = [self._decoder(self.kinds[b]) for b in query.breakdowns]

    @staticmethod
    def _key(n: int) -> str:
        return quote_identifier(f"__g{n}")

    @staticmethod
    def _decoder(kind: ColumnKind) -> Any:
        if kind in ("json", "other"):
            return _decode_json
        return lambda v: v

    def _plan(self, series: bool) -> Plan:
        keys = tuple(self._key(n) for n in range(len(self.query.breakdowns)))
        base = self.base_sql
        if series:
            keys += ("__bucket",)
            base = base[:-1] + " AND __t IS NOT NULL)"
        return Plan(base, keys, self.numbers, self.values, self.heatmap_buckets)

    def _compute(self, series: bool) -> dict[Key, dict[str, Any]]:
        """Every calculation for every group (keys include the bucket for a series)."""
        plan, query = self._plan(series), self.query
        width = len(plan.keys)
        groups: dict[Key, dict[str, Any]] = {}
        sql, names = plan.aggregates(query.calculations)
        for row in self.con.execute(sql).fetchall():
            groups[tuple(row[:width])] = dict(zip(names, row[width:], strict=True))
        by_column: dict[str, list[str]] = {}
        for calc in query.calculations:
            if calc.op in PERCENTILES:
                by_column.setdefault(calc.column or "", []).append(calc.op)
        for column, ops in by_column.items():
            for row in self.con.execute(plan.percentiles(column, ops)).fetchall():
                entry = groups.setdefault(tuple(row[:width]), {})
                for op, value in zip(ops, row[width:], strict=True):
                    entry[f"{op}({column})"] = value
        for calc in query.calculations:
            if calc.op == "HEATMAP":
                self._heatmap(plan, calc, groups, width)
            elif calc.op == "CONCURRENCY":
                self._concurrency(plan, groups, width, series)
        return groups

    def _heatmap(
        self, plan: Plan, calc: Calculation, groups: dict[Key, dict[str, Any]], width: int
    ) -> None:
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
            entry[calc.key] = {"buckets": filled.get(key, [])}

    def _concurrency(
        self, plan: Plan, groups: dict[Key, dict[str, Any]], width: int, series: bool
    ) -> None:
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

    def result(self) -> QueryResult:
        query = self.query
        groups = self._compute(series=False)
        if not query.breakdowns and not groups:
            groups[()] = {}
        rows = [self._row(key, values) for key, values in groups.items()]
        keys = list(groups)
        kept = [(k, r) for k, r in zip(keys, rows, strict=True) if _passes(r, query)]
        ordered = _order(kept, query)[: query.limit or DEFAULT_LIMIT]
        series = None
        if query.granularity is not None:
            rank = {key: n for n, (key, _) in enumerate(ordered)}
            buckets = self._compute(series=True)
            entries = sorted(
                ((key[-1], rank[key[:-1]], key, values) for key, values in buckets.items()
                 if key[:-1] in rank),
                key=lambda item: (item[0], item[1]),
            )  # fmt: skip
            series = [
                {"time": rfc3339(t, fraction=False), "data": self._row(key[:-1], values)}
                for t, _, key, values in entries
            ]
        return QueryResult(rows=[r for _, r in ordered], series=series, complete=True,
                           skipped_lines=self.skipped_lines)  # fmt: skip

    def _row(self, key: Key, values: Mapping[str, Any]) -> dict[str, Any]:
        row: dict[str, Any] = {
            b: self.decoders[n](key[n]) for n, b in enumerate(self.query.breakdowns)
        }
        for calc in self.query.calculations:
            value = values.get(calc.key)
            if calc.op == "COUNT":
                value = _number(values.get("COUNT") or 0)
            elif calc.op == "COUNT_DISTINCT":
                value = int(value or 0)
            elif calc.op == "HEATMAP":
                value = value if value is not None else {"buckets": []}
            row[calc.key] = value
        return row


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
        value = row.get(having.calculation.key)
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


def _order(
    rows: list[tuple[Key, dict[str, Any]]], query: Query
) -> list[tuple[Key, dict[str, Any]]]:
    """Sort by the query's orders (default: the first calculation, descending), then by the
    breakdowns ascending; nulls last in either direction."""
    terms: list[tuple[str, bool]] = []
    for order in query.orders:
        calc = order.calculation
        terms.append((calc.key if calc else order.column or "", order.order == "descending"))
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
