"""A reference profile of the training data, to check served features (and scores) against.

``Profile.fit`` summarises each feature of the training data (:mod:`._profile_fit` says
which forms of data it reads): numeric features by their min, max, nine decile edges (so a
served value gets a bin 0-9) with the training fraction in each bin, their null rate and,
for float32/float16 columns, their dtype; categorical features by their categories (in the
canonical form of :mod:`._values`: numbers by value, booleans as booleans, strings exactly),
the frequency of each among the non-missing values, and their null rate. Given the model's
scores on (a sample of) the training data, it also keeps their reference distribution: the
``score.bin`` fractions of a classifier, the deciles of a regression's prediction.

``save``/``load`` use a small versioned JSON document (version 2; version 1 files, which
have no frequencies nor score and compare categories as strings, still load)::

    {"format": "wideevents.profile", "version": 2,
     "features": [{"name": "age", "kind": "numeric", "count": 1000, "null_rate": 0.0,
                   "min": 18.0, "max": 90.0, "edges": [9 floats], "bin_fractions": [10 floats],
                   "dtype": "float32"},
                  {"name": "country", "kind": "categorical", "count": 1000,
                   "null_rate": 0.01, "categories": ["de", "fr"], "frequencies": [0.7, 0.3]}],
     "score": {"kind": "binary", "count": 1000, "null_rate": 0.0, "bin_fractions": [10]}}

Bins follow ``numpy.searchsorted(edges, x, side="right")``: bin i holds edges[i-1] <= x <
edges[i]. A served value of a float32 (float16) feature is rounded to that dtype before it
is compared with the training range and edges, which were computed from the training
values in that precision: 0.7 served is float32 0.7 trained. Fitting and loading happen at
start-up, so they raise :class:`~wideevents.ConfigurationError` with a message that says
how to fix the problem.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from .._errors import ConfigurationError
from ._profile_check import feature_problem, score_problem
from ._profile_fit import fit_categorical, fit_numeric, fit_score, read_columns
from ._values import category_key

__all__ = ["FORMAT", "VERSION", "Profile"]

FORMAT = "wideevents.profile"
VERSION = 2
_VERSIONS = (1, 2)


class Profile:
    """Per-feature reference statistics; immutable once built.

    Build one with :meth:`fit` or :meth:`load`. ``names`` is the feature order the profile
    expects for array input.
    """

    def __init__(
        self,
        features: Sequence[Mapping[str, Any]],
        score: Mapping[str, Any] | None = None,
        *,
        version: int = VERSION,
    ) -> None:
        """Build from validated summaries (use :meth:`fit` or :meth:`load`)."""
        self._features = tuple(dict(f) for f in features)
        self._score = None if score is None else dict(score)
        self.version = version
        #: Version 1 profiles compare categories as ``str()`` (how they were fitted).
        self.legacy_categories = version == 1
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
        self.categories: dict[int, frozenset[Any]] = {}
        narrow: dict[str, list[int]] = {}
        for i, f in enumerate(self._features):
            if f["kind"] == "numeric":
                if f["min"] is not None:
                    self.mins[i], self.maxs[i] = f["min"], f["max"]
                if f["edges"]:
                    self.edges[i] = f["edges"]
                    self.has_edges[i] = True
                if "dtype" in f:
                    narrow.setdefault(f["dtype"], []).append(i)
            elif self.legacy_categories:
                self.categories[i] = frozenset(f["categories"])
            else:
                self.categories[i] = frozenset(category_key(c) for c in f["categories"])
        #: (positions, dtype) of the features compared in a narrower float precision.
        self.narrow = tuple((np.array(pos), np.dtype(dt)) for dt, pos in sorted(narrow.items()))
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

    @property
    def score(self) -> dict[str, Any] | None:
        """The reference distribution of the model's score (a copy), or None."""
        return None if self._score is None else dict(self._score)

    def as_compared(
        self, x: np.ndarray[Any, np.dtype[np.float64]]
    ) -> np.ndarray[Any, np.dtype[np.float64]]:
        """A row in profile order as the range and bin checks compare it: the values of
        float32/float16 features rounded to that dtype (a copy only when there are some)."""
        if not self.narrow:
            return x
        x = x.copy()
        with np.errstate(over="ignore", invalid="ignore"):
            for positions, dtype in self.narrow:
                x[positions] = x[positions].astype(dtype).astype(np.float64)
        return x

    # -- fitting ---------------------------------------------------------------------------

    @classmethod
    def fit(
        cls,
        X: Any,
        names: Sequence[str] | None = None,
        *,
        categorical: Iterable[str] = (),
        max_categories: int = 1000,
        scores: Any = None,
        score_kind: str = "auto",
        positive: Any = None,
        logits: bool = False,
    ) -> Profile:
        """Summarise training data ``X`` (and, with ``scores``, the model's outputs on it).

        ``X``: a 2-D array or list of rows (columns follow ``names``), a scipy sparse
        matrix, a DataFrame, a mapping of name -> column or a list of dicts.
        ``categorical`` names the features whose values are categories; the rest must be
        numeric. ``scores``: one model output per sample (``model.predict_proba(X)``),
        scored as ``ev.scores`` scores them with ``kind=score_kind``, ``positive`` and
        ``logits``: pass what the events use, so that their ``score.bin`` is comparable.
        """
        columns = read_columns(X, names)
        cat = {categorical} if isinstance(categorical, str) else set(categorical)
        unknown = cat - {name for name, _ in columns}
        if unknown:
            raise ConfigurationError(
                f"Profile.fit: categorical names {sorted(unknown)} are not features; "
                f"use names from {[name for name, _ in columns][:20]}"
            )
        if isinstance(max_categories, bool) or not isinstance(max_categories, int):
            raise ConfigurationError(
                f"Profile.fit: max_categories={max_categories!r}; pass a positive integer"
            )
        features = [
            fit_categorical(name, read, max_categories) if name in cat else fit_numeric(name, read)
            for name, read in columns
        ]
        counts = {f["count"] for f in features}
        if len(counts) > 1:
            raise ConfigurationError(
                f"Profile.fit: the columns of X have different lengths ({sorted(counts)[:5]}); "
                "pass columns of one length"
            )
        score = None if scores is None else fit_score(scores, score_kind, positive, logits)
        return cls(features, score)

    # -- persistence -----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The JSON document ``save`` writes."""
        doc: dict[str, Any] = {
            "format": FORMAT,
            "version": self.version,
            "features": [dict(f) for f in self._features],
        }
        if self._score is not None:
            doc["score"] = dict(self._score)
        return doc

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "profile") -> Profile:
        """Validate a document as written by :meth:`to_dict`; raise ConfigurationError if bad."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ConfigurationError(
                f'{source} is not a wideevents profile (no "format": "{FORMAT}"); '
                "create one with wideevents.ml.Profile.fit(X, names).save(path)"
            )
        version = data.get("version")
        if isinstance(version, bool) or version not in _VERSIONS:
            raise ConfigurationError(
                f"{source} has profile version {version!r}; this wideevents reads versions "
                f"{list(_VERSIONS)}: refit and save it with Profile.fit(X, names).save(path)"
            )
        features = data.get("features")
        if not isinstance(features, list) or not features:
            raise ConfigurationError(f'{source}: "features" must be a non-empty list; refit it')
        seen: set[str] = set()
        for i, f in enumerate(features):
            problem = feature_problem(f, version)
            if problem is None and f["name"] in seen:
                problem = "duplicate name"
            if problem is not None:
                raise ConfigurationError(
                    f"{source}: feature #{i} ({_name_of(f)}) is invalid: {problem}; "
                    "refit the profile with Profile.fit(X, names).save(path)"
                )
            seen.add(f["name"])
        score = data.get("score")
        if score is not None:
            problem = "version 1 has no score" if version == 1 else score_problem(score)
            if problem is not None:
                raise ConfigurationError(
                    f"{source}: {problem}; refit the profile with "
                    "Profile.fit(X, names, scores=model.predict_proba(X)).save(path)"
                )
        return cls(features, score, version=version)

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
