"""``drift`` and ``calibration`` computed from Honeycomb's Query Data API (``--honeycomb``).

The same numbers as the local commands (``_drift``, ``_calibration``), from weighted
COUNTs and SUMs that Honeycomb computes, within its limits: the Query Data API needs the
Enterprise plan, allows about 10 query results per minute, and covers the last 7 days
(``time_range`` 604,800 s is sent; the default window would be 2 hours). So the breakdowns
are batched: each query carries many *named calculations with their own filters* (one
COUNT per bin or category of a feature), at most :data:`MAX_CALCULATIONS` per query, the
group (``breakdown``) as its only breakdown.

**drift** (``--profile`` only: the bins are the profile's, through the ``feature_bin.*``
and ``score.bin`` fields the SDK writes). The target is the events with
``data.null_count`` (every event ``ev.features`` recorded) that are not ``feedback`` events
and pass ``target``; a feature's *missing* share is what its bins do not count.

**calibration** reads the feedback events themselves, which carry the prediction's
``prediction.p_positive``/``prediction.score`` and ``score.bin`` (copied from the
in-process cache or a context token; docs/schema.md, "Feedback"): one query broken down
by ``score.bin`` and ``prediction.label`` (and the group) with COUNT and SUM of the
probability over the rows with ``feedback.correct``, and over those where it is true. The
bins are ``score.bin`` (10). The Brier score needs per-event squares that a breakdown does
not give: it is ``null`` here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from wideevents._errors import ConfigurationError
from wideevents._filter import Condition
from wideevents.query._calibration import CalibrationResult, _groups
from wideevents.query._drift import (
    _OTHER,
    DriftResult,
    _category_id,
    _entry,
    _from_profile,
    load_profile,
)
from wideevents.query._frame import MISSING, conditions
from wideevents.query._model import Calculation, Query

__all__ = ["MAX_CALCULATIONS", "SEVEN_DAYS", "calibration_honeycomb", "check_bins",
           "drift_honeycomb"]

MAX_CALCULATIONS: Final = 100
SEVEN_DAYS: Final = 7 * 24 * 3600


def _query(calcs: Sequence[Calculation], filters: Sequence[Condition],
           breakdowns: Sequence[str]) -> Query:
    return Query(calculations=list(calcs), filters=list(filters), breakdowns=list(breakdowns),
                 time_range=SEVEN_DAYS, limit=1000)


def _count(name: str, *conds: Condition) -> Calculation:
    return Calculation("COUNT", name=name, filters=conds)


def drift_honeycomb(client: Any, dataset: str, *, profile: Any, target: Any = None,
                    breakdown: str | None = None) -> tuple[DriftResult, list[Query]]:
    """Drift against ``profile`` from Honeycomb (module doc); returns the result and the
    queries it ran."""
    doc = load_profile(profile)
    warnings: list[str] = []
    names = {"feature_bin." + f["name"] for f in doc["features"] if f.get("kind") == "numeric"}
    names |= {"feature." + f["name"] for f in doc["features"] if f.get("kind") != "numeric"}
    features = _from_profile(doc, names | {"score.bin"}, warnings)
    per_feature: list[tuple[Any, list[tuple[str, Calculation]]]] = []
    for f in features:
        calcs: list[tuple[str, Calculation]] = []
        if f.kind == "numeric":
            for i in range(len(f.edges or []) + 1):
                calcs.append((f"n{i}", _count(f"{f.name}|{i}", Condition(f.column, "=", i))))
        else:
            for n, cat in enumerate(f.categories):
                key = _category_id(cat, f.legacy)
                calcs.append((key, _count(f"{f.name}|{n}", Condition(f.column, "=", cat))))
            calcs.append((MISSING, _count(f"{f.name}|missing",
                                          Condition(f.column, "does-not-exist"))))
        per_feature.append((f, calcs))
    filters = [Condition("name", "!=", "feedback"), Condition("data.null_count", "exists"),
               *conditions(target, "target")]
    breakdowns = [breakdown] if breakdown else []
    total = Calculation("COUNT", name="total")
    queries: list[Query] = []
    batch: list[Calculation] = []
    for _, calcs in per_feature:
        if batch and len(batch) + len(calcs) + 1 > MAX_CALCULATIONS:
            queries.append(_query([total, *batch], filters, breakdowns))
            batch = []
        batch += [c for _, c in calcs]
    if batch:
        queries.append(_query([total, *batch], filters, breakdowns))
    rows: dict[Any, dict[str, float]] = {}
    for query in queries:
        for row in client.run(query, dataset).rows:
            group = row.get(breakdown) if breakdown else None
            entry = rows.setdefault(group, {})
            for key, value in row.items():
                if key != breakdown and value is not None:
                    entry[key] = float(value)
    groups = []
    for group, values in rows.items():
        entries = []
        count = values.get("total", 0.0)
        for f, calcs in per_feature:
            target_counts = {key: values.get(c.key, 0.0) for key, c in calcs}
            rest = count - sum(target_counts.values())
            extra = MISSING if f.kind == "numeric" else _OTHER
            if rest > 0:
                target_counts[extra] = target_counts.get(extra, 0.0) + rest
            found = _entry(f, f.reference or {}, target_counts, True)
            if found is not None:
                entries.append(found)
        entries.sort(key=lambda e: (-e["psi"], -e["js"], e["feature"]))
        groups.append({"group": group, "count": count, "features": entries})
    if breakdown is None:
        only = groups[0]["features"] if groups else []
        return DriftResult(features=only, warnings=warnings), queries
    groups.sort(key=lambda g: -max((e["psi"] for e in g["features"]), default=0.0))
    return DriftResult(groups=groups, warnings=warnings), queries


def calibration_honeycomb(client: Any, dataset: str, *, breakdown: str | None = None,
                          where: Any = None, positive: Any = None
                          ) -> tuple[CalibrationResult, list[Query]]:
    """Calibration from Honeycomb (module doc); returns the result and the query it ran."""
    known = Condition("feedback.correct", "exists")
    right = Condition("feedback.correct", "=", True)
    calcs = [Calculation("COUNT", name="n", filters=(known,))]
    for column, short in (("prediction.p_positive", "p"), ("prediction.score", "s")):
        calcs += [Calculation("SUM", column, name=f"{short}_sum", filters=(known,)),
                  Calculation("COUNT", name=f"{short}_n", filters=(known, Condition(column, "exists"))),
                  Calculation("SUM", column, name=f"{short}_right", filters=(right,))]
    calcs.append(Calculation("COUNT", name="right", filters=(right,)))
    breakdowns = [*([breakdown] if breakdown else []), "score.bin", "prediction.label"]
    query = _query(calcs, [Condition("name", "=", "feedback"), *conditions(where, "where")],
                   breakdowns)
    rows = client.run(query, dataset).rows
    # Binary rows carry p_positive; the positive class is given, or the label with the
    # highest mean p (as locally).
    means: dict[Any, list[float]] = {}
    for row in rows:
        if row.get("p_n"):
            m = means.setdefault(row.get("prediction.label"), [0.0, 0.0])
            m[0] += float(row.get("p_sum") or 0.0)
            m[1] += float(row["p_n"])
    if positive is None and means:
        label, (total, n) = max(means.items(), key=lambda kv: kv[1][0] / kv[1][1])
        positive = label if (len(means) > 1 or total / n >= 0.5) else None
    cells: list[tuple[Any, ...]] = []
    for row in rows:
        group = row.get(breakdown) if breakdown else None
        b = row.get("score.bin")
        if not isinstance(b, (int, float)) or isinstance(b, bool):
            continue
        binary = bool(row.get("p_n"))
        short = "p" if binary else "s"
        n = float(row.get(f"{short}_n") or 0.0)
        if not n:
            continue
        right_n = float(row.get("right") or 0.0)
        sp, sp_right = float(row.get(f"{short}_sum") or 0.0), float(row.get(f"{short}_right") or 0.0)
        if binary and row.get("prediction.label") != positive:
            y, py = n - right_n, sp - sp_right  # predicted the negative class: y = not correct
        else:
            y, py = right_n, sp_right
        del py  # the Brier score needs per-event squares: not computed from a breakdown
        cells.append((_group_key(group), "binary" if binary else "multiclass", int(b),
                      n, sp, y, 0.0, n, right_n))
    merged: dict[tuple[Any, str, int], list[float]] = {}
    for g, kind, b, *sums in cells:
        acc = merged.setdefault((g, kind, b), [0.0] * 6)
        for i, v in enumerate(sums):
            acc[i] += v
    groups = _groups([(g, kind, b, *sums) for (g, kind, b), sums in merged.items()], 10)
    for g in groups:
        g["brier"] = None
    if not groups:
        return CalibrationResult([], positive, 0, ["no feedback row in Honeycomb has a "
                                                   "probability and feedback.correct"]), [query]
    return CalibrationResult(groups, positive), [query]


def _group_key(value: Any) -> str:
    """A group value as ``_groups`` expects it (the frame's key; see ``_frame``)."""
    if value is None:
        return MISSING
    return _category_id(value, False) if not isinstance(value, str) else "s" + value


def check_bins(bins: int) -> None:
    """ConfigurationError for a bin count ``calibration --honeycomb`` cannot use."""
    if bins != 10:
        raise ConfigurationError("calibration --honeycomb uses score.bin (10 bins): remove "
                                 "--bins or set it to 10")
