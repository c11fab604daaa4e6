"""``compare``: what is different about the selected events (docs/analysis.md, "compare").

The *selection* is the events that pass every ``where`` condition; the *baseline* the
events that pass every ``baseline`` condition, by default every event not selected (an
event may be on both sides when both are given). Each event weighs its ``samplerate``.

Every column of the files is compared except: the columns the selection and baseline
conditions name; identity and bookkeeping fields (``timestamp``, ``samplerate``, ``id``,
names ending in ``.id``, ``_id`` or ``.ids``, ``trace.*``); columns that are not numbers
and whose values are (nearly) unique per event (distinct values at least 90% of the
events that have one, and more than 10). At most 2,000 columns (by name) are compared,
with a warning past that. A column becomes a distribution over buckets:

- a number column with more than 10 distinct values (``kind: numeric``): the bins between
  the deciles of the union of both sides (equal deciles merged), the last bin closed;
- any other column (``kind: categorical``): one bucket per value, at most 20 (the most
  common over both sides), the rest in one *other* bucket;
- a missing value (absent or null) is a bucket of its own, in both kinds.

The score of a column is the total variation distance between the selection's and the
baseline's weighted shares, ``0.5 * sum |s - b|`` in [0, 1]: the share of the selection
that would have to move for it to look like the baseline. Columns are ranked by it (ties by
name), each with the buckets whose shares differ most; a column distributed exactly as one
ranked before it (every bucket and share on both sides equal: a root event's
``http.client.count`` and ``rollup.http.client.count``) is listed in that one's
``same_as`` instead of taking a rank. Two statements read the columns
(statistics, then every histogram), whatever their number.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from wideevents._errors import ConfigurationError
from wideevents.query._divergence import shares, total_variation
from wideevents.query._frame import (
    MISSING,
    Bucket,
    Frame,
    Paths,
    all_keys,
    bucket_value,
    conditions,
    session,
)
from wideevents.query._hints import missing_column, sampled_columns

__all__ = ["CompareResult", "compare", "is_identity"]

_IDENTITY: Final = re.compile(r"^(timestamp|samplerate|id|trace\..*)$|(\.id|_id|\.ids)$")
_MAX_CATEGORIES_AS_NUMERIC: Final = 10
_TOP: Final = 5
_MAX_VALUES: Final = 20
_MAX_COLUMNS: Final = 2000  # one SQL statement holds every column compared
_OTHER: Final = "\x00other"  # not a key the frame writes (those start m, n, s, b, j)


def is_identity(column: str) -> bool:
    """Whether ``column`` names an id, a timestamp or the sample rate (never compared)."""
    return _IDENTITY.search(column) is not None


@dataclass
class CompareResult:
    """``fields``: the compared columns, best first (the ``--json`` document's entries);
    ``selection_count`` / ``baseline_count``: weighted events on each side."""

    fields: list[dict[str, Any]]
    selection_count: float
    baseline_count: float
    skipped_lines: int = 0
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The ``wideevents compare --json`` document."""
        return {"fields": self.fields, "selection_count": self.selection_count,
                "baseline_count": self.baseline_count}  # fmt: skip


def compare(
    files: Paths,
    *,
    where: Any,
    baseline: Any = None,
    limit: int = 10,
    top: int = _TOP,
    cache: bool | str = True,
) -> CompareResult:
    """Rank the columns of ``files`` by how differently the selection (``where``) and the
    baseline (``baseline``, default every other event) are distributed (module doc).

    ``where``/``baseline``: conditions as ``--where`` text (``'duration_ms > 250'``),
    ``{"column", "op", "value"}`` dicts, or lists of them. ``limit``: columns returned;
    ``top``: buckets shown per column. Raises ConfigurationError for no selection, a bad
    filter or no matching file; QueryError when DuckDB cannot read a file.
    """
    selection = conditions(where, "where")
    if not selection:
        raise ConfigurationError(
            "compare needs a selection: pass where='duration_ms > 250' (--where on the "
            "command line)"
        )
    against = conditions(baseline, "baseline")
    for name, value in (("limit", limit), ("top", top)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigurationError(f"compare: {name} must be a positive integer, got {value!r}")
    used = {c.column for c in (*selection, *against)}
    with session(files, cache) as (con, store, paths):
        keys = all_keys(store, paths)
        candidates = [k for k in keys if k and k not in used and not is_identity(k)]
        warnings = []
        if len(candidates) > _MAX_COLUMNS:
            warnings.append(f"the files have {len(candidates)} columns: compared the first "
                            f"{_MAX_COLUMNS} by name")
            candidates = candidates[:_MAX_COLUMNS]
        frame = Frame.build(con, store, paths, [*candidates, *sorted(used)])
        warnings += [missing_column(c, "filter", sampled_columns(paths))
                     for c in sorted(used) if frame.kinds[c] == "missing"]  # fmt: skip
        sel_sql = frame.where(selection)
        base_sql = frame.where(against) if against else f"NOT {sel_sql}"
        rows = f"(({sel_sql}) OR ({base_sql}))"
        # One filtered sum per side: an event on both sides is not repeated.
        side = {1: sel_sql, 0: base_sql}
        numeric = [c for c in candidates if frame.kinds[c] == "number"]
        # Deciles only for the number columns that get bins (a selection each: the costly
        # part). Columns with a fraction almost always have more than 10 values: theirs
        # come with the counts, in the same pass; integer columns (codes, bins, counts)
        # often do not, so theirs are read after, only when needed.
        floats = [c for c in numeric if not frame.integers.get(c, False)]
        stats = frame.stats(candidates, rows, floats)
        wide = [c for c in numeric if stats[c]["events"]
                and stats[c]["distinct"] > _MAX_CATEGORIES_AS_NUMERIC]
        late = [c for c in wide if "deciles" not in stats[c]]
        for column, st in frame.stats([], rows, late).items():  # counts known already
            stats[column] |= st
        buckets: dict[str, Bucket] = {}
        edges: dict[str, list[float]] = {}
        sizes: dict[str, int] = {}  # buckets per column, about: lets small ones share a set
        for column in candidates:
            st = stats[column]
            if st["events"] == 0:
                continue  # in neither side
            if column in numeric and st["distinct"] > _MAX_CATEGORIES_AS_NUMERIC:
                edges[column] = sorted(set(st["deciles"]))
                buckets[column] = frame.bin_bucket(column, edges[column])
                sizes[column] = len(edges[column]) + 1
            elif column not in numeric and st["distinct"] > 10 and (
                st["distinct"] >= 0.9 * st["events"]
            ):
                continue  # unique per event: an identifier or free text
            else:
                buckets[column] = frame.value_bucket(column)
                sizes[column] = st["distinct"]
        histograms = frame.histograms(buckets, side, rows, sizes)
        if buckets:  # every column's buckets (missing included) add up to its side's weight
            first = next(iter(buckets))
            counts = [sum(histograms.get((s, first), {}).values()) for s in (1, 0)]
        else:
            counts = con.execute(
                f"SELECT sum(__w) FILTER (WHERE {sel_sql}), sum(__w) FILTER (WHERE {base_sql})"
                f" FROM {frame.source}"
            ).fetchone()
        skipped = frame.skipped_lines
    selected, based = float(counts[0] or 0), float(counts[1] or 0)
    if not selected:
        warnings.append("the selection matched no event: check the --where conditions")
    if not based:
        warnings.append("the baseline matched no event: check the --baseline conditions")
    out: list[dict[str, Any]] = []
    for column, _expr in buckets.items():
        sel = histograms.get((1, column), {})
        base = histograms.get((0, column), {})
        if column not in edges:
            sel, base = _lumped(sel, base)
        keys_ = sorted(set(sel) | set(base), key=_bucket_order)
        p, q = shares(sel, keys_), shares(base, keys_)
        score = total_variation(p, q) if selected and based else 0.0
        st = stats[column]
        entries = []
        for key, s, b in zip(keys_, p, q, strict=True):
            entry: dict[str, Any] = {}
            if key == MISSING:
                entry |= {"value": None, "missing": True}
            elif key == _OTHER:
                entry |= {"value": None, "other": True}
            elif column in edges:
                entry["range"] = _range(edges[column], int(key[1:]), st["min"], st["max"])
            else:
                entry["value"] = bucket_value(key)
            entries.append((abs(s - b), entry | {"selection": s, "baseline": b}))
        # The whole distribution, to find columns that are the same: a root event's
        # `http.client.count` and `rollup.http.client.count` would otherwise take two ranks.
        same_key = repr([e for _, e in entries])
        entries.sort(key=lambda e: -e[0])  # stable: ties keep the bucket order
        out.append({"column": column, "score": score,
                    "kind": "numeric" if column in edges else "categorical",
                    "top": [e for _, e in entries[:top]], "_same": same_key})  # fmt: skip
    out.sort(key=lambda f: (-f["score"], f["column"]))
    return CompareResult(_merge_same(out)[:limit], selected, based, skipped, warnings)


def _merge_same(ranked: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per distribution: a column whose buckets and shares on both sides equal
    those of a column ranked before it (the same score, so next to it: ties sort by
    name) is listed in that one's ``same_as`` instead of taking a rank of its own."""
    out: list[dict[str, Any]] = []
    first: dict[str, dict[str, Any]] = {}
    for entry in ranked:
        key = entry.pop("_same")
        kept = first.get(key)
        if kept is None:
            first[key] = entry
            out.append(entry)
        else:
            kept.setdefault("same_as", []).append(entry["column"])
    return out


def _lumped(sel: dict[str, float], base: dict[str, float]) -> tuple[dict[str, float], ...]:
    """At most :data:`_MAX_VALUES` values (the most common over both sides, by weight), the
    rest in one *other* bucket: many rare values would each add noise to the distance."""
    values = set(sel) | set(base)
    values.discard(MISSING)
    if len(values) <= _MAX_VALUES:
        return sel, base
    kept = set(sorted(values, key=lambda k: (-(sel.get(k, 0.0) + base.get(k, 0.0)), k))
               [:_MAX_VALUES]) | {MISSING}
    out = []
    for side in (sel, base):
        lumped = {k: v for k, v in side.items() if k in kept}
        rest = sum(v for k, v in side.items() if k not in kept)
        if rest:
            lumped[_OTHER] = rest
        out.append(lumped)
    return tuple(out)


def _bucket_order(key: str) -> tuple[int, int, str]:
    if key.startswith("n"):
        return (0, int(key[1:]), "")
    return (2, 0, "") if key == MISSING else (1, 0, key)


def _range(edges: Sequence[float], i: int, lo: Any, hi: Any) -> list[float | None]:
    """[lower, upper] of numeric bin ``i``: from the previous edge (the minimum for the
    first) to the next one (the maximum for the last, which is closed)."""
    lower = edges[i - 1] if i > 0 else lo
    upper = edges[i] if i < len(edges) else hi
    return [None if lower is None else float(lower), None if upper is None else float(upper)]
