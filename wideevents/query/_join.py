"""The feedback join: each feedback event with the prediction event it is about.

:func:`join_feedback` reads JSON-lines files (the stdout/file sinks' output) with DuckDB,
through the same typed column store as :func:`~wideevents.query.run_local`, and returns one
row per ``feedback`` event (``name == "feedback"`` with a ``prediction.id``):

- ``prediction.id``; ``weight``, the feedback event's ``samplerate`` by the one sample-rate
  rule (docs/sampling.md): the number of outcomes the row stands for; ``joined``, whether a
  prediction event with that id is in the files (any other event with the id; when several
  have it, the earliest by ``timestamp``);
- the prediction's fields ``model.*``, ``slice.*``, ``data.*``, ``prediction.label``,
  ``prediction.score``, ``prediction.p_positive`` and ``score.bin``: the prediction
  event's value when joined, else the copy the feedback event carries (from the in-process
  cache or a context token; docs/schema.md, "Feedback");
- every ``feedback.*`` field of the feedback event; ``feedback.correct`` is filled in when
  the feedback event lacks it and both labels are known, by the canonical rule of
  ``wideevents.ml`` (numbers by value, booleans as booleans, strings exactly).

A prediction whose event was sampled away (or is in a file not given) is not joined; its
feedback row keeps what the feedback event carries. :func:`feedback_join_sql` is the
DuckDB statement behind it, for a calibration report to aggregate in SQL.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from typing import Any

from wideevents._filter import ColumnKind, quote_identifier
from wideevents.query._frame import session
from wideevents.query._plan import sample_rate
from wideevents.query._store import ColumnStore, combined_kind

__all__ = ["PREDICTION_FIELDS", "feedback_join_sql", "join_feedback"]

#: The prediction fields a row carries besides the ``model.*``, ``slice.*``, ``data.*`` ones.
PREDICTION_FIELDS = ("prediction.label", "prediction.score", "prediction.p_positive",
                     "score.bin")
_PREFIXES = ("model.", "slice.", "data.")
_SYSTEM = ("name", "prediction.id", "timestamp", "samplerate")


def join_feedback(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    cache: bool | str | os.PathLike[str] = True,
) -> list[dict[str, Any]]:
    """One dict per feedback event in the files (see the module doc), in no given order.

    Raises ConfigurationError for no matching file or a missing DuckDB; QueryError when
    DuckDB cannot read a file.
    """
    with session(paths, cache) as (con, store, files):  # DuckDB/file errors: QueryError
        sql, columns, kinds = feedback_join_sql(con, store, files)
        if not sql:
            return []
        rows = [dict(zip(columns, values, strict=True)) for values in con.execute(sql).fetchall()]
    decode = [c for c in columns if kinds.get(c) in ("json", "other")]
    for row in rows:
        for column in decode:
            row[column] = _decode(row[column])
        if row.get("feedback.correct") is None:
            correct = _same(row.get("prediction.label"), row.get("feedback.label"))
            if correct is not None:
                row["feedback.correct"] = correct
    return rows


def _keys(store: ColumnStore, files: Sequence[str]) -> list[str]:
    """The fields of the files that a joined row carries, in a stable order (the keys of
    each file are read once per version of it and kept by the column store)."""
    found: set[str] = set()
    for path in files:
        found.update(k for k in store.keys(path)
                     if k.startswith((*_PREFIXES, "feedback.")) or k in PREDICTION_FIELDS)
    return sorted(found)


def feedback_join_sql(
    con: Any, store: ColumnStore, files: Sequence[str], *, fields: Sequence[str] | None = None
) -> tuple[str, list[str], dict[str, ColumnKind]]:
    """(SELECT statement, its column names, their kinds) of the join over ``files``; the
    statement is empty when the files have no ``prediction.id`` at all. ``fields``: carry
    only these (of the fields a row may carry; see the module doc) instead of every one the
    files have, which saves the pass that lists the files' keys."""
    if fields is None:
        keys = _keys(store, files)
    else:
        keys = sorted({f for f in fields
                       if f.startswith((*_PREFIXES, "feedback.")) or f in PREDICTION_FIELDS})
    fields = list(dict.fromkeys([*_SYSTEM, *keys]))
    parts = [store.columns(path, fields, []) for path in files]
    combined = {f: combined_kind(parts, f) for f in fields}
    if combined["prediction.id"][0] == "missing":
        return "", [], {}
    alias = {f: f"c{n}" for n, f in enumerate(fields)}
    selects = []
    for part in parts:
        cols = [f"{part.expression(f, *combined[f])} AS {alias[f]}" for f in fields]
        selects.append(f"SELECT {', '.join(cols)} FROM {part.source}")
    pid, name, ts = alias["prediction.id"], alias["name"], alias["timestamp"]
    # The join key as text, whatever kind the ids were written as.
    key = pid if combined["prediction.id"][0] == "string" else f"CAST({pid} AS VARCHAR)"
    weight = sample_rate(f"fb.{alias['samplerate']}", combined["samplerate"][0])
    out = [f"fb.__key AS {quote_identifier('prediction.id')}", f"{weight} AS weight",
           "pred.__key IS NOT NULL AS joined"]
    columns = ["prediction.id", "weight", "joined"]
    kinds: dict[str, ColumnKind] = {}
    for f in keys:
        if f.startswith("feedback."):
            out.append(f"fb.{alias[f]} AS {quote_identifier(f)}")
        else:
            out.append(f"coalesce(pred.__p.{alias[f]}, fb.{alias[f]}) AS {quote_identifier(f)}")
        columns.append(f)
        kinds[f] = combined[f][0]
    # The earliest prediction per id (timestamps NULLS LAST) as one aggregate: a hash
    # aggregation of the predicted fields, not a window over every row (which sorts).
    pack = ", ".join(f"'{alias[f]}': {alias[f]}" for f in keys
                     if not f.startswith("feedback.")) or "'_': 1"
    sql = (
        f"WITH src AS (SELECT *, {key} AS __key FROM ({' UNION ALL '.join(selects)})),"
        f" fb AS (SELECT * FROM src WHERE {name} = 'feedback' AND __key IS NOT NULL),"
        f" pred AS (SELECT __key, arg_min({{{pack}}}, {{'n': {ts} IS NULL, 't': {ts}}}) AS __p"
        f" FROM src WHERE {name} IS DISTINCT FROM 'feedback' AND __key IN (SELECT __key FROM"
        f" fb) GROUP BY __key)"
        f" SELECT {', '.join(out)} FROM fb LEFT JOIN pred ON fb.__key = pred.__key"
    )
    return sql, columns, kinds


def _decode(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def _same(predicted: Any, actual: Any) -> bool | None:
    """Whether two labels are equal by ``wideevents.ml``'s canonical rule (ml/_values.py,
    ``same_value``; restated here: the query layer does not import ``wideevents.ml``)."""
    if predicted is None or actual is None:
        return None
    if isinstance(predicted, bool) or isinstance(actual, bool):
        return type(predicted) is type(actual) and predicted == actual
    if isinstance(predicted, (int, float)) and isinstance(actual, (int, float)):
        return bool(predicted == actual)
    if isinstance(predicted, str) and isinstance(actual, str):
        return predicted == actual
    return False
