"""One binary decision: the positive-class probability p and ``p >= threshold``.

One value is p itself (or its logit); two values are per-class scores (scikit-learn's
``predict_proba`` row, or two logits) and ``positive`` picks the positive column (default
the second). The rules are those of :mod:`wideevents.ml._scores` (docs/schema.md).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._arrays import binary_entropy, label_of, score_bin, sigmoid
from ._classes import (
    LOGIT_SUM_TOLERANCE,
    NOT_PROBABILITIES,
    PROBABLY_PROBABILITIES,
    SUM_TOLERANCE,
    UNNORMALISED,
)
from ._problems import Problems

__all__ = ["OUTSIDE", "binary", "binary_p"]

OUTSIDE = "scores: binary probability outside [0, 1]"
_LOG2 = math.log(2.0)


def binary_p(arr: np.ndarray[Any, np.dtype[np.float64]], positive: int, logits: bool) -> float:
    """p from one or two values, by numpy's arithmetic (NaN stays NaN, a +inf logit is 1)."""
    if arr.size == 2:
        if logits:
            return sigmoid(float(arr[positive]) - float(arr[1 - positive]))
        return float(arr[positive])
    return sigmoid(float(arr[0])) if logits else float(arr[0])


def binary(
    fields: dict[str, Any],
    problems: Problems,
    arr: np.ndarray[Any, np.dtype[np.float64]],
    labels: Any,
    logits: bool,
    threshold: float,
    positive: int,
) -> None:
    """``prediction.*`` and ``score.*`` of a binary decision (one or two values)."""
    p = binary_p(arr, positive, logits)
    chosen = positive if p >= threshold else 1 - positive  # NaN >= t is False, as served
    fields["prediction.label"] = chosen if labels is None else label_of(labels[chosen])
    nonfinite = arr.size - int(np.count_nonzero(np.isfinite(arr)))
    fields["prediction.nonfinite"] = nonfinite > 0
    fields["score.nonfinite_count"] = nonfinite
    if nonfinite:
        problems.add("scores: non-finite values", f"{nonfinite} of {arr.size}")
        fields["prediction.score"] = None
        return
    fields["prediction.score"] = p
    if arr.size == 2:
        a, b = float(arr[0]), float(arr[1])
        in_range = 0.0 <= a <= 1.0 and 0.0 <= b <= 1.0
        if logits:
            if in_range and abs(a + b - 1.0) <= LOGIT_SUM_TOLERANCE:
                problems.add(PROBABLY_PROBABILITIES)
        elif not in_range:
            problems.add(NOT_PROBABILITIES)
            return
        elif abs(a + b - 1.0) > SUM_TOLERANCE:
            problems.add(UNNORMALISED)
            return
    elif not 0.0 <= p <= 1.0:
        problems.add(OUTSIDE, p)
        return
    fields["prediction.p_positive"] = p
    fields["score.margin"] = abs(2.0 * p - 1.0)
    entropy = binary_entropy(p)
    fields["score.entropy"] = entropy
    fields["score.entropy_norm"] = entropy / _LOG2
    fields["score.bin"] = score_bin(p)
