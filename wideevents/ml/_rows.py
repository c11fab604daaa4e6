"""One model input, read the way ML code holds it (``feature_fields``' ``values``).

A *row* is one of:

- a mapping of name -> value (a dict; a pandas Series is read as its index -> values);
- a one-row pandas or polars DataFrame (``df.iloc[[i]]``, what ``model.predict`` takes),
  named by its columns;
- a 1-D sequence, numpy array or tensor (``__array__`` / ``.numpy()``), or a 2-D one with
  a single row or column, named by ``names``, else the profile, else position;
- a scipy sparse matrix with a single row or column (that row is densified: implicit
  entries are 0; a matrix of several rows is never densified).

What is not a row is said one way per kind (docs/schema.md, "ML: inputs"): ``None``, a
scalar, a string or an object of another type is :data:`NOT_A_ROW`; anything holding
several rows (a 2-D array, a list of lists, a DataFrame or sparse matrix with more than one
row) is :data:`SEVERAL_ROWS`. A list whose every element is a list or array is read as rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ._arrays import as_float_array, is_sparse, sparse_row
from ._problems import Problems

__all__ = ["NOT_A_ROW", "SEVERAL_ROWS", "check_names", "read_row"]

NOT_A_ROW = "features: not a row of features"
SEVERAL_ROWS = "features: expected one row of features"
BAD_NAMES = "features: names is not a list of strings"

# (kind, data, names the input carries): kind "pairs" (data: [(name, value)]), "array" (a
# 1-D numpy array) or "items" (a list of Python values).
Row = tuple[str, Any, "list[str] | None"]


def check_names(names: Any, problems: Problems) -> list[str] | None:
    """``names`` as a list of strings (each name's ``str()``), or None (a problem)."""
    if names is None:
        return None
    if isinstance(names, (str, bytes)) or not hasattr(names, "__iter__"):
        problems.add(BAD_NAMES, type(names).__name__)
        return None
    try:
        return [n if type(n) is str else str(n) for n in names]
    except Exception:  # noqa: BLE001 - a user's __iter__ / __str__ may raise anything
        problems.add(BAD_NAMES, type(names).__name__)
        return None


def _labels(index: Any) -> list[str] | None:
    try:
        return [n if type(n) is str else str(n) for n in index]
    except Exception:  # noqa: BLE001 - an odd index: positions name the values instead
        return None


def _array_row(arr: np.ndarray[Any, Any], problems: Problems, names: list[str] | None) -> Row | None:
    if arr.ndim == 0:
        problems.add(NOT_A_ROW, f"0-d {arr.dtype} array")
        return None
    if arr.ndim != 1:
        if sum(1 for d in arr.shape if d > 1) > 1 or 0 in arr.shape:
            problems.add(SEVERAL_ROWS, f"shape {arr.shape}")
            return None
        arr = arr.reshape(-1)
    if arr.dtype.kind in "fiu":
        return "array", arr, names
    return "items", arr.tolist(), names


def _frame_values(values: Any, dtypes: str) -> np.ndarray[Any, Any]:
    """A pandas object's values: numeric when every column has a numpy number dtype, else
    objects, so that a nullable column's ``pd.NA`` stays a missing value (not a NaN)."""
    if not callable(getattr(values, "to_numpy", None)):
        return np.asarray(values.values)  # pandas before 0.24
    kinds = getattr(values, dtypes, None)
    kinds = [] if kinds is None else [kinds] if dtypes == "dtype" else list(kinds)
    if kinds and all(isinstance(k, np.dtype) and k.kind in "fiub" for k in kinds):
        return np.asarray(values.to_numpy())
    try:
        return np.asarray(values.to_numpy(dtype=object))
    except TypeError:  # a to_numpy without dtype= (polars): its nulls arrive as None / NaN
        return np.asarray(values.to_numpy())


def read_row(values: Any, problems: Problems) -> Row | None:
    """The row ``values`` holds, or None (one problem counted)."""
    if isinstance(values, Mapping):
        return "pairs", [(k if type(k) is str else str(k), v) for k, v in values.items()], None
    if isinstance(values, np.ndarray):
        return _array_row(values, problems, None)
    if isinstance(values, (list, tuple)):
        if values and all(isinstance(v, (list, tuple, np.ndarray)) for v in values):
            if len(values) != 1:
                problems.add(SEVERAL_ROWS, f"{len(values)} rows")
                return None
            return read_row(values[0], problems)
        return "items", list(values), None
    if values is None or isinstance(values, (str, bytes, bytearray, int, float, complex)):
        problems.add(NOT_A_ROW, type(values).__name__)
        return None
    if is_sparse(values):
        arr = sparse_row(values)
        if arr is None:
            problems.add(SEVERAL_ROWS, f"shape {values.shape}")
            return None
        return "array", arr, None
    columns = getattr(values, "columns", None)
    shape = getattr(values, "shape", None)
    if columns is not None and isinstance(shape, tuple) and len(shape) == 2:
        if shape[0] != 1:  # a DataFrame (pandas, polars): one row, named by its columns
            problems.add(SEVERAL_ROWS, f"shape {shape}")
            return None
        return _array_row(_frame_values(values, "dtypes")[0], problems, _labels(columns))
    index = getattr(values, "index", None)
    if index is not None and not callable(index) and (
        callable(getattr(values, "to_numpy", None)) or hasattr(values, "values")
    ):
        # A pandas Series: its index names the values.
        return _array_row(_frame_values(values, "dtype"), problems, _labels(index))
    if isinstance(values, np.generic):
        problems.add(NOT_A_ROW, type(values).__name__)
        return None
    if hasattr(values, "__array__") or hasattr(values, "numpy"):
        arr = as_float_array(values)
        if arr is None:
            problems.add(NOT_A_ROW, type(values).__name__)
            return None
        return _array_row(arr, problems, None)
    problems.add(NOT_A_ROW, type(values).__name__)
    return None
