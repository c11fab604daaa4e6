"""The shared machinery of the analysis commands (``compare``, ``drift``, ``calibration``).

A :class:`Frame` is a set of fields of JSON-lines files as one DuckDB relation, read through
the same typed column store as :func:`~wideevents.query.run_local` (so the columnar cache
is shared with ``wideevents query``): each field one column of a single kind
(``_store.combined_kind``), ``__w`` the event's weight by the one sample-rate rule
(``_plan.sample_rate``). On it:

- :meth:`Frame.where` compiles filters (the ``--where`` syntax and semantics of ``query``);
- :meth:`Frame.stats` reads, in one statement, per column its non-missing count, its distinct
  count and, for number columns, min, max and deciles;
- :meth:`Frame.histograms` reads, in one statement, the weighted count of every bucket of
  every column per *side* (selection/baseline, or group): the columns are unpivoted
  into ``(column, bucket)`` pairs and aggregated once, so the cost is one pass over the
  columns however many there are, not one query per column.

A bucket is a text key: ``m`` a missing value (absent or null), ``n<i>`` the i-th numeric
bin, ``s<text>`` a string, ``b<true|false>`` a boolean, ``j<json>`` any other value as its
canonical JSON text (numbers by value, lists and objects as text); :func:`bucket_value`
turns it back into the value it stands for.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from wideevents._errors import ConfigurationError
from wideevents._filter import ColumnKind, Condition, filter_sql, parse_condition, sql_literal
from wideevents.query._local import session
from wideevents.query._plan import canonical, sample_rate
from wideevents.query._store import ColumnStore, combined_kind
from wideevents.query._text import parse_where

__all__ = [
    "DECILES",
    "MAX_GROUPS",
    "MISSING",
    "Bucket",
    "Frame",
    "Paths",
    "all_keys",
    "bucket_key",
    "bucket_value",
    "check_groups",
    "conditions",
    "largest",
    "numeric_bin_sql",
    "session",
    "too_many_groups",
]

Paths = str | os.PathLike[str] | Iterable[str | os.PathLike[str]]
Bucket = tuple[str, str]  # (SQL expression, how to read its values: n, s, b, j or J)
MISSING = "m"
DECILES = tuple(i / 10 for i in range(1, 10))
#: Groups a ``--breakdown`` computes unless told otherwise (Honeycomb's default result limit).
MAX_GROUPS: Final = 1000


def check_groups(groups: Any) -> None:
    """ConfigurationError unless ``groups`` is a positive integer."""
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ConfigurationError(f"groups must be a positive integer (--groups N), got {groups!r}")


def too_many_groups(breakdown: str, total: int, groups: int) -> str:
    """The warning for a breakdown with more values than the groups computed."""
    return (f"{breakdown!r} has {total} values: computed the {groups} with the most events "
            f"(weighted), left out the other {total - groups}; groups=N (--groups N) for more")


def largest(con: Any, source: str, expr: str, weight: str, rows: str,
            n: int) -> tuple[str, int]:
    """(condition, values): a condition that holds for the rows of ``source`` whose ``expr``
    is one of the ``n`` values with the most ``weight`` where ``rows`` holds (ties by
    value; NULL, a missing value, is one value), and how many values there are. ``TRUE``
    when there are no more than ``n``: a breakdown by an id must not make one group per
    event (drift's and calibration's ``groups``)."""
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE __largest AS SELECT g, count(*) OVER () AS total"
        f" FROM (SELECT {expr} AS g, sum({weight}) AS w FROM {source} WHERE {rows}"
        f" GROUP BY ALL) ORDER BY w DESC, g NULLS LAST LIMIT {int(n)}"
    )
    total, null_kept = con.execute(
        "SELECT max(total), bool_or(g IS NULL) FROM __largest").fetchone()
    if not total or total <= n:
        return "TRUE", int(total or 0)
    keep = f"{expr} IN (SELECT g FROM __largest WHERE g IS NOT NULL)"
    return (f"({keep} OR {expr} IS NULL)" if null_kept else f"({keep})"), int(total)


def conditions(items: Any, what: str) -> list[Condition]:
    """Filters as given to the Python API or on the command line: ``None``, one condition
    or a list of them, each a ``'column op value'`` text (``--where`` syntax), a
    ``{"column", "op", "value"}`` dict or a Condition."""
    if items is None:
        return []
    if isinstance(items, (str, Mapping, Condition)):
        items = [items]
    out = []
    for item in items:
        if isinstance(item, str):
            out.append(parse_where(item))
        elif isinstance(item, (Mapping, Condition)):
            out.append(parse_condition(item))
        else:
            raise ConfigurationError(
                f"{what}: cannot read {type(item).__name__} as a filter; write "
                "'column op value' (e.g. 'duration_ms > 250') or {'column', 'op', 'value'}"
            )
    return out


def all_keys(store: ColumnStore, files: Sequence[str]) -> list[str]:
    """The top-level keys of the events of every file, sorted."""
    found: set[str] = set()
    for path in files:
        found.update(store.keys(path))
    return sorted(found)


_FLAT_EDGES = 16  # up to this many distinct edges, one flat CASE beats the nested search


def numeric_bin_sql(expr: str, edges: Sequence[float]) -> str:
    """The bin of a number: how many ``edges`` are <= it (``numpy.searchsorted(edges, x,
    side="right")``, the rule of ``feature_bin.*``, equal edges included), NULL for NULL.
    Up to :data:`_FLAT_EDGES` distinct edges (deciles, a profile's bins) one CASE tests
    them in order, which DuckDB runs faster than nested CASEs (each narrows a selection
    vector); past that a binary search written as nested CASEs: about log2(len(edges))
    comparisons a value. A NaN is above every edge in DuckDB's order, as in numpy's."""
    ordered = sorted(float(e) for e in edges)
    unique = sorted(set(ordered))
    if not unique:
        return f"CASE WHEN {expr} IS NULL THEN NULL ELSE 0 END"
    if len(unique) <= _FLAT_EDGES:
        # x < unique[i] (and not below an earlier edge): the edges <= x are those below
        # unique[i]; the last WHEN (x >= the top edge, NaN included) leaves NULL for NULL.
        whens = " ".join(
            f"WHEN {expr} < {sql_literal(e)} THEN {sum(1 for o in ordered if o < e)}"
            for e in unique
        )
        return f"CASE {whens} WHEN {expr} >= {sql_literal(unique[-1])} THEN {len(ordered)} END"

    def below(lo: int, hi: int, count: int) -> str:  # unique[lo:hi]; count: edges < unique[lo]
        if lo == hi:
            return str(count)
        mid = (lo + hi) // 2
        at_or_below = sum(1 for e in ordered if e <= unique[mid])
        return (f"CASE WHEN {expr} >= {sql_literal(unique[mid])} THEN "
                f"{below(mid + 1, hi, at_or_below)} ELSE {below(lo, mid, count)} END")

    return f"CASE WHEN {expr} IS NULL THEN NULL ELSE {below(0, len(unique), 0)} END"


def bucket_value(key: str) -> Any:
    """The value a categorical bucket key stands for (see the module doc)."""
    if key == MISSING:
        return None
    tag, text = key[0], key[1:]
    if tag == "s":
        return text
    if tag == "b":
        return text == "true"
    if tag == "n":
        return int(text)
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return text


@dataclass
class Frame:
    """Fields of the files as one relation (see the module doc)."""

    con: Any
    source: str  # a parenthesised SELECT: one column per field (its alias), and __w
    alias: dict[str, str]
    kinds: dict[str, ColumnKind]
    skipped_lines: int = 0
    integers: dict[str, bool] = field(default_factory=dict)  # number columns: only BIGINTs
    _stats: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def build(cls, con: Any, store: ColumnStore, files: Sequence[str],
              fields: Iterable[str]) -> Frame:
        wanted = list(dict.fromkeys(["samplerate", *fields]))
        parts = [store.columns(path, wanted, []) for path in files]
        combined = {f: combined_kind(parts, f) for f in wanted}
        alias = {f: f"c{n}" for n, f in enumerate(wanted)}
        selects = []
        for part in parts:
            cols = [f"{part.expression(f, *combined[f])} AS {alias[f]}" for f in wanted]
            selects.append(f"SELECT {', '.join(cols)} FROM {part.source}")
        kinds = {f: kind for f, (kind, _) in combined.items()}
        weight = sample_rate(alias["samplerate"], kinds["samplerate"])
        source = f"(SELECT *, {weight} AS __w FROM ({' UNION ALL '.join(selects)}))"
        integers = {f: only for f, (_, only) in combined.items()}
        return cls(con, source, alias, kinds, sum(p.skipped for p in parts), integers)

    def col(self, name: str) -> str:
        return self.alias[name]

    def where(self, conds: Sequence[Condition]) -> str:
        """The conditions (AND) as SQL over this frame's columns; TRUE when there are none."""
        return filter_sql(conds, "AND", column=self.col, kinds=self.kinds)

    def number(self, name: str) -> str:
        """The field as a DOUBLE, NULL when the value is not a number."""
        kind, expr = self.kinds[name], self.alias[name]
        if kind == "number":
            return f"CAST({expr} AS DOUBLE)"
        if kind == "json":
            return (f"CASE WHEN json_type({expr}) IN ('BIGINT', 'UBIGINT', 'DOUBLE') "
                    f"THEN TRY_CAST({expr} AS DOUBLE) END")
        return "CAST(NULL AS DOUBLE)"

    def category(self, name: str) -> str:
        """The field's bucket key as a category (module doc), ``m`` when missing: text built
        per row, for the few columns compared or grouped in SQL (labels, a breakdown)."""
        kind, expr = self.kinds[name], self.alias[name]
        if kind == "string":
            key = f"'s' || {expr}"
        elif kind == "boolean":
            key = f"CASE WHEN {expr} THEN 'btrue' WHEN NOT {expr} THEN 'bfalse' END"
        elif kind == "number":
            key = f"'j' || CAST({canonical(f'to_json({expr})', 'json')} AS VARCHAR)"
        elif kind == "missing":
            return f"'{MISSING}'"
        else:  # json, other: strings keep their text, the rest its canonical JSON
            as_json = f"CAST({expr} AS JSON)" if kind == "other" else expr
            key = (f"CASE WHEN json_type({as_json}) = 'VARCHAR' THEN 's' || ({as_json} ->> '$') "
                   f"WHEN json_type({as_json}) = 'BOOLEAN' THEN 'b' || CAST({as_json} AS VARCHAR)"
                   f" ELSE 'j' || CAST({canonical(as_json, 'json')} AS VARCHAR) END")
            missing = f"{expr} IS NULL OR json_type({as_json}) = 'NULL'"
            return f"CASE WHEN {missing} THEN '{MISSING}' ELSE {key} END"
        return f"coalesce({key}, '{MISSING}')"

    def value_bucket(self, name: str) -> Bucket:
        """The field as a category, in its own SQL type (turned into a key after the
        aggregation, so that no text is built per event); NULL when missing."""
        kind = self.kinds[name]
        if kind in ("string", "boolean", "number"):
            return self.alias[name], {"string": "s", "boolean": "b", "number": "j"}[kind]
        if kind == "missing":
            return "CAST(NULL AS VARCHAR)", "s"
        category = self.category(name)
        return f"CASE WHEN {category} <> '{MISSING}' THEN {category} END", "J"

    def bin_bucket(self, name: str, edges: Sequence[float]) -> Bucket:
        """The numeric bin of the field (module doc), NULL when it is not a number."""
        return numeric_bin_sql(self.number(name), edges), "n"

    def stored_bin(self, name: str) -> Bucket:
        """A field that holds bin numbers already (``feature_bin.*``, ``score.bin``)."""
        return f"CAST({self.number(name)} AS BIGINT)", "n"

    def largest(self, expr: str, rows: str, n: int) -> tuple[str, int]:
        """:func:`largest` over this frame's events (their weight ``__w``)."""
        return largest(self.con, self.source, expr, "__w", rows, n)

    def stats(self, names: Sequence[str], rows: str,
              numeric: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Per column of ``names`` over the events where ``rows`` holds: ``distinct``
        (distinct non-missing values, approximate past a few thousand) and ``events``
        (stored events with a value); for
        the ``numeric`` ones also ``min``, ``max`` and ``deciles`` (DuckDB's
        ``quantile_disc`` of the stored values, unweighted: the bins' edges). One
        statement."""
        if not names and not numeric:
            return {}
        select: list[str] = []
        for name in names:
            expr = self.alias[name]
            select.append(f"count({expr}), approx_count_distinct({expr})")
        quantiles = ", ".join(str(q) for q in DECILES)
        for name in numeric:
            value = self.number(name)
            select.append(f"min({value}), max({value}), quantile_disc({value}, [{quantiles}])")
        row = self.con.execute(
            f"SELECT {', '.join(select)} FROM {self.source} WHERE {rows}"
        ).fetchone()
        out: dict[str, dict[str, Any]] = {}
        for n, name in enumerate(names):
            out[name] = {"events": int(row[2 * n] or 0), "distinct": int(row[2 * n + 1] or 0)}
        base = 2 * len(names)
        for n, name in enumerate(numeric):
            lo, hi, qs = row[base + 3 * n: base + 3 * n + 3]
            out.setdefault(name, {}).update(
                {"min": lo, "max": hi, "deciles": [float(q) for q in qs or []]})
        return out

    def histograms(
        self, buckets: Mapping[str, Bucket], side: str | Mapping[Any, str], rows: str,
        sizes: Mapping[str, int] | None = None,
    ) -> dict[tuple[Any, str], dict[str, float]]:
        """``{(side value, column): {bucket key: weighted count}}`` over the events where
        ``rows`` holds, ``buckets[column]`` being the bucket of that column (an expression
        and how to read its values) and ``side`` either an expression giving each event's
        side (or group; a list expression under ``unnest(...)`` puts an event on several
        sides) or ``{side value: condition}`` for a few fixed sides (an event on every side
        whose condition holds: one filtered sum per side, no row is repeated). One
        statement: one grouping set per column, each column in its own type. ``sizes`` (an
        estimate of each column's number of buckets, when known) lets columns with few
        buckets share a grouping set (:func:`_packed`), their counts summed apart after.
        With a side expression every set also groups by the side: a shared set returns at
        most (sides x its bucket combinations) rows and at most one per (side, event), so
        with many sides (a breakdown by user) it is no worse than a set of its own."""
        if not buckets:
            return {}
        names = list(buckets)
        cols = ", ".join(f"{expr} AS h{n}" for n, (expr, _) in enumerate(buckets.values()))
        hs = [f"h{n}" for n in range(len(names))]
        which = f"list_position([{', '.join(f'grouping({h})' for h in hs)}], 0)"
        tags = [tag for _, tag in buckets.values()]
        known = sizes if sizes is not None else {}
        groups = _packed([known.get(name, 0) for name in names])
        members = {g[0]: g for g in groups}  # a set's first column names it (``which``)
        out: dict[tuple[Any, str], dict[str, float]] = {}

        def add(side_value: Any, n: int, values: Sequence[Any], weight: float) -> None:
            for i in members[n]:
                counts = out.setdefault((side_value, names[i]), {})
                key = bucket_key(tags[i], values[i])
                counts[key] = counts.get(key, 0.0) + weight

        if isinstance(side, str):
            sets = ", ".join("(" + ", ".join(["__side", *(hs[i] for i in g)]) + ")"
                             for g in groups)
            sql = (
                f"WITH base AS (SELECT {side} AS __side, __w, {cols} FROM {self.source}"
                f" WHERE {rows}) SELECT __side, {which}, sum(__w), {', '.join(hs)} FROM base"
                f" GROUP BY GROUPING SETS ({sets})"
            )
            for side_value, position, weight, *values in self.con.execute(sql).fetchall():
                add(side_value, int(position) - 1, values, float(weight))
            return out
        sides = list(side)
        flags = ", ".join(f"({cond}) IS TRUE AS __s{k}" for k, cond in enumerate(side.values()))
        sums = ", ".join(f"sum(__w) FILTER (WHERE __s{k})" for k in range(len(sides)))
        sets = ", ".join("(" + ", ".join(hs[i] for i in g) + ")" for g in groups)
        sql = (
            f"WITH base AS (SELECT {flags}, __w, {cols} FROM {self.source} WHERE {rows})"
            f" SELECT {which}, {sums}, {', '.join(hs)} FROM base GROUP BY GROUPING SETS ({sets})"
        )
        for position, *rest in self.con.execute(sql).fetchall():
            values = rest[len(sides):]
            for side_value, weight in zip(sides, rest[: len(sides)], strict=False):
                if weight is not None:  # no event of this side in the bucket
                    add(side_value, int(position) - 1, values, float(weight))
        return out


_PACK: Final = 256  # at most this many bucket combinations in a shared grouping set


def _packed(sizes: Sequence[int]) -> list[list[int]]:
    """Columns (by index) grouped into grouping sets: a column whose bucket count is known
    and small shares its set with the next ones while the product of their bucket counts
    (each plus one, for *missing*) stays within :data:`_PACK`; any other column has a set
    of its own. Each grouping set is one aggregation over every row, so fewer sets cost
    less; a set's result has a row per combination of its columns' buckets (a few
    hundred at most), summed per column afterwards. Weights are whole numbers
    (``sample_rate``), so these sums are exact, as the per-column ones were."""
    groups: list[list[int]] = []
    current: list[int] = []
    product = 1
    for n, size in enumerate(sizes):
        if not 0 < size < _PACK:
            groups.append([n])
            continue
        if current and product * (size + 1) > _PACK:
            groups.append(current)
            current, product = [], 1
        current.append(n)
        product *= size + 1
    if current:
        groups.append(current)
    return sorted(groups)


def bucket_key(tag: str, value: Any) -> str:
    """A value as fetched from a bucket column, as its bucket key (module doc)."""
    if value is None:
        return MISSING
    if tag == "n":
        return f"n{int(value)}"
    if tag == "s":
        return "s" + str(value)
    if tag == "b":
        return "btrue" if value else "bfalse"
    if tag == "j":
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
            value = int(value)
        return "j" + json.dumps(value)
    return str(value)  # "J": the key itself
