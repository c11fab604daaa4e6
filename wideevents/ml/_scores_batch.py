"""Score fields for a whole batch at once.

:func:`score_fields_batch` returns, for every row, what :func:`~wideevents.ml.score_fields`
returns for that row. Clean rows (finite, probabilities that sum to 1, no ties at the top-k
cut) are computed together with numpy; any other row goes through the one-row function, so
the two never disagree on an edge case (floats may differ in the last bits: numpy sums a
matrix's rows in another order than a vector).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._arrays import (
    BIN_EDGES,
    as_float_array,
    is_sparse,
    label_of,
    resolve_k,
    resolve_threshold,
    top_keys,
)
from ._classes import LOGIT_SUM_TOLERANCE, SUM_TOLERANCE, logistic
from ._problems import Problems
from ._scores import KINDS, resolve_kind, resolve_positive, score_fields

__all__ = ["score_fields_batch"]

_SORT_ALL_BELOW = 64
_EDGES = np.array(BIN_EDGES)


def score_fields_batch(
    values: Any,
    *,
    labels: Sequence[Any] | None = None,
    k: int = 5,
    logits: bool = False,
    kind: str = "auto",
    threshold: float | None = None,
    positive: Any = None,
) -> list[dict[str, Any]]:
    """One dict of ``prediction.*`` / ``score.*`` fields per row of a 2-D array.

    A 1-D array is one value per row (binary or regression). ``kind="auto"`` resolves once
    for the whole batch, as :func:`score_fields` does for a row of that many values. A scipy
    sparse matrix is read row by row. Never raises; an input that is not a batch at all
    gives ``[]`` (logged once).
    """
    options: dict[str, Any] = {
        "labels": labels,
        "k": k,
        "logits": logits,
        "kind": kind,
        "threshold": threshold,
        "positive": positive,
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
    if is_sparse(values):
        matrix = values.tocsr()
        return [score_fields(matrix[i], **options) for i in range(matrix.shape[0])]
    try:
        rows = list(values)
    except Exception:  # noqa: BLE001 - a user's __iter__ may raise anything
        Problems().add("scores: batch is not a sequence of rows", type(values).__name__)
        return []
    return [score_fields(row, **options) for row in rows]


def _batch(values: Any, options: dict[str, Any]) -> list[dict[str, Any]]:
    arr = None if is_sparse(values) else as_float_array(values)
    if arr is None or arr.ndim not in (1, 2):
        return _rows_one_by_one(values, options)
    if arr.shape[0] == 0:
        return []
    if arr.ndim == 1:
        arr = arr[:, None]
    n_cols = arr.shape[1]
    labels = options["labels"]
    if options["kind"] not in KINDS:
        return _rows_one_by_one(arr, options)
    n_labels = -1
    if labels is not None:
        try:
            n_labels = -1 if isinstance(labels, (str, bytes)) else len(labels)
        except Exception:  # noqa: BLE001 - a user's __len__ may raise anything
            pass
        if n_labels < 0:  # not a sequence: each row reports it
            return _rows_one_by_one(arr, options)
    kind = resolve_kind(options["kind"], n_cols, options["threshold"], options["positive"],
                        n_labels, Problems())
    if kind == "multiclass" and n_cols >= 2 and options["threshold"] is None:
        return _multiclass(arr, options)
    if kind == "binary" and n_cols <= 2:
        return _binary(arr, options)
    if kind == "regression" and n_cols == 1 and options["positive"] is None:
        return _regression(arr, options)
    return _rows_one_by_one(arr, options)


def _shared(options: dict[str, Any], expected: int, binary: bool) -> tuple[Any, Problems]:
    """Validate the labels once for the batch; the same problems then go into every row."""
    problems = Problems()
    labels = options["labels"]
    if labels is not None and len(labels) != expected:
        reason = "scores: binary needs two labels" if binary else "scores: labels length mismatch"
        problems.add(reason, f"{len(labels)} labels, {expected} expected")
        labels = None
    return labels, problems


def _multiclass(arr: np.ndarray[Any, Any], options: dict[str, Any]) -> list[dict[str, Any]]:
    n_rows, n_cols = arr.shape
    labels, problems = _shared(options, n_cols, False)
    pos = resolve_positive(options["positive"], labels, n_cols, problems)
    k = resolve_k(options["k"], problems, "scores")
    with np.errstate(all="ignore"):
        dirty = ~np.isfinite(arr).all(axis=1)
        low, total = arr.min(axis=1), arr.sum(axis=1)
        if options["logits"]:
            high = arr.max(axis=1)
            shifted = arr - high[:, None]
            e = np.exp(shifted)
            e_sum = e.sum(axis=1)
            probs = e / e_sum[:, None]
            entropy = np.log(e_sum) - (e * shifted).sum(axis=1) / e_sum
            dirty |= (low >= 0.0) & (high <= 1.0) & (np.abs(total - 1.0) <= LOGIT_SUM_TOLERANCE)
        else:
            probs = arr  # values above 1: checked on the top value below
            dirty |= (low < 0.0) | (np.abs(total - 1.0) > SUM_TOLERANCE)
            plogp = np.zeros_like(arr)
            np.multiply(arr, np.log(arr, out=plogp, where=arr > 0.0), out=plogp)
            entropy = np.log(total) - plogp.sum(axis=1) / total
        np.maximum(entropy, 0.0, out=entropy)
        kt = min(max(k, 2), n_cols)
        # Ranked by the values given (logits or probabilities): numpy.argmax's ties.
        if n_cols < _SORT_ALL_BELOW or kt * 4 >= n_cols:
            order = np.argsort(-arr, axis=1, kind="stable")[:, :kt]
        else:
            part = np.sort(np.argpartition(-arr, kt - 1, axis=1)[:, :kt], axis=1)
            within = np.argsort(-np.take_along_axis(arr, part, axis=1), axis=1, kind="stable")
            order = np.take_along_axis(part, within, axis=1)
            cut = np.take_along_axis(arr, order[:, -1:], axis=1)
            # A tie at the cut means argpartition chose among equals arbitrarily.
            dirty |= (arr >= cut).sum(axis=1) != kt
        top = np.take_along_axis(probs, order, axis=1)
        dirty |= top[:, 0] > 1.0
        entropy_norm = entropy / math.log(n_cols)
        margin = top[:, 0] - top[:, 1]
        bins = np.searchsorted(_EDGES, top[:, 0], side="right")
    shown = min(k, n_cols)
    if labels is None:
        top_labels = order[:, :shown].tolist()
    else:
        table = np.empty(n_cols, dtype=object)
        table[:] = [label_of(label) for label in labels]
        top_labels = table[order[:, :shown]].tolist()
    p_pos = None if pos is None else probs[:, pos].tolist()
    top_list, margins, entropies = top.tolist(), margin.tolist(), entropy.tolist()
    norms, bin_list = entropy_norm.tolist(), bins.tolist()
    value_keys, label_keys = top_keys(shown)
    rows: list[dict[str, Any]] = []
    for i, is_dirty in enumerate(dirty.tolist()):
        if is_dirty:
            rows.append(score_fields(arr[i], **options))
            continue
        values, labels_i = top_list[i], top_labels[i]
        row = {
            "prediction.nonfinite": False,
            "score.nonfinite_count": 0,
            "prediction.label": labels_i[0],
            "prediction.score": values[0],
            "score.topk.labels": labels_i,
            "score.topk.scores": values if kt == shown else values[:shown],
            "score.margin": margins[i],
            "score.entropy": entropies[i],
            "score.entropy_norm": norms[i],
            "score.bin": bin_list[i],
        }
        row.update(zip(value_keys, values, strict=False))  # kt may exceed shown
        row.update(zip(label_keys, labels_i, strict=True))
        if p_pos is not None:
            row["prediction.p_positive"] = p_pos[i]
        rows.append(problems.into(row) if problems.count else row)
    return rows


def _binary(arr: np.ndarray[Any, Any], options: dict[str, Any]) -> list[dict[str, Any]]:
    labels, problems = _shared(options, 2, True)
    pos = resolve_positive(options["positive"], labels, 2, problems)
    pos = 1 if pos is None else pos
    thr = resolve_threshold(options["threshold"], problems)
    with np.errstate(all="ignore"):
        dirty = ~np.isfinite(arr).all(axis=1)
        if arr.shape[1] == 2:
            a, b = arr[:, 0], arr[:, 1]
            in_range = (a >= 0.0) & (a <= 1.0) & (b >= 0.0) & (b <= 1.0)
            total = np.abs(a + b - 1.0)
            if options["logits"]:
                p = logistic(arr[:, pos] - arr[:, 1 - pos])
                dirty |= in_range & (total <= LOGIT_SUM_TOLERANCE)
            else:
                p = arr[:, pos]
                dirty |= ~in_range | (total > SUM_TOLERANCE)
        else:
            p = logistic(arr[:, 0]) if options["logits"] else arr[:, 0]
            dirty |= ~((p >= 0.0) & (p <= 1.0))
        q = 1.0 - p
        plogp = np.zeros_like(p)
        np.multiply(p, np.log(p, out=plogp, where=p > 0.0), out=plogp)
        qlogq = np.zeros_like(q)
        np.multiply(q, np.log1p(-p, out=qlogq, where=q > 0.0), out=qlogq)
        entropy = -(plogp + qlogq)
        np.maximum(entropy, 0.0, out=entropy)
        bins = np.searchsorted(_EDGES, p, side="right")
    positive = (p >= thr).tolist()
    names = [0, 1] if labels is None else [label_of(labels[0]), label_of(labels[1])]
    choice = {True: names[pos], False: names[1 - pos]}
    scores, margins = p.tolist(), np.abs(2.0 * p - 1.0).tolist()
    entropies, bin_list = entropy.tolist(), bins.tolist()
    log2 = math.log(2.0)
    rows: list[dict[str, Any]] = []
    for i, is_dirty in enumerate(dirty.tolist()):
        if is_dirty:
            row = arr[i] if arr.shape[1] == 2 else arr[i, 0]
            rows.append(score_fields(row, **options))
            continue
        rows.append(problems.into({
            "prediction.label": choice[positive[i]],
            "prediction.nonfinite": False,
            "score.nonfinite_count": 0,
            "prediction.score": scores[i],
            "prediction.p_positive": scores[i],
            "score.margin": margins[i],
            "score.entropy": entropies[i],
            "score.entropy_norm": entropies[i] / log2,
            "score.bin": bin_list[i],
        }))
    return rows


def _regression(arr: np.ndarray[Any, Any], options: dict[str, Any]) -> list[dict[str, Any]]:
    values = arr[:, 0]
    finite = np.isfinite(values).tolist()
    rows: list[dict[str, Any]] = []
    for i, value in enumerate(values.tolist()):
        if finite[i]:
            rows.append({
                "prediction.score": value,
                "prediction.nonfinite": False,
                "score.nonfinite_count": 0,
            })
        else:
            rows.append(score_fields(value, **options))
    return rows
