"""Numbers as the ML helpers read them: arrays, sparse rows, labels, ranks, the score bin.

Shared by the score, feature and ranking helpers; numpy is imported here (and so on first
use of a helper, not by ``import wideevents.ml``). scipy is never imported: a scipy sparse
matrix is recognised only when the application already imported ``scipy.sparse``.
"""

from __future__ import annotations

import math
import sys
from bisect import bisect_right
from typing import Any

import numpy as np

from ._problems import Problems, as_float, as_index

__all__ = [
    "BIN_EDGES",
    "MAX_K",
    "as_float_array",
    "binary_entropy",
    "is_sparse",
    "label_of",
    "resolve_k",
    "resolve_threshold",
    "score_bin",
    "sigmoid",
    "sparse_row",
    "top_keys",
    "top_order",
]

MAX_K = 100
_TOP = [f"score.top{i}" for i in range(1, MAX_K + 1)]
_TOP_LABEL = [f"score.top{i}.label" for i in range(1, MAX_K + 1)]
# Below this size a full stable sort is cheaper than argpartition plus the tie check.
_SORT_ALL_BELOW = 64
#: ``score.bin`` i holds BIN_EDGES[i-1] <= p < BIN_EDGES[i] (the doubles nearest to 0.1..0.9).
BIN_EDGES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def score_bin(p: float) -> int | None:
    """The fixed decile 0-9 of a probability (1.0 is in bin 9); None outside [0, 1]."""
    if not 0.0 <= p <= 1.0:
        return None
    return bisect_right(BIN_EDGES, p)


def top_keys(n: int) -> tuple[list[str], list[str]]:
    """The ``score.top{i}`` and ``score.top{i}.label`` keys for ranks 1..n (n <= MAX_K)."""
    return _TOP[:n], _TOP_LABEL[:n]


def is_sparse(values: Any) -> bool:
    """True for a scipy sparse matrix or array (only if the application imported scipy)."""
    sparse = sys.modules.get("scipy.sparse")
    if sparse is None:
        return False
    try:
        return bool(sparse.issparse(values))
    except Exception:  # noqa: BLE001 - a broken scipy install: not sparse
        return False


def sparse_row(values: Any) -> np.ndarray[Any, np.dtype[np.float64]] | None:
    """A sparse matrix of one row (or one column) as a dense 1-D float array; None when it
    has several rows and columns (it is never densified then). Implicit entries are 0."""
    shape = values.shape
    if len(shape) != 2 or (shape[0] != 1 and shape[1] != 1):
        return None
    return np.asarray(values.toarray(), dtype=np.float64).reshape(-1)


def as_float_array(values: Any) -> np.ndarray[Any, np.dtype[np.float64]] | None:
    """``values`` as a float64 array (a view when possible), or None if it is not numeric.

    Accepts numbers, sequences, numpy arrays and objects with ``__array__`` or ``.numpy()``
    (torch, jax) without importing their library. Strings are not numbers here. A sparse
    matrix is not read here (see :func:`sparse_row`).
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
        if is_sparse(values):
            return None
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


def resolve_threshold(threshold: Any, problems: Problems) -> float:
    """The decision threshold as a float (0.5 when absent or unusable)."""
    if threshold is None:
        return 0.5
    value = as_float(threshold)
    if not math.isfinite(value) or isinstance(threshold, (bool, str)):
        problems.add("scores: threshold is not a number", threshold)
        return 0.5
    return value


def top_order(rank: np.ndarray[Any, Any], kt: int) -> tuple[list[int], list[float]]:
    """Indices and values of the kt largest values, descending, ties by lower index (the
    order ``numpy.argmax`` picks the first of).

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


def sigmoid(z: float) -> float:
    """The logistic function, without overflow for large negative z; NaN stays NaN."""
    if z >= 0.0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def binary_entropy(p: float) -> float:
    """Entropy in nats of (1 - p, p), with 0 log 0 = 0."""
    h = 0.0
    if p > 0.0:
        h -= p * math.log(p)
    if p < 1.0:
        h -= (1.0 - p) * math.log1p(-p)
    return h
