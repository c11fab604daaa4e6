"""Profile fit/save/load and feature_fields against references written in the test."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support.ml import assert_close, ref_feature_bin
from wideevents._errors import ConfigurationError
from wideevents.ml import Profile, feature_fields

ERR = "meta.ml_error_count"
REASONS = "meta.ml_error_reasons"
DECILES = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]


class FakeRow:
    """A pandas-Series-like row: ``.index`` and ``.to_numpy()``."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.index = list(data)
        self._values = np.array(list(data.values()), dtype=object)

    def to_numpy(self) -> np.ndarray[Any, Any]:
        return self._values


class ValuesRow:
    """An older pandas-like row: ``.index`` and ``.values``."""

    def __init__(self, names: list[str], values: list[float]) -> None:
        self.index = names
        self.values = np.array(values)


class FakeFrame:
    """A data-frame-like training set: ``.columns`` and column access by name."""

    def __init__(self, columns: dict[str, list[Any]]) -> None:
        self.columns = list(columns)
        self._data = columns

    def __getitem__(self, name: str) -> list[Any]:
        return self._data[name]


@pytest.fixture(scope="module")
def training() -> tuple[np.ndarray[Any, Any], list[str]]:
    rng = np.random.default_rng(10)
    X = rng.normal(size=(2000, 6)) * [1, 2, 5, 0.1, 10, 1] + [0, 1, -3, 0, 100, 0]
    X[rng.integers(0, 2000, 40), 2] = np.nan
    X[:, 5] = rng.integers(0, 3, 2000)  # few distinct values: repeated edges
    return X, [f"f{i}" for i in range(6)]


def test_fit_numeric_matches_reference(training: tuple[Any, list[str]]) -> None:
    """min, max, decile edges, bin fractions and null rate equal numpy formulas."""
    X, names = training
    profile = Profile.fit(X, names)
    for j, name in enumerate(names):
        col = X[:, j]
        finite = col[np.isfinite(col)]
        edges = np.percentile(finite, [10 * i for i in range(1, 10)]).tolist()
        bins = [ref_feature_bin(edges, x) for x in finite.tolist()]
        fractions = [bins.count(b) / len(finite) for b in range(10)]
        expected = {
            "name": name,
            "kind": "numeric",
            "count": 2000,
            "null_rate": float(np.mean(np.isnan(col))),
            "min": float(finite.min()),
            "max": float(finite.max()),
            "edges": edges,
            "bin_fractions": fractions,
        }
        assert_close(expected, profile.feature(name))
    assert tuple(names) == profile.names


def test_fit_categorical_from_a_frame() -> None:
    """Categorical features: sorted canonical categories with their frequencies, nulls
    (None/NaN) excluded; numbers stay numbers."""
    frame = FakeFrame(
        {
            "country": ["de", "fr", None, "de", float("nan"), "it"],
            "age": [30, 41, 25, None, 60, 33],
            "plan": [1, 2, 2, 1, 3, 1],
        }
    )
    profile = Profile.fit(frame, categorical=["country", "plan"])
    assert {
        "name": "country",
        "kind": "categorical",
        "count": 6,
        "null_rate": 2 / 6,
        "categories": ["de", "fr", "it"],
        "frequencies": [0.5, 0.25, 0.25],
    } == profile.feature("country")
    assert ([1, 2, 3], [0.5, 2 / 6, 1 / 6]) == (
        profile.feature("plan")["categories"], profile.feature("plan")["frequencies"]
    )
    assert (25.0, 60.0, 1 / 6) == (
        profile.feature("age")["min"],
        profile.feature("age")["max"],
        profile.feature("age")["null_rate"],
    )


def test_fit_all_missing_feature_has_no_range() -> None:
    """A numeric feature without finite training values gets no range and no bins."""
    profile = Profile.fit({"a": [np.nan, np.nan], "b": [1.0, 2.0]})
    assert (None, None, [], 1.0) == tuple(
        profile.feature("a")[k] for k in ("min", "max", "edges", "null_rate")
    )
    fields = feature_fields({"a": 5.0, "b": 1.5}, profile=profile)
    assert ("feature_bin.a" not in fields, 0) == (True, fields["data.oor_count"])


@pytest.mark.parametrize(
    ("X", "names", "kwargs", "fragment"),
    [
        (np.zeros((5, 3)), ["a", "b"], {}, "2 names for 3 columns"),
        (np.zeros(5), ["a"], {}, "must be 2-D"),
        (np.zeros((5, 2)), None, {}, "pass names="),
        (np.zeros((5, 2)), ["a", "a"], {}, "unique"),
        (np.array([["x", "1"], ["y", "2"]], dtype=object), ["a", "b"], {}, "categorical=[...]"),
        (np.zeros((5, 2)), ["a", "b"], {"categorical": ["c"]}, "are not features"),
        (np.zeros((0, 2)), ["a", "b"], {}, "with rows"),
        (
            {"a": [str(i) for i in range(5)]},
            None,
            {"categorical": ["a"], "max_categories": 3},
            "max_categories",
        ),
    ],
)
def test_fit_errors_are_configuration_errors(
    X: Any, names: Any, kwargs: Any, fragment: str
) -> None:
    """Fitting problems raise ConfigurationError with a message that says what to do."""
    with pytest.raises(ConfigurationError, match=re.escape(fragment)):
        Profile.fit(X, names, **kwargs)


def test_save_load_round_trip(tmp_path: Path, training: tuple[Any, list[str]]) -> None:
    """save then load gives an equal profile; the file is versioned JSON."""
    X, names = training
    profile = Profile.fit(X, names)
    path = tmp_path / "profile.json"
    profile.save(path)
    document = json.loads(path.read_text())
    assert ("wideevents.profile", 2) == (document["format"], document["version"])
    loaded = Profile.load(path, names=names)
    assert profile == loaded
    x = X[7]
    assert feature_fields(x, profile=profile) == feature_fields(x, profile=loaded)


def write(tmp_path: Path, document: Any) -> Path:
    path = tmp_path / "p.json"
    path.write_text(json.dumps(document) if not isinstance(document, str) else document)
    return path


def good_document() -> dict[str, Any]:
    return Profile.fit({"a": [1.0, 2.0, 3.0], "b": ["x", "y", "x"]}, categorical=["b"]).to_dict()


def test_load_errors(tmp_path: Path) -> None:
    """Missing file, bad JSON, wrong format or version, invalid features, names mismatch."""
    cases: list[tuple[Any, str]] = [
        ("{not json", "cannot be read as JSON"),
        ({"version": 1, "features": []}, "not a wideevents profile"),
        ({**good_document(), "version": 3}, "version 3"),
        ({**good_document(), "features": []}, "non-empty list"),
    ]
    broken = good_document()
    broken["features"][0]["edges"] = list(reversed(broken["features"][0]["edges"]))
    cases.append((broken, "ascending"))
    broken = good_document()
    broken["features"][0]["min"] = 10.0
    cases.append((broken, "greater than"))
    broken = good_document()
    broken["features"][1]["kind"] = "text"
    cases.append((broken, "kind"))
    broken = good_document()
    broken["features"][1]["name"] = "a"
    cases.append((broken, "duplicate"))
    for document, fragment in cases:
        with pytest.raises(ConfigurationError, match=fragment):
            Profile.load(write(tmp_path, document))
    with pytest.raises(ConfigurationError, match="not found; create it"):
        Profile.load(tmp_path / "missing.json")
    path = write(tmp_path, good_document())
    with pytest.raises(ConfigurationError, match="does not match the model's feature names"):
        Profile.load(path, names=["a", "c"])
    with pytest.raises(ConfigurationError, match="does not match"):
        Profile.load(path, names=["b", "a"])
    assert ("a", "b") == Profile.load(path, names=["a", "b"]).names


def reference_features(profile: Profile, values: dict[str, Any]) -> dict[str, Any]:
    """feature/feature_bin/data fields from the definitions, for numeric-only input."""
    out: dict[str, Any] = {}
    nulls = nans = infs = 0
    oor: list[str] = []
    for name in profile.names:
        f = profile.feature(name)
        if name not in values or values[name] is None:
            nulls += 1
            continue
        x = values[name]
        if math.isnan(x):
            nans += 1
            out["feature." + name] = None
            continue
        if math.isinf(x):
            infs += 1
            out["feature." + name] = None
            continue
        out["feature." + name] = x
        if f["min"] is not None and not f["min"] <= x <= f["max"]:
            oor.append(name)
        if f["edges"]:
            out["feature_bin." + name] = ref_feature_bin(f["edges"], x)
    out.update(
        {
            "data.null_count": nulls,
            "data.nan_count": nans,
            "data.inf_count": infs,
            "data.oor_count": len(oor),
            "data.unseen_category_count": 0,
        }
    )
    if oor:
        out["data.oor_features"] = oor[:20]
    return out


def test_array_row_with_profile(training: tuple[Any, list[str]]) -> None:
    """A numeric row: values, bins, range and non-finite counts equal the reference."""
    X, names = training
    profile = Profile.fit(X, names)
    rng = np.random.default_rng(11)
    for _ in range(30):
        x = X[int(rng.integers(0, 2000))].copy()
        x[int(rng.integers(0, 6))] *= float(rng.choice([1.0, 100.0, -100.0]))
        if rng.uniform() < 0.3:
            x[int(rng.integers(0, 6))] = float(rng.choice([np.nan, np.inf, -np.inf]))
        expected = reference_features(profile, dict(zip(names, x.tolist(), strict=True)))
        assert_close(expected, feature_fields(x, profile=profile))
        assert_close(expected, feature_fields(x.tolist(), profile=profile))
        assert_close(
            expected, feature_fields(dict(zip(names, x.tolist(), strict=True)), profile=profile)
        )


def test_bins_cover_all_deciles_and_edges() -> None:
    """Values at and between edges fall into bins 0-9 (side='right' convention)."""
    profile = Profile.fit(np.arange(1001, dtype=float)[:, None], ["x"])
    edges = profile.feature("x")["edges"]
    assert_close([100.0 * i for i in range(1, 10)], edges)
    cases = [(-5.0, 0), (0.0, 0), (99.9, 0), (450.0, 4), (5000.0, 9)]
    cases += [(edge, i + 1) for i, edge in enumerate(edges)]  # an edge opens the next bin
    for x, expected in cases:
        assert expected == feature_fields([x], profile=profile)["feature_bin.x"]


def test_dict_with_mixed_types_and_profile() -> None:
    """Categoricals, nulls, missing features, unseen categories, strings for numbers."""
    profile = Profile.fit(
        {
            "age": [20.0, 30.0, 40.0, 50.0],
            "country": ["de", "fr", "de", "it"],
            "score": [0.1, 0.5, 0.9, 0.3],
        },
        categorical=["country"],
    )
    fields = feature_fields(
        {"age": 65.0, "country": "es", "extra": "note", "flag": True, "n": np.int64(4)},
        profile=profile,
    )
    expected = {
        "feature.age": 65.0,
        "feature.country": "es",
        "feature.extra": "note",
        "feature.flag": True,
        "feature.n": 4,
        "feature_bin.age": ref_feature_bin(profile.feature("age")["edges"], 65.0),
        "data.null_count": 1,  # "score" is missing
        "data.nan_count": 0,
        "data.inf_count": 0,
        "data.oor_count": 1,
        "data.oor_features": ["age"],
        "data.unseen_category_count": 1,
    }
    assert_close(expected, fields)
    nan_category = feature_fields(
        {"age": "old", "country": float("nan"), "score": None}, profile=profile
    )
    assert (2, 0, 1) == (
        nan_category["data.null_count"],
        nan_category["data.nan_count"],
        nan_category[ERR],
    )
    assert ["features: non-numeric value for a numeric feature"] == nan_category[REASONS]
    assert "old" == nan_category["feature.age"]


def test_pandas_like_rows() -> None:
    """Objects with .index and .to_numpy() (or .values) are read as named rows."""
    profile = Profile.fit({"a": [0.0, 1.0, 2.0], "c": ["u", "v", "u"]}, categorical=["c"])
    row = FakeRow({"a": 1.5, "c": "w"})
    fields = feature_fields(row, profile=profile)
    assert (1.5, "w", 1) == (
        fields["feature.a"],
        fields["feature.c"],
        fields["data.unseen_category_count"],
    )
    old = ValuesRow(["x", "y"], [3.0, 4.0])
    assert {"feature.x": 3.0, "feature.y": 4.0} == {
        k: v for k, v in feature_fields(old).items() if k.startswith("feature.")
    }


def test_vectors_are_summarised() -> None:
    """Embeddings become .dim and .norm (np.linalg.norm); non-finite ones are counted."""
    rng = np.random.default_rng(12)
    emb = rng.normal(size=384).astype(np.float32)
    fields = feature_fields(
        {"emb": emb, "ids": [1, 2, 3], "bad": [1.0, np.nan], "huge": [1e200, 1e200]}
    )
    assert_close(
        {
            "feature.emb.dim": 384,
            "feature.emb.norm": float(np.linalg.norm(emb.astype(np.float64))),
            "feature.ids.dim": 3,
            "feature.ids.norm": math.sqrt(14.0),
            "feature.bad.dim": 2,
            "feature.bad.norm": None,
            "feature.huge.dim": 2,
            "feature.huge.norm": math.sqrt(2.0) * 1e200,
            "data.null_count": 0,
            "data.nan_count": 1,
            "data.inf_count": 0,
        },
        fields,
    )


def test_strings_and_string_lists() -> None:
    """Short strings kept, long ones cut to 128 characters; short string lists kept."""
    fields = feature_fields({"s": "x" * 500, "tags": ["a", "b"], "many": ["t"] * 40})
    assert ("x" * 128, ["a", "b"]) == (fields["feature.s"], fields["feature.tags"])
    assert ("feature.many" not in fields, 1) == (True, fields[ERR])


def test_without_profile_no_reference_fields() -> None:
    """Without a profile there are no oor / unseen / bin fields; integrity counts remain."""
    fields = feature_fields(np.array([1.0, np.nan, np.inf]), names=["a", "b", "c"])
    assert {
        "feature.a": 1.0,
        "feature.b": None,
        "feature.c": None,
        "data.null_count": 0,
        "data.nan_count": 1,
        "data.inf_count": 1,
    } == fields
    assert {
        "feature.0": 1,
        "feature.1": 2,
        "data.null_count": 0,
        "data.nan_count": 0,
        "data.inf_count": 0,
    } == feature_fields([1, 2])


def test_oor_feature_names_are_capped() -> None:
    """At most 20 out-of-range names, in profile order; the count is complete."""
    names = [f"f{i:02d}" for i in range(30)]
    profile = Profile.fit(np.zeros((10, 30)), names)
    fields = feature_fields(np.ones(30), profile=profile)
    assert (30, names[:20]) == (fields["data.oor_count"], fields["data.oor_features"])


@pytest.mark.parametrize(
    ("values", "kwargs", "reason"),
    [
        (None, {}, "features: not a row of features"),
        (42, {}, "features: not a row of features"),
        ("text", {}, "features: not a row of features"),
        (np.zeros((3, 4)), {}, "features: expected one row of features"),
        ([1.0, 2.0, 3.0], {"names": ["a", "b"]}, "features: names length mismatch"),
        ({"a": object()}, {}, "features: unsupported value type"),
        ({"a": 1.0}, {"profile": "not a profile"}, "features: profile is not a Profile"),
    ],
)
def test_bad_input_never_raises(values: Any, kwargs: dict[str, Any], reason: str) -> None:
    """Bad input is counted with a short reason, never raised."""
    fields = feature_fields(values, **kwargs)
    assert (1, [reason]) == (fields[ERR], fields[REASONS])


def test_names_mismatch_records_nothing() -> None:
    """More values than names: which value is which feature is a guess, so no feature.* or
    data.* field is recorded; one problem is counted."""
    fields = feature_fields(np.array([1.0, 2.0, 3.0]), names=["a", "b"])
    assert {ERR: 1, REASONS: ["features: names length mismatch"]} == fields
