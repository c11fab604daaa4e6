"""``calibration``: how well predicted probabilities match observed outcomes
(docs/analysis.md, "calibration").

Rows are the ``feedback`` events joined to their predictions (``_join``: the prediction
event's fields when it is in the files, else the copies the feedback event carries, from
the in-process cache or a signed context token), each weighing the feedback's
``samplerate``. A row is *labelled* when its outcome is known:

- **binary** (the row has ``prediction.p_positive``): the predicted probability is p and the
  outcome y is 1 when the observed ``feedback.label`` is the positive class. The positive
  class is ``positive`` when given; otherwise the ``prediction.label`` with the highest mean
  p (the label served when p passes the threshold), and then y is ``feedback.correct`` for
  a row that predicted it and ``not feedback.correct`` for one that did not;
- **multiclass** (no ``prediction.p_positive``; top-label calibration): the predicted
  probability is the top probability ``prediction.score`` and y is ``feedback.correct``.

``feedback.correct``, when the feedback event lacks it, is the predicted label equal to the
observed one (numbers by value, booleans as booleans, strings exactly). Per group (the
``breakdown`` column's values on the joined rows; one group ``null`` without it) and
kind: the reliability table over ``bins`` equal-width bins of the probability (bin i holds
i/bins <= p < (i+1)/bins, 1.0 in the last: with 10 bins, ``score.bin``), with each bin's
weighted count, mean predicted probability and observed rate; the expected calibration
error ``ECE = sum_b (W_b / W) * |mean_p_b - rate_b|``; the Brier score (the weighted mean of
``(p - y)^2``; top-label for multiclass); the accuracy (weighted mean of
``feedback.correct`` over the rows that have it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from wideevents._errors import ConfigurationError
from wideevents._filter import ColumnKind, quote_identifier
from wideevents.query._frame import (
    MAX_GROUPS,
    MISSING,
    Frame,
    Paths,
    bucket_value,
    check_groups,
    conditions,
    largest,
    session,
    too_many_groups,
)
from wideevents.query._hints import missing_column, sampled_columns
from wideevents.query._join import PREDICTION_FIELDS, feedback_join_sql

__all__ = ["CalibrationResult", "calibration"]

_JOINED = ("model.", "slice.", "data.", "feedback.")  # what a joined row carries (_join)
_SYSTEM = ("prediction.id", "weight", "joined")
_USED = ("prediction.p_positive", "prediction.score", "prediction.label", "feedback.label",
         "feedback.correct")


@dataclass
class CalibrationResult:
    """``groups`` as in the ``--json`` document; ``positive``: the positive class used."""

    groups: list[dict[str, Any]]
    positive: Any = None
    skipped_lines: int = 0
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The ``wideevents calibration --json`` document."""
        return {"groups": self.groups}


def calibration(
    files: Paths,
    *,
    breakdown: str | None = None,
    bins: int = 10,
    where: Any = None,
    positive: Any = None,
    groups: int = MAX_GROUPS,
    cache: bool | str = True,
) -> CalibrationResult:
    """Reliability table, ECE, Brier score and accuracy per group of the feedback joined to
    its predictions (module doc). ``where``: conditions on the joined rows (``--where``
    text, dicts or lists of them), e.g. ``'model.version = v2'``; ``positive``: the positive
    class of a binary model (default: inferred); ``groups``: with ``breakdown``, the groups
    with the most feedback (weighted) that are computed, the others left out with a
    warning. Raises ConfigurationError for a bad argument; QueryError when DuckDB cannot
    read a file."""
    if isinstance(bins, bool) or not isinstance(bins, int) or not 1 <= bins <= 1000:
        raise ConfigurationError(f"calibration: bins must be an integer 1-1000, got {bins!r}")
    conds = conditions(where, "where")
    check_groups(groups)
    warnings: list[str] = []
    with session(files, cache) as (con, store, paths):
        wanted = [breakdown, *(c.column for c in conds)] if breakdown else [c.column for c in conds]
        for column in wanted:
            if column not in _SYSTEM and not (column.startswith(_JOINED)
                                              or column in PREDICTION_FIELDS):
                raise ConfigurationError(
                    f"calibration: {column!r} is not a field of the feedback rows joined to "
                    f"their predictions; use a field starting with {', '.join(_JOINED)} or one "
                    f"of {', '.join((*PREDICTION_FIELDS, *_SYSTEM))}"
                )
        sql, columns, kinds = feedback_join_sql(con, store, paths, fields=[*_USED, *wanted])
        skipped = sum(store.columns(p, [], []).skipped for p in paths)
        if not sql:
            return CalibrationResult([], None, skipped, ["no event has a prediction.id: "
                                                         "there is no feedback to join"])
        all_kinds: dict[str, ColumnKind] = {"prediction.id": "string", "weight": "number",
                                            "joined": "boolean", **kinds}
        seen: set[str] | None = None
        for column in wanted:
            if all_kinds.get(column, "missing") == "missing":
                seen = sampled_columns(paths) if seen is None else seen
                warnings.append(missing_column(column, "filter or breakdown", seen))
        for name in ("prediction.p_positive", "prediction.score", "prediction.label",
                     "feedback.label", "feedback.correct"):
            all_kinds.setdefault(name, "missing")
        frame = Frame(con, f"(SELECT *, weight AS __w FROM ({sql}))",
                      {name: quote_identifier(name) for name in all_kinds}, all_kinds)
        lab, fbl = frame.category("prediction.label"), frame.category("feedback.label")
        same = f"CASE WHEN {lab} <> '{MISSING}' AND {fbl} <> '{MISSING}' THEN {lab} = {fbl} END"
        stored = _boolean(frame, "feedback.correct")
        group = frame.category(breakdown) if breakdown else f"'{MISSING}'"
        con.execute(
            f"CREATE TEMP TABLE __cal AS SELECT {group} AS g, __w AS w,"
            f" {frame.number('prediction.p_positive')} AS p, {frame.number('prediction.score')}"
            f" AS conf, {lab} AS lab, {fbl} AS fbl, coalesce({stored}, {same}) AS ok"
            f" FROM {frame.source} WHERE {frame.where(conds)}"
        )
        if positive is not None:
            key = _key(positive)
            y_binary = f"CASE WHEN fbl <> '{MISSING}' THEN CAST(fbl = '{_esc(key)}' AS INTEGER) END"
            used = positive
        else:
            row = con.execute(
                f"SELECT lab, avg(p), count(*) OVER () FROM __cal WHERE p IS NOT NULL AND lab <>"
                f" '{MISSING}' GROUP BY lab ORDER BY avg(p) DESC, lab LIMIT 1"
            ).fetchone()
            found: str | None = None if row is None or (row[2] == 1 and row[1] < 0.5) else row[0]
            used = None if found is None else bucket_value(found)
            predicted = "FALSE" if found is None else f"lab = '{_esc(found)}'"
            y_binary = f"CASE WHEN {predicted} THEN CAST(ok AS INTEGER) ELSE 1 - CAST(ok AS INTEGER) END"
        if breakdown:  # the positive class above is inferred from every group
            keep, total = largest(con, "__cal", "g", "w", "TRUE", groups)
            if total > groups:
                warnings.append(too_many_groups(breakdown, total, groups))
                con.execute(f"DELETE FROM __cal WHERE NOT {keep}")
        rows = con.execute(
            f"WITH r AS (SELECT g, w, ok, CASE WHEN p IS NOT NULL THEN 'binary' ELSE 'multiclass'"
            f" END AS kind, coalesce(p, conf) AS prob, CASE WHEN p IS NOT NULL THEN {y_binary}"
            f" ELSE CAST(ok AS INTEGER) END AS y FROM __cal),"
            f" l AS (SELECT *, least(greatest(CAST(floor(prob * {bins}) AS INTEGER), 0),"
            f" {bins - 1}) AS bin FROM r WHERE prob IS NOT NULL AND y IS NOT NULL"
            f" AND prob BETWEEN 0 AND 1)"
            f" SELECT g, kind, bin, sum(w), sum(w * prob), sum(w * y), sum(w * (prob - y) ^ 2),"
            f" sum(w) FILTER (WHERE ok IS NOT NULL), sum(w * CAST(ok AS INTEGER))"
            f" FROM l GROUP BY ALL"
        ).fetchall()
        con.execute("DROP TABLE __cal")
    computed = _groups(rows, bins)
    if not computed:
        warnings.append("no feedback row has both a predicted probability and a known outcome"
                        " (feedback.label or feedback.correct)")
    return CalibrationResult(computed, used, skipped, warnings)


def _boolean(frame: Frame, name: str) -> str:
    kind, expr = frame.kinds[name], frame.col(name)
    if kind == "boolean":
        return expr
    if kind == "json":
        return f"CASE WHEN json_type({expr}) = 'BOOLEAN' THEN CAST({expr} AS BOOLEAN) END"
    return "CAST(NULL AS BOOLEAN)"


def _key(value: Any) -> str:
    """A value as the frame's category key (``Frame.category``)."""
    if isinstance(value, bool):
        return "btrue" if value else "bfalse"
    if isinstance(value, str):
        return "s" + value
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        value = int(value)
    return "j" + json.dumps(value, separators=(",", ":"))


def _esc(text: str) -> str:
    return text.replace("'", "''")


def _groups(rows: list[tuple[Any, ...]], bins: int) -> list[dict[str, Any]]:
    by: dict[tuple[str, str], dict[int, tuple[float, ...]]] = {}
    for g, kind, b, *sums in rows:
        by.setdefault((g, kind), {})[int(b)] = tuple(float(s or 0) for s in sums)
    out = []
    for (g, kind), cells in by.items():
        total = sum(c[0] for c in cells.values())
        if total <= 0:
            continue
        table, ece, brier, ok_w, ok_sum = [], 0.0, 0.0, 0.0, 0.0
        for i in range(bins):
            w, wp, wy, wsq, wok, sok = cells.get(i, (0.0,) * 6)
            mean_p = wp / w if w else None
            rate = wy / w if w else None
            if w:
                ece += w / total * abs(wp / w - wy / w)
            brier += wsq
            ok_w, ok_sum = ok_w + wok, ok_sum + sok
            table.append({"bin": i, "lower": i / bins, "upper": (i + 1) / bins, "count": w,
                          "mean_predicted": mean_p, "observed_rate": rate})  # fmt: skip
        out.append({"group": bucket_value(g), "kind": kind, "count": total, "ece": ece,
                    "brier": brier / total, "accuracy": ok_sum / ok_w if ok_w else None,
                    "bins": table})  # fmt: skip
    out.sort(key=lambda e: (e["group"] is None, -e["ece"], str(e["group"]), e["kind"]))
    return out
