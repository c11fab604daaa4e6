"""Score fields: what a model decided and how sure it was.

:func:`score_fields` turns one model output into ``prediction.*`` and ``score.*`` fields.
The conventions, shared with :func:`~wideevents.ml.score_fields_batch`:

- ``kind="auto"``: ``multiclass`` for two or more values; for one value ``binary`` when a
  ``threshold`` is given or ``labels`` has two entries, else ``regression``. A single row
  shaped ``(1, n)`` (or a column ``(n, 1)``) counts as a 1-D array.
- ``logits=True`` applies a softmax (multiclass) or sigmoid (binary) first; reported scores
  are then probabilities. A ``-inf`` logit is a masked class: it is left out of the ranking
  but not counted as non-finite.
- Non-finite scores are left out of the ranking and the entropy, counted in
  ``score.nonfinite_count`` (``prediction.nonfinite`` is true when that count is not zero)
  and reported as a problem; a prediction that cannot be made is ``None``.
- Ties rank the lower class index first. ``k`` larger than the number of classes reports
  every class. ``score.margin`` is top1 - top2; ``score.entropy`` (natural log) is that of
  the scores normalised to sum to one, ``score.entropy_norm`` divides it by log K, K the
  number of ranked classes.
- Binary: ``prediction.score`` is the positive-class probability p, ``prediction.label`` is
  ``labels[1]`` (else 1) when p >= threshold (default 0.5), else ``labels[0]`` (else 0);
  margin and entropy are those of the two-class distribution (1 - p, p).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._problems import Problems, as_float, as_index

__all__ = [
    "KINDS",
    "MAX_K",
    "as_float_array",
    "label_of",
    "resolve_k",
    "score_fields",
    "score_fields_kind",
    "sigmoid",
    "top_keys",
    "top_order",
]

KINDS = ("auto", "binary", "multiclass", "regression")
MAX_K = 100
_TOP = [f"score.top{i}" for i in range(1, MAX_K + 1)]
_TOP_LABEL = [f"score.top{i}.label" for i in range(1, MAX_K + 1)]
_LOG2 = math.log(2.0)
_PLAIN_LABELS = frozenset({str, int, float, bool})
# Below this size a full stable sort is cheaper than argpartition plus the tie check.
_SORT_ALL_BELOW = 64


def top_keys(n: int) -> tuple[list[str], list[str]]:
    """The ``score.top{i}`` and ``score.top{i}.label`` keys for ranks 1..n (n <= MAX_K)."""
    return _TOP[:n], _TOP_LABEL[:n]


def as_float_array(values: Any) -> np.ndarray[Any, np.dtype[np.float64]] | None:
    """``values`` as a float64 array (a view when possible), or None if it is not numeric.

    Accepts numbers, sequences, numpy arrays and objects with ``__array__`` or ``.numpy()``
    (torch, jax) without importing their library. Strings are not numbers here.
    """
    if type(values) is np.ndarray and values.dtype.kind == "f":
        return values.astype(np.float64, copy=False)
    try:
        return _as_float_array(values)
    except Exception:  # noqa: BLE001 - any failure means "not numeric"
        return None


def _as_float_array(values: Any) -> np.ndarray[Any, np.dtype[np.float64]] | None:
    if isinstance(values, np.ndarray):
        arr = values
    else:
        if not hasattr(values, "__array__") and hasattr(values, "numpy"):
            values = values.numpy()
        arr = np.asarray(values)
    kind = arr.dtype.kind
    if kind in "fiub":
        return arr.astype(np.float64, copy=False)
    if kind == "O" and not any(isinstance(v, (str, bytes)) for v in arr.flat):
        return arr.astype(np.float64)
    return None


def label_of(label: Any) -> Any:
    """A label as a plain JSON scalar: numpy scalars unwrapped, other objects ``str()``."""
    if type(label) in (str, int, float, bool):
        return label
    if isinstance(label, np.generic):
        return label.item()
    if isinstance(label, (str, int, float, bool)):
        return label
    return str(label)


def resolve_k(k: Any, problems: Problems, what: str) -> int:
    """``k`` as an int in 1..MAX_K; a bad value is a problem and falls back to 5 or MAX_K."""
    if type(k) is int and 0 < k <= MAX_K:
        return k
    kk = as_index(k) or 0
    if kk < 1:
        problems.add(f"{what}: k must be a positive integer", k)
        return 5
    if kk > MAX_K:
        problems.add(f"{what}: k capped at {MAX_K}", k)
        return MAX_K
    return kk


def score_fields(
    values: Any,
    *,
    labels: Sequence[Any] | None = None,
    k: int = 5,
    logits: bool = False,
    kind: str = "auto",
    threshold: float | None = None,
) -> dict[str, Any]:
    """``prediction.*`` and ``score.*`` fields for one model output (see the module doc).

    Never raises: bad input is recorded in ``meta.ml_error_count`` / ``meta.ml_error_reasons``.
    """
    return score_fields_kind(
        values, labels=labels, k=k, logits=logits, kind=kind, threshold=threshold
    )[0]


def score_fields_kind(
    values: Any,
    *,
    labels: Sequence[Any] | None = None,
    k: int = 5,
    logits: bool = False,
    kind: str = "auto",
    threshold: float | None = None,
) -> tuple[dict[str, Any], str | None]:
    """:func:`score_fields` plus the kind it resolved to (None when nothing was scored)."""
    problems = Problems()
    fields: dict[str, Any] = {}
    resolved: str | None = None
    try:
        resolved = _score_into(fields, problems, values, labels, k, logits, kind, threshold)
    except Exception as exc:  # noqa: BLE001 - containment: a helper never raises
        problems.add("scores: internal error", exc)
    return problems.into(fields), resolved


def _labels_len(labels: Any, problems: Problems) -> int:
    try:
        return len(labels)
    except Exception:  # noqa: BLE001 - a user's __len__ may raise anything
        problems.add("scores: labels is not a sequence", type(labels).__name__)
        return -1


def _score_into(
    fields: dict[str, Any],
    problems: Problems,
    values: Any,
    labels: Any,
    k: Any,
    logits: bool,
    kind: str,
    threshold: Any,
) -> str | None:
    arr = as_float_array(values)
    if arr is None:
        problems.add("scores: values are not numeric", type(values).__name__)
        return None
    if arr.ndim != 1:
        if sum(1 for d in arr.shape if d > 1) > 1:
            problems.add("scores: expected one row of scores", f"shape {arr.shape}")
            return None
        arr = arr.reshape(-1)
    n = arr.size
    if n == 0:
        problems.add("scores: no values")
        return None
    n_labels = -1 if labels is None else _labels_len(labels, problems)
    if n_labels < 0:
        labels = None
    if kind not in KINDS:
        problems.add("scores: unknown kind", kind)
        kind = "auto"
    if kind == "auto":
        if n >= 2:
            kind = "multiclass"
        elif threshold is not None or n_labels == 2:
            kind = "binary"
        else:
            kind = "regression"
    if kind == "multiclass":
        if n_labels >= 0 and n_labels != n:
            problems.add("scores: labels length mismatch", f"{n_labels} labels, {n} scores")
            labels = None
        _multiclass(fields, problems, arr, labels, resolve_k(k, problems, "scores"), logits)
    elif kind == "binary":
        if n_labels >= 0 and n_labels != 2:
            problems.add("scores: binary needs two labels", f"{n_labels} labels")
            labels = None
        if n > 2:
            problems.add("scores: binary expects one or two values", f"{n} values")
            return None
        _binary(fields, problems, arr, labels, logits, threshold)
    else:
        if n != 1:
            problems.add("scores: regression expects one value", f"{n} values")
            return None
        value = float(arr[0])
        finite = math.isfinite(value)
        fields["prediction.score"] = value if finite else None
        fields["prediction.nonfinite"] = not finite
        fields["score.nonfinite_count"] = 0 if finite else 1
        if not finite:
            problems.add("scores: non-finite values")
    return kind


def _multiclass(
    fields: dict[str, Any],
    problems: Problems,
    arr: np.ndarray[Any, np.dtype[np.float64]],
    labels: Any,
    k: int,
    logits: bool,
) -> None:
    n = arr.size
    # The minimum is NaN or -inf when any value is, and then the sum is not evaluated (so
    # no inf - inf warning); a finite sum then rules out +inf. Overflow takes the slow path.
    low = float(arr.min())
    total = float(arr.sum()) if math.isfinite(low) else math.nan
    clean = math.isfinite(total)
    n_valid = n
    nonfinite = 0
    if not clean:
        finite = np.isfinite(arr)
        n_valid = int(np.count_nonzero(finite))
        clean = n_valid == n
        nonfinite = n - n_valid
        if logits:
            nonfinite -= int(np.count_nonzero(arr == -np.inf))
        if nonfinite:
            problems.add("scores: non-finite values", f"{nonfinite} of {n}")
    fields["prediction.nonfinite"] = nonfinite > 0
    fields["score.nonfinite_count"] = nonfinite
    if n_valid == 0:
        fields["prediction.label"] = None
        fields["prediction.score"] = None
        return
    e_sum = 1.0
    entropy: float | None
    if logits:
        # Rank by exp(z - max) and divide only the reported top values by its sum; the
        # entropy follows from the logits: H = log S - sum(e * (z - max)) / S.
        z = arr if clean else np.where(finite, arr, -np.inf)
        shifted = z - z.max()
        rank = np.exp(shifted)
        e_sum = float(rank.sum())
        if clean:
            dot = float(np.dot(rank, shifted))
        else:
            dot = float(np.dot(rank[finite], shifted[finite]))
            rank[~finite] = -np.inf
        entropy = max(math.log(e_sum) - dot / e_sum, 0.0)
    elif clean:
        rank = arr
        entropy = _entropy(arr, low, total, problems)
    else:
        rank = np.where(finite, arr, -np.inf)
        valid = arr[finite]
        entropy = _entropy(valid, float(valid.min()), float(valid.sum()), problems)
    kt = min(max(k, 2), n_valid)
    top_index, top_values = top_order(rank, kt)
    if logits:
        top_values = [v / e_sum for v in top_values]
    shown = min(k, n_valid)
    if labels is None:
        top_labels: list[Any] = top_index[:shown]
    else:
        top_labels = [labels[i] for i in top_index[:shown]]
        if not _PLAIN_LABELS.issuperset(map(type, top_labels)):
            top_labels = [label_of(label) for label in top_labels]
    fields["prediction.label"] = top_labels[0]
    fields["prediction.score"] = top_values[0]
    fields.update(zip(_TOP[:shown], top_values, strict=False))  # kt may exceed shown
    fields.update(zip(_TOP_LABEL[:shown], top_labels, strict=True))
    fields["score.topk.labels"] = top_labels
    fields["score.topk.scores"] = top_values[:shown] if shown < kt else top_values
    if n_valid >= 2:
        fields["score.margin"] = top_values[0] - top_values[1]
    if entropy is not None:
        fields["score.entropy"] = entropy
        fields["score.entropy_norm"] = entropy / math.log(n_valid) if n_valid >= 2 else None


def top_order(rank: np.ndarray[Any, Any], kt: int) -> tuple[list[int], list[float]]:
    """Indices and values of the kt largest values, descending, ties by lower index.

    ``rank`` must not hold NaN (use -inf for values to rank last).
    """
    n = rank.size
    if n < _SORT_ALL_BELOW or kt * 4 >= n:
        order = np.argsort(-rank, kind="stable")[:kt]
        return order.tolist(), rank[order].tolist()
    chosen = np.argpartition(rank, n - kt)[n - kt :]
    values: list[float] = rank[chosen].tolist()
    kth = min(values)
    if np.count_nonzero(rank >= kth) != kt:
        # Several values tie at the cut: argpartition picks among them arbitrarily.
        above = np.flatnonzero(rank > kth)
        tied = np.flatnonzero(rank == kth)[: kt - above.size]
        chosen = np.concatenate((above, tied))
        values = rank[chosen].tolist()
    # Descending value, then ascending index (negated, as the whole sort is reversed).
    pairs = sorted(zip(values, [-i for i in chosen.tolist()], strict=True), reverse=True)
    return [-i for _, i in pairs], [v for v, _ in pairs]


def _entropy(
    probs: np.ndarray[Any, Any], low: float, total: float, problems: Problems
) -> float | None:
    """Entropy (nats) of ``probs`` (minimum ``low``, sum ``total``) normalised to sum to 1."""
    if low < 0.0:
        problems.add("scores: negative probabilities (pass logits=True?)")
        return None
    if not total > 0.0 or not math.isfinite(total):
        problems.add("scores: probabilities cannot be normalised (zero or huge sum)")
        return None
    positive = probs if low > 0.0 else probs[probs > 0.0]
    # H(p / s) = log s - sum(p log p) / s, without materialising p / s.
    entropy = math.log(total) - float(np.dot(positive, np.log(positive))) / total
    return max(entropy, 0.0)


def sigmoid(z: float) -> float:
    """The logistic function, without overflow for large negative z."""
    if z >= 0.0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def resolve_threshold(threshold: Any, problems: Problems) -> float:
    """The binary decision threshold as a float (0.5 when absent or unusable)."""
    if threshold is None:
        return 0.5
    value = as_float(threshold)
    if not math.isfinite(value):
        problems.add("scores: threshold is not a number", threshold)
        return 0.5
    return value


def _binary(
    fields: dict[str, Any],
    problems: Problems,
    arr: np.ndarray[Any, np.dtype[np.float64]],
    labels: Any,
    logits: bool,
    threshold: Any,
) -> None:
    thr = resolve_threshold(threshold, problems)
    nonfinite = int(arr.size - np.count_nonzero(np.isfinite(arr)))
    fields["prediction.nonfinite"] = nonfinite > 0
    fields["score.nonfinite_count"] = nonfinite
    if nonfinite:
        problems.add("scores: non-finite values", f"{nonfinite} of {arr.size}")
        fields["prediction.label"] = None
        fields["prediction.score"] = None
        return
    if arr.size == 2:
        p = sigmoid(float(arr[1] - arr[0])) if logits else float(arr[1])
    else:
        p = sigmoid(float(arr[0])) if logits else float(arr[0])
    positive = p >= thr
    if labels is None:
        fields["prediction.label"] = 1 if positive else 0
    else:
        fields["prediction.label"] = label_of(labels[1 if positive else 0])
    fields["prediction.score"] = p
    if 0.0 <= p <= 1.0:
        fields["score.margin"] = abs(2.0 * p - 1.0)
        entropy = binary_entropy(p)
        fields["score.entropy"] = entropy
        fields["score.entropy_norm"] = entropy / _LOG2
    else:
        problems.add("scores: binary probability outside [0, 1]", p)


def binary_entropy(p: float) -> float:
    """Entropy in nats of (1 - p, p), with 0 log 0 = 0."""
    h = 0.0
    if p > 0.0:
        h -= p * math.log(p)
    if p < 1.0:
        h -= (1.0 - p) * math.log1p(-p)
    return h
