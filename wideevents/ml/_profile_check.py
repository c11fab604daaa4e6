"""Validation of a profile document (``Profile.from_dict``): versions 1 and 2.

Each function returns why a part of the document is invalid, or None; ``Profile.from_dict``
turns the first reason into a :class:`~wideevents.ConfigurationError` saying how to fix it.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

from ._values import category_key

__all__ = ["NARROW_DTYPES", "SCORE_KINDS", "feature_problem", "score_problem"]

#: Float dtypes whose values a profile compares in their own precision.
NARROW_DTYPES = ("float16", "float32")
SCORE_KINDS = ("binary", "multiclass", "multilabel", "regression")


def _number(value: Any) -> bool:
    return (
        isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    )


def _fractions(values: Any, n: int) -> bool:
    return (
        isinstance(values, list)
        and len(values) == n
        and all(_number(x) and 0 <= x <= 1 for x in values)
    )


def _range_problem(f: dict[str, Any], what: str) -> str | None:
    """min/max, nine ascending edges and ten bin fractions (or all absent)."""
    lo, hi, edges, fractions = f.get("min"), f.get("max"), f.get("edges"), f.get("bin_fractions")
    if (lo is None) != (hi is None) or not all(v is None or _number(v) for v in (lo, hi)):
        return f'{what}"min" and "max" must both be finite numbers (or both null)'
    if lo is not None and lo > hi:
        return f'{what}"min" is greater than "max"'
    if not isinstance(edges, list) or len(edges) not in (0, 9):
        return f'{what}"edges" must be a list of 9 numbers (or empty)'
    if edges and not (
        all(_number(e) for e in edges) and all(a <= b for a, b in itertools.pairwise(edges))
    ):
        return f'{what}"edges" must be 9 finite numbers in ascending order'
    if not _fractions(fractions, 10 if edges else 0):
        return f'{what}"bin_fractions" must hold 10 numbers in [0, 1] when there are edges'
    return None


def _categories_problem(f: dict[str, Any], version: int) -> str | None:
    cats = f.get("categories")
    if version == 1:
        if not isinstance(cats, list) or not all(isinstance(c, str) for c in cats):
            return '"categories" must be a list of strings'
        return None
    if not isinstance(cats, list) or not all(
        isinstance(c, (str, bool)) or _number(c) for c in cats
    ):
        return '"categories" must be a list of strings, numbers and booleans'
    if len({category_key(c) for c in cats}) != len(cats):
        return '"categories" holds the same value twice (1 and 1.0 are one category)'
    if not _fractions(f.get("frequencies"), len(cats)):
        return '"frequencies" must hold one number in [0, 1] per category'
    return None


def feature_problem(f: Any, version: int) -> str | None:
    """Why a feature summary is invalid, or None."""
    if not isinstance(f, dict) or not isinstance(f.get("name"), str) or not f["name"]:
        return 'needs a non-empty string "name"'
    rate: Any = f.get("null_rate")
    if not _number(rate) or not 0.0 <= rate <= 1.0:
        return '"null_rate" must be a number in [0, 1]'
    if isinstance(f.get("count"), bool) or not isinstance(f.get("count"), int) or f["count"] < 0:
        return '"count" must be a non-negative integer'
    if f.get("kind") == "categorical":
        return _categories_problem(f, version)
    if f.get("kind") != "numeric":
        return '"kind" must be "numeric" or "categorical"'
    if "dtype" in f and (version == 1 or f["dtype"] not in NARROW_DTYPES):
        return f'"dtype" must be one of {list(NARROW_DTYPES)} (or absent)'
    return _range_problem(f, "")


def score_problem(score: Any) -> str | None:
    """Why the model-score reference is invalid, or None."""
    if not isinstance(score, dict) or score.get("kind") not in SCORE_KINDS:
        return f'"score" must be an object whose "kind" is one of {list(SCORE_KINDS)}'
    count = score.get("count")
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        return '"score": "count" must be a non-negative integer'
    rate: Any = score.get("null_rate")
    if not _number(rate) or not 0.0 <= rate <= 1.0:
        return '"score": "null_rate" must be a number in [0, 1]'
    if score["kind"] == "regression":
        return _range_problem(score, '"score": ')
    if not _fractions(score.get("bin_fractions"), 10):
        return '"score": "bin_fractions" must hold 10 numbers in [0, 1]'
    return None
