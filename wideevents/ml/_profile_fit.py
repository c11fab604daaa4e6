"""Fitting a profile: reading training data as ML code holds it, then summarising it.

Accepted training data (``Profile.fit``'s ``X``): a 2-D array or list of rows (columns
follow ``names``), a scipy sparse matrix (read one column at a time, never densified
whole; implicit entries are 0), a pandas or polars DataFrame (or any object with
``.columns``), a mapping of name -> column, or a list of dicts (one per row; a key missing
from a row is a missing value). Missing values of every kind (:func:`~._values.is_missing`)
count in ``null_rate``; pandas' nullable dtypes are read through their numpy dtype.

Everything here runs at start-up and raises :class:`~wideevents.ConfigurationError` with a
message that says how to fix the problem.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from .._errors import ConfigurationError
from ._arrays import is_sparse
from ._problems import Problems
from ._profile_check import NARROW_DTYPES
from ._scores import resolve_kind
from ._scores_batch import score_fields_batch
from ._values import category_json, category_key, category_sort_key, is_missing

__all__ = ["fit_categorical", "fit_numeric", "fit_score", "read_columns"]

_QUANTILES = np.linspace(0.1, 0.9, 9)

Column = Callable[[], Any]


def read_columns(X: Any, names: Sequence[str] | None) -> list[tuple[str, Column]]:
    """(name, column reader) pairs; each reader returns that column alone when called."""
    if is_sparse(X):
        columns = _sparse_columns(X, names)
    elif isinstance(X, Mapping) or (hasattr(X, "columns") and hasattr(X, "__getitem__")):
        columns = _named_columns(X, names)
    elif _is_list_of_dicts(X):
        columns = _dict_rows(X, names)
    else:
        columns = _array_columns(X, names)
    if not columns:
        raise ConfigurationError("Profile.fit: X has no features")
    if any(not isinstance(n, str) or not n for n, _ in columns):
        raise ConfigurationError("Profile.fit: feature names must be non-empty strings")
    if len({n for n, _ in columns}) != len(columns):
        raise ConfigurationError("Profile.fit: feature names must be unique")
    return columns


def _is_list_of_dicts(X: Any) -> bool:
    return isinstance(X, (list, tuple)) and bool(X) and isinstance(X[0], Mapping)


def _need_names(names: Sequence[str] | None, n_columns: int) -> list[str]:
    if names is None:
        raise ConfigurationError("Profile.fit: pass names=[...] for the columns of X")
    use = list(names)
    if len(use) != n_columns:
        raise ConfigurationError(
            f"Profile.fit: {len(use)} names for {n_columns} columns; "
            "pass one name per column of X"
        )
    return use


def _sparse_columns(X: Any, names: Sequence[str] | None) -> list[tuple[str, Column]]:
    if len(X.shape) != 2 or X.shape[0] == 0:
        raise ConfigurationError(
            f"Profile.fit: X must be 2-D (samples x features) with rows, got shape {X.shape}"
        )
    n_rows, n_cols = X.shape
    use = _need_names(names, n_cols)
    csc = X.tocsc(copy=True)
    csc.sum_duplicates()

    def column(j: int) -> Column:
        def read() -> Any:
            dense = np.zeros(n_rows, dtype=csc.dtype)
            start, end = csc.indptr[j], csc.indptr[j + 1]
            dense[csc.indices[start:end]] = csc.data[start:end]
            return dense

        return read

    return [(name, column(j)) for j, name in enumerate(use)]


def _named_columns(X: Any, names: Sequence[str] | None) -> list[tuple[str, Column]]:
    keys = list(X.keys() if isinstance(X, Mapping) else X.columns)
    use = list(names) if names is not None else [str(key) for key in keys]
    by_name = {str(key): key for key in keys}
    missing = [n for n in use if n not in by_name]
    if missing:
        raise ConfigurationError(f"Profile.fit: no column for names {missing[:10]}")
    def column(key: Any) -> Column:
        return lambda: X[key]

    return [(n, column(by_name[n])) for n in use]


def _dict_rows(X: Sequence[Any], names: Sequence[str] | None) -> list[tuple[str, Column]]:
    if not all(isinstance(row, Mapping) for row in X):
        raise ConfigurationError(
            "Profile.fit: X mixes dicts with other rows; pass one dict per row"
        )
    keys: dict[str, Any] = {}
    for row in X:
        for key in row:
            keys.setdefault(str(key), key)
    use = list(names) if names is not None else list(keys)
    missing = [n for n in use if n not in keys]
    if missing:
        raise ConfigurationError(f"Profile.fit: no row has the keys {missing[:10]}")
    def column(key: Any) -> Column:
        return lambda: [row.get(key) for row in X]

    return [(n, column(keys[n])) for n in use]


def _array_columns(X: Any, names: Sequence[str] | None) -> list[tuple[str, Column]]:
    try:
        arr = np.asarray(X)
    except ValueError as exc:
        raise ConfigurationError(
            f"Profile.fit: X is not a 2-D array ({exc}); pass rows of equal length, a "
            "DataFrame, a scipy sparse matrix, a dict of columns or a list of dicts"
        ) from exc
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise ConfigurationError(
            f"Profile.fit: X must be 2-D (samples x features) with rows, got "
            f"{type(X).__name__} of shape {arr.shape}; pass a 2-D array, a DataFrame, a "
            "scipy sparse matrix, a dict of columns or a list of dicts"
        )
    use = _need_names(names, arr.shape[1])
    def column(j: int) -> Column:
        return lambda: arr[:, j]

    return [(n, column(j)) for j, n in enumerate(use)]


def _narrow(dtype: Any) -> str | None:
    """"float32" / "float16" for a narrow float column (pandas' Float32 too), else None."""
    dtype = getattr(dtype, "numpy_dtype", dtype)
    try:
        name = np.dtype(dtype).name
    except TypeError:
        return None
    return name if name in NARROW_DTYPES else None


def _as_floats(name: str, col: Any) -> tuple[np.ndarray[Any, np.dtype[np.float64]], str | None]:
    """A column as float64 (missing values NaN) and its narrow float dtype, if any."""
    try:
        if hasattr(col, "to_numpy") and hasattr(col, "dtype"):  # pandas, polars
            narrow = _narrow(col.dtype)
            try:
                return np.asarray(col.to_numpy(dtype="float64", na_value=np.nan)), narrow
            except TypeError:  # to_numpy without na_value (polars): nulls arrive as NaN
                col = col.to_numpy()
        arr = np.asarray(col)
        if arr.ndim != 1:
            raise ConfigurationError(f"Profile.fit: feature {name!r} is not a 1-D column")
        if arr.dtype.kind in "fiub":
            return arr.astype(np.float64), _narrow(arr.dtype)
        values = [math.nan if is_missing(v) else v for v in arr.tolist()]
        return np.asarray(values, dtype=np.float64), None
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(
            f"Profile.fit: feature {name!r} is not numeric ({exc}); "
            f"list it in categorical=[...] if its values are categories"
        ) from exc


def _summary(values: np.ndarray[Any, np.dtype[np.float64]]) -> dict[str, Any]:
    """min, max, decile edges and bin fractions of the finite values (empty when none)."""
    finite = values[np.isfinite(values)]
    if not finite.size:
        return {"min": None, "max": None, "edges": [], "bin_fractions": []}
    edges = np.quantile(finite, _QUANTILES)
    bins = np.searchsorted(edges, finite, side="right")
    fractions = np.bincount(bins, minlength=10) / finite.size
    return {
        "min": float(finite.min()),
        "max": float(finite.max()),
        "edges": edges.tolist(),
        "bin_fractions": fractions.tolist(),
    }


def fit_numeric(name: str, read: Column) -> dict[str, Any]:
    values, narrow = _as_floats(name, read())
    count = int(values.shape[0])
    if count == 0:
        raise ConfigurationError(f"Profile.fit: feature {name!r} has no values")
    feature: dict[str, Any] = {
        "name": name,
        "kind": "numeric",
        "count": count,
        "null_rate": float(np.count_nonzero(np.isnan(values))) / count,
        **_summary(values),
    }
    if narrow is not None:
        feature["dtype"] = narrow
    return feature


def _as_list(col: Any) -> list[Any]:
    if hasattr(col, "tolist"):
        values = col.tolist()
        return values if isinstance(values, list) else [values]
    return list(col)


def fit_categorical(name: str, read: Column, max_categories: int) -> dict[str, Any]:
    keys = [category_key(v) for v in _as_list(read())]
    count = len(keys)
    if count == 0:
        raise ConfigurationError(f"Profile.fit: feature {name!r} has no values")
    counts = Counter(key for key in keys if key is not None)
    if len(counts) > max_categories:
        raise ConfigurationError(
            f"Profile.fit: feature {name!r} has {len(counts)} categories "
            f"(max_categories={max_categories}); raise max_categories or treat it as numeric"
        )
    present = sum(counts.values())
    ordered = sorted(counts, key=category_sort_key)
    return {
        "name": name,
        "kind": "categorical",
        "count": count,
        "null_rate": (count - present) / count,
        "categories": [category_json(key) for key in ordered],
        "frequencies": [counts[key] / present for key in ordered],
    }


def fit_score(scores: Any, kind: str, positive: Any, logits: bool) -> dict[str, Any]:
    """The reference distribution of the model's own score: ``score.bin`` fractions for a
    classifier, deciles of ``prediction.score`` for regression. Scored exactly as events
    are (:func:`~wideevents.ml.score_fields_batch` with the same options)."""
    shape = getattr(scores, "shape", None) or np.shape(np.asarray(scores, dtype=object))
    if len(shape) not in (1, 2) or not shape[0]:
        raise ConfigurationError(
            f"Profile.fit: scores= must hold one row (or one value) per sample, e.g. "
            f"model.predict_proba(X); got shape {tuple(shape)}"
        )
    problems = Problems()
    resolved = resolve_kind(kind, 1 if len(shape) == 1 else shape[1], None, positive, -1,
                            problems)
    if problems.count:
        raise ConfigurationError(
            f"Profile.fit: score_kind={kind!r}; use one of 'auto', 'binary', 'multiclass', "
            "'multilabel', 'regression'"
        )
    rows = score_fields_batch(scores, k=1, kind=resolved, positive=positive, logits=logits)
    count = len(rows)
    if resolved == "regression":
        values = np.array([_none_nan(row.get("prediction.score")) for row in rows])
        if not np.isfinite(values).any():
            raise ConfigurationError(
                "Profile.fit: no value of scores= is a finite number; pass the model's "
                "predictions (see the wideevents log)"
            )
        return {"kind": resolved, "count": count,
                "null_rate": float(np.count_nonzero(~np.isfinite(values))) / count,
                **_summary(values)}
    binned = [row["score.bin"] for row in rows if row.get("score.bin") is not None]
    if not binned:
        raise ConfigurationError(
            "Profile.fit: scores= are not probabilities (no row has a score.bin, see the "
            "wideevents log); pass logits=True for logits, or score_kind='multilabel' for "
            "independent probabilities"
        )
    return {
        "kind": resolved,
        "count": count,
        "null_rate": (count - len(binned)) / count,
        "bin_fractions": (np.bincount(binned, minlength=10) / len(binned)).tolist(),
    }


def _none_nan(value: Any) -> float:
    return math.nan if value is None else float(value)
