"""A reference profile of the training data, to check served features against.

``Profile.fit`` summarises each feature of the training data: numeric features by their
min, max, nine decile edges (so a served value gets a bin 0-9) with the training fraction
in each bin, and their null rate; categorical features by their allowed categories (compared
as strings) and null rate. ``save``/``load`` use a small versioned JSON document::

    {"format": "wideevents.profile", "version": 1,
     "features": [{"name": "age", "kind": "numeric", "count": 1000, "null_rate": 0.0,
                   "min": 18.0, "max": 90.0, "edges": [9 floats], "bin_fractions": [10 floats]},
                  {"name": "country", "kind": "categorical", "count": 1000,
                   "null_rate": 0.01, "categories": ["de", "fr"]}]}

Bins follow ``numpy.searchsorted(edges, x, side="right")``: bin i holds edges[i-1] <= x <
edges[i]. Fitting and loading happen at start-up, so they raise
:class:`~wideevents.ConfigurationError` with a message that says how to fix the problem.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from .._errors import ConfigurationError

__all__ = ["FORMAT", "VERSION", "Profile"]

FORMAT = "wideevents.profile"
VERSION = 1
_QUANTILES = np.linspace(0.1, 0.9, 9)


def _is_null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


class Profile:
    """Per-feature reference statistics; immutable once built.

    Build one with :meth:`fit` or :meth:`load`. ``names`` is the feature order the profile
    expects for array input.
    """

    def __init__(self, features: Sequence[Mapping[str, Any]]) -> None:
        """Build from validated feature summaries (use :meth:`fit` or :meth:`load`)."""
        self._features = tuple(dict(f) for f in features)
        self.names: tuple[str, ...] = tuple(f["name"] for f in self._features)
        self.index = {name: i for i, name in enumerate(self.names)}
        self.feature_keys = tuple("feature." + name for name in self.names)
        # Arrays indexed by position in ``names`` so a row is checked with a few numpy ops.
        n = len(self.names)
        self.numeric = np.array([f["kind"] == "numeric" for f in self._features], dtype=bool)
        self.all_numeric = bool(self.numeric.all())
        self.mins = np.full(n, np.nan)
        self.maxs = np.full(n, np.nan)
        self.edges = np.full((n, 9), np.nan)
        self.has_edges = np.zeros(n, dtype=bool)
        self.categories: dict[int, frozenset[str]] = {}
        for i, f in enumerate(self._features):
            if f["kind"] == "numeric":
                if f["min"] is not None:
                    self.mins[i], self.maxs[i] = f["min"], f["max"]
                if f["edges"]:
                    self.edges[i] = f["edges"]
                    self.has_edges[i] = True
            else:
                self.categories[i] = frozenset(f["categories"])
        # Transposed (9 x n), so a row's bins are nine contiguous comparisons summed down.
        self.edges_t = np.ascontiguousarray(self.edges.T)
        self.all_edges = bool(self.has_edges.all())
        self.bin_key_list = tuple("feature_bin." + name for name in self.names)
        self.bin_keys = np.array(self.bin_key_list, dtype=object)

    def __repr__(self) -> str:
        return f"Profile({len(self.names)} features)"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Profile) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def feature(self, name: str) -> dict[str, Any]:
        """The summary of one feature (a copy)."""
        return dict(self._features[self.index[name]])

    # -- fitting ---------------------------------------------------------------------------

    @classmethod
    def fit(
        cls,
        X: Any,
        names: Sequence[str] | None = None,
        *,
        categorical: Iterable[str] = (),
        max_categories: int = 1000,
    ) -> Profile:
        """Summarise training data ``X``.

        ``X`` is a 2-D array (rows are samples, columns follow ``names``), a mapping of
        name -> column, or a data-frame-like object with ``.columns``. ``categorical`` names
        the features whose values are categories; the rest must be numeric.
        """
        columns = _columns(X, names)
        cat = set(categorical) if not isinstance(categorical, str) else {categorical}
        unknown = cat - {name for name, _ in columns}
        if unknown:
            raise ConfigurationError(
                f"Profile.fit: categorical names {sorted(unknown)} are not features; "
                f"use names from {[name for name, _ in columns][:20]}"
            )
        features = [
            _fit_categorical(name, col, max_categories) if name in cat else _fit_numeric(name, col)
            for name, col in columns
        ]
        return cls(features)

    # -- persistence -----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The JSON document ``save`` writes."""
        return {"format": FORMAT, "version": VERSION, "features": [dict(f) for f in self._features]}

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "profile") -> Profile:
        """Validate a document as written by :meth:`to_dict`; raise ConfigurationError if bad."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ConfigurationError(
                f'{source} is not a wideevents profile (no "format": "{FORMAT}"); '
                "create one with wideevents.ml.Profile.fit(X, names).save(path)"
            )
        if data.get("version") != VERSION:
            raise ConfigurationError(
                f"{source} has profile version {data.get('version')!r}; this wideevents reads "
                f"version {VERSION}: refit and save it with Profile.fit(X, names).save(path)"
            )
        features = data.get("features")
        if not isinstance(features, list) or not features:
            raise ConfigurationError(f'{source}: "features" must be a non-empty list; refit it')
        seen: set[str] = set()
        for i, f in enumerate(features):
            problem = _feature_problem(f)
            if problem is None and f["name"] in seen:
                problem = "duplicate name"
            if problem is not None:
                raise ConfigurationError(
                    f"{source}: feature #{i} ({_name_of(f)}) is invalid: {problem}; "
                    "refit the profile with Profile.fit(X, names).save(path)"
                )
            seen.add(f["name"])
        return cls(features)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the profile as JSON (atomically: a temporary file, then a rename)."""
        tmp = f"{os.fspath(path)}.tmp{os.getpid()}"
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(self.to_dict(), f, allow_nan=False, separators=(",", ":"))
            os.replace(tmp, path)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot write profile to {os.fspath(path)!r}: {exc}; choose a writable path"
            ) from exc

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, names: Sequence[str] | None = None) -> Profile:
        """Read and validate a saved profile; ``names``, if given, must match its features."""
        source = f"profile file {os.fspath(path)!r}"
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError as exc:
            raise ConfigurationError(
                f"{source} not found; create it with "
                "wideevents.ml.Profile.fit(X, names).save(path) or fix the path"
            ) from exc
        except (OSError, ValueError) as exc:
            raise ConfigurationError(
                f"{source} cannot be read as JSON ({exc}); re-save it with Profile.save(path)"
            ) from exc
        profile = cls.from_dict(data, source=source)
        if names is not None and tuple(names) != profile.names:
            missing = [n for n in names if n not in profile.index]
            extra = [n for n in profile.names if n not in set(names)]
            raise ConfigurationError(
                f"{source} does not match the model's feature names (missing from the profile: "
                f"{missing[:10]}, not in names: {extra[:10]}, or a different order); "
                "refit the profile on the model's training data"
            )
        return profile


def _name_of(feature: Any) -> str:
    return repr(feature.get("name")) if isinstance(feature, dict) else "?"


def _number_or_none(value: Any) -> bool:
    return value is None or (
        isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    )


def _feature_problem(f: Any) -> str | None:
    """Why a feature summary is invalid, or None."""
    if not isinstance(f, dict) or not isinstance(f.get("name"), str) or not f["name"]:
        return 'needs a non-empty string "name"'
    rate = f.get("null_rate")
    if not isinstance(rate, (int, float)) or not 0.0 <= rate <= 1.0:
        return '"null_rate" must be a number in [0, 1]'
    if not isinstance(f.get("count"), int) or f["count"] < 0:
        return '"count" must be a non-negative integer'
    if f.get("kind") == "categorical":
        cats = f.get("categories")
        if not isinstance(cats, list) or not all(isinstance(c, str) for c in cats):
            return '"categories" must be a list of strings'
        return None
    if f.get("kind") != "numeric":
        return '"kind" must be "numeric" or "categorical"'
    lo, hi, edges, fractions = f.get("min"), f.get("max"), f.get("edges"), f.get("bin_fractions")
    if not (_number_or_none(lo) and _number_or_none(hi)) or (lo is None) != (hi is None):
        return '"min" and "max" must both be finite numbers (or both null)'
    if lo is not None and lo > hi:
        return '"min" is greater than "max"'
    if not isinstance(edges, list) or len(edges) not in (0, 9):
        return '"edges" must be a list of 9 numbers (or empty)'
    if edges and not (
        all(_number_or_none(e) and e is not None for e in edges)
        and all(a <= b for a, b in itertools.pairwise(edges))
    ):
        return '"edges" must be 9 finite numbers in ascending order'
    if not isinstance(fractions, list) or len(fractions) != (10 if edges else 0):
        return '"bin_fractions" must hold 10 numbers when there are edges'
    if not all(_number_or_none(x) and x is not None and 0 <= x <= 1 for x in fractions):
        return '"bin_fractions" must be numbers in [0, 1]'
    return None


def _columns(X: Any, names: Sequence[str] | None) -> list[tuple[str, Any]]:
    """(name, column) pairs from an array, a mapping or a data-frame-like object."""
    if isinstance(X, Mapping) or (hasattr(X, "columns") and hasattr(X, "__getitem__")):
        keys = list(X.keys() if isinstance(X, Mapping) else X.columns)
        use = list(names) if names is not None else [str(key) for key in keys]
        by_name = {str(key): key for key in keys}
        missing = [n for n in use if n not in by_name]
        if missing:
            raise ConfigurationError(f"Profile.fit: no column for names {missing[:10]}")
        columns = [(n, np.asarray(X[by_name[n]])) for n in use]
    else:
        try:
            arr = np.asarray(X)
        except ValueError as exc:
            raise ConfigurationError(f"Profile.fit: X is not a 2-D array ({exc})") from exc
        if arr.ndim != 2:
            raise ConfigurationError(
                f"Profile.fit: X must be 2-D (samples x features), got shape {arr.shape}"
            )
        if names is None:
            raise ConfigurationError("Profile.fit: pass names=[...] for the columns of X")
        use = list(names)
        if len(use) != arr.shape[1]:
            raise ConfigurationError(
                f"Profile.fit: {len(use)} names for {arr.shape[1]} columns; "
                "pass one name per column of X"
            )
        columns = [(n, arr[:, i]) for i, n in enumerate(use)]
    if not columns:
        raise ConfigurationError("Profile.fit: X has no features")
    if any(not isinstance(n, str) or not n for n, _ in columns):
        raise ConfigurationError("Profile.fit: feature names must be non-empty strings")
    if len({n for n, _ in columns}) != len(columns):
        raise ConfigurationError("Profile.fit: feature names must be unique")
    if any(col.ndim != 1 or col.shape[0] == 0 for _, col in columns):
        raise ConfigurationError("Profile.fit: every feature needs a 1-D, non-empty column")
    return columns


def _fit_numeric(name: str, col: np.ndarray[Any, Any]) -> dict[str, Any]:
    try:
        values = col.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(
            f"Profile.fit: feature {name!r} is not numeric ({exc}); "
            f"list it in categorical=[...] if its values are categories"
        ) from exc
    count = int(values.shape[0])
    null_rate = float(np.count_nonzero(np.isnan(values))) / count
    finite = values[np.isfinite(values)]
    feature: dict[str, Any] = {
        "name": name,
        "kind": "numeric",
        "count": count,
        "null_rate": null_rate,
        "min": None,
        "max": None,
        "edges": [],
        "bin_fractions": [],
    }
    if finite.size:
        edges = np.quantile(finite, _QUANTILES)
        bins = np.searchsorted(edges, finite, side="right")
        fractions = np.bincount(bins, minlength=10) / finite.size
        feature.update(
            min=float(finite.min()),
            max=float(finite.max()),
            edges=edges.tolist(),
            bin_fractions=fractions.tolist(),
        )
    return feature


def _fit_categorical(name: str, col: np.ndarray[Any, Any], max_categories: int) -> dict[str, Any]:
    values = col.tolist()
    count = len(values)
    nulls = sum(1 for v in values if _is_null(v))
    categories = sorted({str(v) for v in values if not _is_null(v)})
    if len(categories) > max_categories:
        raise ConfigurationError(
            f"Profile.fit: feature {name!r} has {len(categories)} categories "
            f"(max_categories={max_categories}); raise max_categories or treat it as numeric"
        )
    return {
        "name": name,
        "kind": "categorical",
        "count": count,
        "null_rate": nulls / count,
        "categories": categories,
    }
