"""One row of class scores: ``multiclass`` (a distribution) and ``multilabel`` (independent
probabilities). The rules are those of :mod:`wideevents.ml._scores` (docs/schema.md)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._arrays import label_of, score_bin, top_keys, top_order
from ._problems import Problems

__all__ = [
    "NOT_PROBABILITIES",
    "PROBABLY_PROBABILITIES",
    "SUM_TOLERANCE",
    "UNNORMALISED",
    "logistic",
    "multiclass",
    "multilabel",
    "nonfinite_row",
]

#: A probability row may sum to 1 +- this (float32 outputs, rounded probabilities).
SUM_TOLERANCE = 0.01
#: ``logits=True`` rows in [0, 1] summing to 1 +- this look like probabilities.
LOGIT_SUM_TOLERANCE = 1e-4
NOT_PROBABILITIES = "scores: values are not probabilities (pass logits=True?)"
UNNORMALISED = 'scores: probabilities do not sum to 1 (multilabel? pass kind="multilabel")'
PROBABLY_PROBABILITIES = "scores: logits=True but the values are probabilities (they sum to 1)"
_PLAIN_LABELS = frozenset({str, int, float, bool})


def _labels_at(labels: Any, index: list[int]) -> list[Any]:
    if labels is None:
        return index
    out = [labels[i] for i in index]
    if not _PLAIN_LABELS.issuperset(map(type, out)):
        out = [label_of(label) for label in out]
    return out


def nonfinite_row(
    fields: dict[str, Any],
    problems: Problems,
    arr: np.ndarray[Any, np.dtype[np.float64]],
    labels: Any,
    nonfinite: int,
) -> None:
    """A row with NaN/+-inf that is not a distribution: only the decision ``numpy.argmax``
    serves (the first NaN, else the first maximum) and the non-finite counts."""
    fields["prediction.label"] = _labels_at(labels, [int(np.argmax(arr))])[0]
    fields["prediction.score"] = None
    fields["prediction.nonfinite"] = nonfinite > 0
    fields["score.nonfinite_count"] = nonfinite
    if nonfinite:
        problems.add("scores: non-finite values", f"{nonfinite} of {arr.size}")


def _top(
    fields: dict[str, Any],
    labels: Any,
    index: list[int],
    values: list[float],
    k: int,
) -> None:
    shown = min(k, len(index))
    top_labels = _labels_at(labels, index[:shown])
    value_keys, label_keys = top_keys(shown)
    fields["prediction.label"] = top_labels[0]
    fields["prediction.score"] = values[0]
    fields.update(zip(value_keys, values, strict=False))  # values may exceed shown
    fields.update(zip(label_keys, top_labels, strict=True))
    fields["score.topk.labels"] = top_labels
    fields["score.topk.scores"] = values[:shown] if shown < len(values) else values
    if len(values) >= 2:
        fields["score.margin"] = values[0] - values[1]


def logistic(z: np.ndarray[Any, np.dtype[np.float64]]) -> np.ndarray[Any, np.dtype[np.float64]]:
    """The logistic function of each value, without overflow."""
    with np.errstate(over="ignore", invalid="ignore"):
        e = np.exp(-np.abs(z))
        out: np.ndarray[Any, np.dtype[np.float64]] = np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
        return out


def multiclass(
    fields: dict[str, Any],
    problems: Problems,
    arr: np.ndarray[Any, np.dtype[np.float64]],
    labels: Any,
    k: int,
    logits: bool,
    positive: int | None,
) -> None:
    """A distribution over classes: probabilities, or logits (softmax)."""
    n = arr.size
    # min propagates NaN; with a finite minimum, a finite max (logits, which need it for
    # the shift) or a finite sum (probabilities, which need it for the entropy) rules out
    # +inf. An overflowing sum takes the slow path and is then no probability vector.
    low = float(arr.min())
    if logits:
        high = float(arr.max())
        clean = math.isfinite(low) and math.isfinite(high)
    else:
        total = float(arr.sum()) if math.isfinite(low) else math.nan
        clean = math.isfinite(total)
    finite = None
    n_valid = n
    if not clean:
        finite = np.isfinite(arr)
        masked = int(np.count_nonzero(arr == -np.inf)) if logits else 0
        nonfinite = n - int(np.count_nonzero(finite)) - masked
        if nonfinite or masked == n:
            if not nonfinite:
                problems.add("scores: every class is masked (all logits are -inf)")
            nonfinite_row(fields, problems, arr, labels, nonfinite)
            return
        n_valid = n - masked  # -inf logits: masked classes, left out of the ranking
    fields["prediction.nonfinite"] = False
    fields["score.nonfinite_count"] = 0
    kt = min(max(k, 2), n_valid)
    entropy = 0.0
    if logits:
        if clean and low >= 0.0 and high <= 1.0 and n >= 2:
            if abs(float(arr.sum()) - 1.0) <= LOGIT_SUM_TOLERANCE:
                problems.add(PROBABLY_PROBABILITIES)
        shifted = arr - high
        e = np.exp(shifted)
        e_sum = float(e.sum())
        if finite is None:
            dot = float(np.dot(e, shifted))
        else:
            dot = float(np.dot(e[finite], shifted[finite]))
        entropy = max(math.log(e_sum) - dot / e_sum, 0.0)
        # Ranked by the logits themselves: ties are those numpy.argmax sees.
        index, _ = top_order(arr, kt)
        values = (e[index] / e_sum).tolist()
        p_positive = None if positive is None else float(e[positive]) / e_sum
        probability = True
    else:
        index, values = top_order(arr, kt)
        p_positive = None if positive is None else float(arr[positive])
        # The top value is the maximum: no separate pass for it.
        probability = low >= 0.0 and values[0] <= 1.0
        if not probability:
            problems.add(NOT_PROBABILITIES)
        elif abs(total - 1.0) > SUM_TOLERANCE:
            problems.add(UNNORMALISED)
            probability = False
        else:
            positive_part = arr if low > 0.0 else arr[arr > 0.0]
            # H(p / s) = log s - sum(p log p) / s, without materialising p / s.
            dot = float(np.dot(positive_part, np.log(positive_part)))
            entropy = max(math.log(total) - dot / total, 0.0)
    _top(fields, labels, index, values, k)
    if probability:
        fields["score.entropy"] = entropy
        fields["score.entropy_norm"] = entropy / math.log(n_valid) if n_valid >= 2 else None
        fields["score.bin"] = score_bin(values[0])
        if p_positive is not None:
            fields["prediction.p_positive"] = p_positive


def multilabel(
    fields: dict[str, Any],
    problems: Problems,
    arr: np.ndarray[Any, np.dtype[np.float64]],
    labels: Any,
    k: int,
    logits: bool,
    positive: int | None,
    threshold: float,
) -> None:
    """Independent per-class probabilities (sigmoid outputs), or their logits."""
    n = arr.size
    finite = np.isfinite(arr)
    nonfinite = n - int(np.count_nonzero(finite))
    if nonfinite:
        nonfinite_row(fields, problems, arr, labels, nonfinite)
        return
    fields["prediction.nonfinite"] = False
    fields["score.nonfinite_count"] = 0
    if logits:
        probs = logistic(arr)
        probability = True
    else:
        probs = arr
        probability = bool(float(arr.min()) >= 0.0 and float(arr.max()) <= 1.0)
        if not probability:
            problems.add(NOT_PROBABILITIES)
    # Ranked by the values given (monotone in the probabilities): numpy.argmax's ties.
    index, _ = top_order(arr, min(max(k, 2), n))
    values = probs[index].tolist()
    _top(fields, labels, index, values, k)
    chosen = np.flatnonzero(probs >= threshold)
    chosen = chosen[np.argsort(-arr[chosen], kind="stable")]
    fields["prediction.labels"] = _labels_at(labels, chosen.tolist())
    if probability:
        fields["score.bin"] = score_bin(values[0])
        if positive is not None:
            fields["prediction.p_positive"] = float(probs[positive])
