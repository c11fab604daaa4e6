"""Score fields: what a model decided and how sure it was.

:func:`score_fields` turns one model output into ``prediction.*`` and ``score.*`` fields.
The conventions, shared with :func:`~wideevents.ml.score_fields_batch` (docs/schema.md, "ML:
the decision"):

- ``kind="auto"``: three or more values are ``multiclass``; two values are ``binary`` when a
  ``threshold`` or a ``positive`` class is given, else ``multiclass``; one value is
  ``binary`` when a ``threshold``, a ``positive`` class or two ``labels`` are given, else
  ``regression``. ``kind="multilabel"`` reads independent per-class probabilities. A row
  shaped ``(1, n)`` or ``(n, 1)``, a pandas Series and a one-row scipy sparse matrix count
  as one row.
- The label logged is the one served: ``numpy.argmax`` of the row (ties: the lowest class
  index; a NaN wins, then +inf), or for binary ``p >= threshold`` (default 0.5).
- ``logits=True`` applies a softmax (multiclass), a sigmoid (binary, multilabel) first.
  A ``-inf`` logit is a masked class: out of the ranking, not counted as non-finite.
- A row holding NaN or +-inf (other than masked logits) is not a distribution: it records
  the served label, ``prediction.score`` null and the non-finite counts, and nothing else.
- Without ``logits``, a row that cannot be a probability vector (a value outside [0, 1], or
  a sum not within 0.01 of 1) is a problem, and its ``prediction.score`` is the raw value:
  no ``score.bin``, entropy or ``prediction.p_positive`` are recorded for it. With
  ``logits=True``, values that look like probabilities (in [0, 1], summing to 1) are a
  problem too (they are still softmaxed).
- ``prediction.p_positive`` (the positive class's probability) is recorded whenever the
  positive class is known: binary always (the second column or ``labels[1]`` unless
  ``positive=`` says otherwise), multiclass and multilabel when ``positive=`` is given.
  ``score.bin`` is the fixed decile of p (binary) or of the top probability.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._arrays import (
    as_float_array,
    is_sparse,
    resolve_k,
    resolve_threshold,
    sparse_row,
)
from ._binary import binary
from ._classes import multiclass, multilabel
from ._problems import Problems, as_index
from ._values import category_key

__all__ = ["KINDS", "resolve_kind", "resolve_positive", "score_fields", "score_fields_kind"]

KINDS = ("auto", "binary", "multiclass", "multilabel", "regression")


def score_fields(
    values: Any,
    *,
    labels: Sequence[Any] | None = None,
    k: int = 5,
    logits: bool = False,
    kind: str = "auto",
    threshold: float | None = None,
    positive: Any = None,
) -> dict[str, Any]:
    """``prediction.*`` and ``score.*`` fields for one model output (see the module doc).

    Never raises: bad input is recorded in ``meta.ml_error_count`` / ``meta.ml_error_reasons``.
    """
    return score_fields_kind(
        values, labels=labels, k=k, logits=logits, kind=kind, threshold=threshold,
        positive=positive,
    )[0]


def score_fields_kind(
    values: Any,
    *,
    labels: Sequence[Any] | None = None,
    k: int = 5,
    logits: bool = False,
    kind: str = "auto",
    threshold: float | None = None,
    positive: Any = None,
) -> tuple[dict[str, Any], str | None]:
    """:func:`score_fields` plus the kind it resolved to (None when nothing was scored)."""
    problems = Problems()
    fields: dict[str, Any] = {}
    resolved: str | None = None
    try:
        resolved = _score_into(
            fields, problems, values, labels, k, logits, kind, threshold, positive
        )
    except Exception as exc:  # noqa: BLE001 - containment: a helper never raises
        problems.add("scores: internal error", exc)
    return problems.into(fields), resolved


def labels_len(labels: Any, problems: Problems) -> int:
    """``len(labels)``, or -1 (a problem) when it is not a sequence."""
    if isinstance(labels, (str, bytes)):
        problems.add("scores: labels is not a sequence", type(labels).__name__)
        return -1
    try:
        return len(labels)
    except Exception:  # noqa: BLE001 - a user's __len__ may raise anything
        problems.add("scores: labels is not a sequence", type(labels).__name__)
        return -1


def resolve_kind(kind: Any, n: int, threshold: Any, positive: Any, n_labels: int,
                 problems: Problems) -> str:
    """The kind a row of ``n`` values is scored as (the module doc's ``auto`` rule)."""
    if kind not in KINDS:
        problems.add("scores: unknown kind", kind)
        kind = "auto"
    if kind != "auto":
        return str(kind)
    if n >= 3:
        return "multiclass"
    if n == 2:
        return "binary" if threshold is not None or positive is not None else "multiclass"
    if threshold is not None or positive is not None or n_labels == 2:
        return "binary"
    return "regression"


def resolve_positive(positive: Any, labels: Any, n_classes: int, problems: Problems) -> int | None:
    """The class index of ``positive`` (a label, compared by value; or, without labels, a
    class index), or None (a problem when it names no class)."""
    if positive is None:
        return None
    if labels is not None:
        wanted = category_key(positive)
        for i in range(n_classes):
            if category_key(labels[i]) == wanted:
                return i
        problems.add("scores: positive is not one of the labels", positive)
        return None
    index = as_index(positive)
    if index is None or not 0 <= index < n_classes:
        problems.add("scores: positive is not a class index (pass labels=)", positive)
        return None
    return index


def read_row(values: Any, problems: Problems) -> np.ndarray[Any, np.dtype[np.float64]] | None:
    """One row of scores as a 1-D float array, or None (a problem)."""
    if is_sparse(values):
        arr = sparse_row(values)
        if arr is None:
            problems.add("scores: expected one row of scores", f"shape {values.shape}")
        return arr
    arr = as_float_array(values)
    if arr is None:
        problems.add("scores: values are not numeric", type(values).__name__)
        return None
    if arr.ndim != 1:
        if sum(1 for d in arr.shape if d > 1) > 1:
            problems.add("scores: expected one row of scores", f"shape {arr.shape}")
            return None
        arr = arr.reshape(-1)
    if arr.size == 0:
        problems.add("scores: no values")
        return None
    return arr


def _score_into(
    fields: dict[str, Any],
    problems: Problems,
    values: Any,
    labels: Any,
    k: Any,
    logits: Any,
    kind: Any,
    threshold: Any,
    positive: Any,
) -> str | None:
    arr = read_row(values, problems)
    if arr is None:
        return None
    n = arr.size
    n_labels = -1 if labels is None else labels_len(labels, problems)
    if n_labels < 0:
        labels = None
    logits = bool(logits)
    resolved = resolve_kind(kind, n, threshold, positive, n_labels, problems)
    if resolved == "regression":
        return resolved if _regression(fields, problems, arr, threshold, positive) else None
    if resolved == "binary":
        if n > 2:
            problems.add("scores: binary expects one or two values", f"{n} values")
            return None
        if n_labels >= 0 and n_labels != 2:
            problems.add("scores: binary needs two labels", f"{n_labels} labels")
            labels = None
        pos = resolve_positive(positive, labels, 2, problems)
        binary(fields, problems, arr, labels, logits, resolve_threshold(threshold, problems),
               1 if pos is None else pos)
        return resolved
    if n_labels >= 0 and n_labels != n:
        problems.add("scores: labels length mismatch", f"{n_labels} labels, {n} scores")
        labels = None
    pos = resolve_positive(positive, labels, n, problems)
    top_k = resolve_k(k, problems, "scores")
    if resolved == "multilabel":
        multilabel(fields, problems, arr, labels, top_k, logits, pos,
                   resolve_threshold(threshold, problems))
    else:
        if threshold is not None:
            problems.add("scores: threshold applies to binary and multilabel scores", threshold)
        multiclass(fields, problems, arr, labels, top_k, logits, pos)
    return resolved


def _regression(
    fields: dict[str, Any],
    problems: Problems,
    arr: np.ndarray[Any, np.dtype[np.float64]],
    threshold: Any,
    positive: Any,
) -> bool:
    if arr.size != 1:
        problems.add("scores: regression expects one value", f"{arr.size} values")
        return False
    if threshold is not None or positive is not None:
        problems.add("scores: threshold and positive apply to classifiers")
    value = float(arr[0])
    finite = math.isfinite(value)
    fields["prediction.score"] = value if finite else None
    fields["prediction.nonfinite"] = not finite
    fields["score.nonfinite_count"] = 0 if finite else 1
    if not finite:
        problems.add("scores: non-finite values")
    return True
