"""Score fields for a whole batch at once.

:func:`score_fields_batch` returns, for every row, exactly what
:func:`~wideevents.ml.score_fields` returns for that row. Clean rows (finite, no ties at the
top-k cut, probabilities not negative) are computed together with numpy; any other row goes
through the one-row function, so the two can never disagree on an edge case.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._problems import Problems
from ._scores import (
    KINDS,
    as_float_array,
    label_of,
    resolve_k,
    resolve_threshold,
    score_fields,
    top_keys,
)

__all__ = ["score_fields_batch"]

_SORT_ALL_BELOW = 64


def score_fields_batch(
    values: Any,
    *,
    labels: Sequence[Any] | None = None,
    k: int = 5,
    logits: bool = False,
    kind: str = "auto",
    threshold: float | None = None,
) -> list[dict[str, Any]]:
    """One dict of ``prediction.*`` / ``score.*`` fields per row of a 2-D array.

    A 1-D array is one value per row (binary or regression). ``kind="auto"`` resolves once
    for the whole batch: ``multiclass`` for two or more columns, else as :func:`score_fields`
    decides for one value. Never raises; an input that is not a batch at all gives ``[]``
    (logged once).
    """
    options: dict[str, Any] = {
        "labels": labels,
        "k": k,
        "logits": logits,
        "kind": kind,
        "threshold": threshold,
    }
    try:
        return _batch(values, options)
    except Exception as exc:  # noqa: BLE001 - containment: a helper never raises
        Problems().add("scores: internal error", exc)
        return []


def _rows_one_by_one(values: Any, options: dict[str, Any]) -> list[dict[str, Any]]:
    if isinstance(values, (str, bytes)):
        Problems().add("scores: batch is not a sequence of rows", type(values).__name__)
        return []
    try:
        rows = list(values)
    except Exception:  # noqa: BLE001 - a user's __iter__ may raise anything
        Problems().add("scores: batch is not a sequence of rows", type(values).__name__)
        return []
    return [score_fields(row, **options) for row in rows]


def _batch(values: Any, options: dict[str, Any]) -> list[dict[str, Any]]:
    arr = as_float_array(values)
    if arr is None or arr.ndim not in (1, 2):
        return _rows_one_by_one(values, options)
    if arr.shape[0] == 0:
        return []
    if arr.ndim == 1:
        arr = arr[:, None]
    n_cols = arr.shape[1]
    labels = options["labels"]
    kind = options["kind"]
    if kind == "auto":
        if n_cols >= 2:
            kind = "multiclass"
        elif options["threshold"] is not None or (
            labels is not None and hasattr(labels, "__len__") and len(labels) == 2
        ):
            kind = "binary"
        else:
            kind = "regression"
    elif kind not in KINDS:
        return _rows_one_by_one(arr, options)
    options = dict(options, kind=kind)
    if kind == "multiclass" and n_cols >= 2:
        return _multiclass(arr, options)
    if kind == "binary" and n_cols <= 2:
        return _binary(arr, options)
    if kind == "regression" and n_cols == 1:
        return _regression(arr, options)
    return _rows_one_by_one(arr, options)


def _shared_problems(options: dict[str, Any], n_labels_expected: int) -> tuple[Any, Problems]:
    """Validate the options once for the batch; the same problems then go into every row."""
    problems = Problems()
    labels = options["labels"]
    if labels is not None:
        try:
            n_labels = len(labels)
        except Exception:  # noqa: BLE001 - a user's __len__ may raise anything
            problems.add("scores: labels is not a sequence", type(labels).__name__)
            return None, problems
        if n_labels != n_labels_expected:
            reason = (
                "scores: binary needs two labels"
                if options["kind"] == "binary"
                else "scores: labels length mismatch"
            )
            problems.add(reason, f"{n_labels} labels, {n_labels_expected} expected")
            return None, problems
    return labels, problems


def _multiclass(arr: np.ndarray[Any, Any], options: dict[str, Any]) -> list[dict[str, Any]]:
    n_rows, n_cols = arr.shape
    labels, problems = _shared_problems(options, n_cols)
    k = resolve_k(options["k"], problems, "scores")
    with np.errstate(all="ignore"):
        dirty = ~np.isfinite(arr).all(axis=1)
        if options["logits"]:
            e = np.exp(arr - arr.max(axis=1, keepdims=True))
            probs = e / e.sum(axis=1, keepdims=True)
        else:
            probs = arr
        dirty |= (probs < 0.0).any(axis=1)
        kt = min(max(k, 2), n_cols)
        if n_cols < _SORT_ALL_BELOW or kt * 4 >= n_cols:
            order = np.argsort(-probs, axis=1, kind="stable")[:, :kt]
            top = np.take_along_axis(probs, order, axis=1)
        else:
            part = np.sort(np.argpartition(-probs, kt - 1, axis=1)[:, :kt], axis=1)
            part_values = np.take_along_axis(probs, part, axis=1)
            within = np.argsort(-part_values, axis=1, kind="stable")
            order = np.take_along_axis(part, within, axis=1)
            top = np.take_along_axis(part_values, within, axis=1)
            # A tie at the cut means argpartition chose among equals arbitrarily.
            dirty |= (probs >= top[:, -1:]).sum(axis=1) != kt
        total = probs.sum(axis=1)
        dirty |= ~(total > 0.0)
        plogp = np.zeros_like(probs)
        np.multiply(probs, np.log(probs, out=plogp, where=probs > 0.0), out=plogp)
        entropy = np.log(total) - plogp.sum(axis=1) / total
        np.maximum(entropy, 0.0, out=entropy)
        entropy_norm = entropy / math.log(n_cols)
        margin = top[:, 0] - top[:, 1]
    shown = min(k, n_cols)
    if labels is None:
        top_labels = order[:, :shown].tolist()
    else:
        table = np.empty(n_cols, dtype=object)
        table[:] = [label_of(label) for label in labels]
        top_labels = table[order[:, :shown]].tolist()
    top_values = top.tolist()
    margins = margin.tolist()
    entropies = entropy.tolist()
    entropies_norm = entropy_norm.tolist()
    value_keys, label_keys = top_keys(shown)
    rows: list[dict[str, Any]] = []
    dirty_rows = dirty.tolist()
    for i in range(n_rows):
        if dirty_rows[i]:
            rows.append(score_fields(arr[i], **options))
            continue
        values = top_values[i]
        labels_i = top_labels[i]
        shown_values = values if kt == shown else values[:shown]
        row = {
            "prediction.label": labels_i[0],
            "prediction.score": values[0],
            "score.topk.labels": labels_i,
            "score.topk.scores": shown_values,
            "score.margin": margins[i],
            "score.entropy": entropies[i],
            "score.entropy_norm": entropies_norm[i],
            "prediction.nonfinite": False,
            "score.nonfinite_count": 0,
        }
        row.update(zip(value_keys, values, strict=False))  # kt may exceed shown
        row.update(zip(label_keys, labels_i, strict=True))
        rows.append(problems.into(row))
    return rows


def _binary(arr: np.ndarray[Any, Any], options: dict[str, Any]) -> list[dict[str, Any]]:
    labels, problems = _shared_problems(options, 2)
    thr = resolve_threshold(options["threshold"], problems)
    with np.errstate(all="ignore"):
        dirty = ~np.isfinite(arr).all(axis=1)
        z = arr[:, 1] - arr[:, 0] if arr.shape[1] == 2 else arr[:, 0]
        if options["logits"]:
            p = np.where(z >= 0, 1.0 / (1.0 + np.exp(-z)), np.exp(z) / (1.0 + np.exp(z)))
        else:
            p = arr[:, -1]
        dirty |= ~((p >= 0.0) & (p <= 1.0))
        plogp = np.zeros_like(p)
        np.multiply(p, np.log(p, out=plogp, where=p > 0.0), out=plogp)
        q = 1.0 - p
        qlogq = np.zeros_like(q)
        np.multiply(q, np.log(q, out=qlogq, where=q > 0.0), out=qlogq)
        entropy = -(plogp + qlogq)
        np.maximum(entropy, 0.0, out=entropy)
    positive = (p >= thr).tolist()
    if labels is None:
        choice: list[Any] = [0, 1]
    else:
        choice = [label_of(labels[0]), label_of(labels[1])]
    scores = p.tolist()
    margins = np.abs(2.0 * p - 1.0).tolist()
    entropies = entropy.tolist()
    log2 = math.log(2.0)
    rows: list[dict[str, Any]] = []
    dirty_rows = dirty.tolist()
    for i in range(arr.shape[0]):
        if dirty_rows[i]:
            row = arr[i] if arr.shape[1] == 2 else arr[i, 0]
            rows.append(score_fields(row, **options))
            continue
        rows.append(
            problems.into(
                {
                    "prediction.label": choice[positive[i]],
                    "prediction.score": scores[i],
                    "score.margin": margins[i],
                    "score.entropy": entropies[i],
                    "score.entropy_norm": entropies[i] / log2,
                    "prediction.nonfinite": False,
                    "score.nonfinite_count": 0,
                }
            )
        )
    return rows


def _regression(arr: np.ndarray[Any, Any], options: dict[str, Any]) -> list[dict[str, Any]]:
    values = arr[:, 0]
    finite = np.isfinite(values).tolist()
    plain = values.tolist()
    rows: list[dict[str, Any]] = []
    for i, value in enumerate(plain):
        if finite[i]:
            rows.append(
                {
                    "prediction.score": value,
                    "prediction.nonfinite": False,
                    "score.nonfinite_count": 0,
                }
            )
        else:
            rows.append(score_fields(value, **options))
    return rows
