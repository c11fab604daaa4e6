"""Inputs read as ML code holds them (issue 18, "Inputs"): pandas rows and missing values,
categories by value, float32 training data, scipy sparse rows, lists of dicts, and one rule
per kind of bad input. Each test reproduces one reported case."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse

from tests.support.ml import FakeEvent
from wideevents._core.ids import uuid7
from wideevents._errors import ConfigurationError
from wideevents.ml import Profile, _bind, feature_fields, ranking_fields, score_fields
from wideevents.ml._feedback import feedback_fields

ERR = "meta.ml_error_count"
REASONS = "meta.ml_error_reasons"


def data_fields(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if k.startswith("data.")}


def test_one_row_frame_is_named_by_its_columns() -> None:
    """df.iloc[[i]] (what model.predict takes) is named by the columns, not the row index."""
    frame = pd.DataFrame({"age": [31.0, 47.0], "income": [1.5, 2.5]}, index=[5, 9])
    profile = Profile.fit(frame)
    fields = feature_fields(frame.iloc[[1]], profile=profile)
    assert {"feature.age": 47.0, "feature.income": 2.5, "data.null_count": 0} == {
        k: fields[k] for k in ("feature.age", "feature.income", "data.null_count")}
    assert ERR not in fields


def test_pandas_missing_markers_are_nulls() -> None:
    """pd.NA, pd.NaT, None and numpy NaT are nulls; NaN in a numeric feature is a NaN."""
    row = {"a": pd.NA, "b": pd.NaT, "c": None, "d": np.datetime64("NaT"), "e": float("nan"),
           "f": 1.0}
    fields = feature_fields(row)
    assert ({"data.null_count": 4, "data.nan_count": 1, "data.inf_count": 0}, None) == (
        data_fields(fields), fields.get(REASONS))
    assert {"feature.e", "feature.f"} == {k for k in fields if k.startswith("feature.")}


def test_nullable_frame_row_keeps_na_as_null() -> None:
    """A one-row frame with nullable Int64 / string columns: pd.NA is a null, not a NaN."""
    frame = pd.DataFrame({"n": pd.array([None], dtype="Int64"),
                          "s": pd.array([None], dtype="string"), "x": [2.0]})
    fields = feature_fields(frame)
    assert {"data.null_count": 2, "data.nan_count": 0, "data.inf_count": 0} == data_fields(fields)


def test_fit_string_column_with_pd_na() -> None:
    """A string column with pd.NA: NA is missing (null rate), never the category '<NA>'."""
    frame = pd.DataFrame({"city": pd.array(["paris", pd.NA, "rome", "paris"], dtype="string")})
    feature = Profile.fit(frame, categorical=["city"]).feature("city")
    assert (["paris", "rome"], 0.25, [2 / 3, 1 / 3]) == (
        feature["categories"], feature["null_rate"], feature["frequencies"])


@pytest.mark.parametrize(
    ("trained", "served", "unseen"),
    [
        ([1, 2, 3], 1.0, 0),  # an int-trained profile sees 1.0 as the category 1
        ([1.0, 2.0, float("nan")], 1, 0),  # pandas makes an int column with NaN float
        ([1.0, 2.0], np.int64(2), 0),
        ([1, 2], np.float32(2.0), 0),
        ([True, False], True, 0),
        ([1, 2], True, 1),  # booleans are booleans, not 1
        ([True, False], 1, 1),
        (["1", "2"], 1, 1),  # strings compare exactly as given
        ([1, 2], "1", 1),
        (["de", "fr"], "DE", 1),
    ],
)
def test_categories_compare_by_value(trained: list[Any], served: Any, unseen: int) -> None:
    """One canonical form: numbers by value, booleans as booleans, strings exactly."""
    profile = Profile.fit({"c": trained}, categorical=["c"])
    assert unseen == feature_fields({"c": served}, profile=profile)["data.unseen_category_count"]


def test_categories_survive_save_and_load(tmp_path: Path) -> None:
    """Numeric categories are stored as numbers (version 2) and still compare by value."""
    profile = Profile.fit(pd.DataFrame({"plan": [1, 2, None]}), categorical=["plan"])
    path = tmp_path / "p.json"
    profile.save(path)
    stored = json.loads(path.read_text())["features"][0]["categories"]
    loaded = Profile.load(path)
    assert ([1, 2], 0) == (stored, feature_fields({"plan": 2}, profile=loaded)[
        "data.unseen_category_count"])


def test_float32_training_bounds_hold_served_float64() -> None:
    """Trained on float32 0.7 (stored 0.699999988...), serving 0.7 is not out of range."""
    X = np.array([[0.1], [0.3], [0.7]], dtype=np.float32)
    profile = Profile.fit(X, ["x"])
    assert (0.699999988079071, "float32") == (profile.feature("x")["max"],
                                              profile.feature("x")["dtype"])
    for row in ([0.7], {"x": 0.7}, pd.DataFrame({"x": [0.7]})):
        fields = feature_fields(row, profile=profile)
        assert (0, 9) == (fields["data.oor_count"], fields["feature_bin.x"])
    assert 1 == feature_fields([0.70001], profile=profile)["data.oor_count"]
    frame = pd.DataFrame({"x": pd.array([0.1, 0.7], dtype="Float32")})
    assert 0 == feature_fields([0.7], profile=Profile.fit(frame))["data.oor_count"]


def test_float32_bins_agree_with_training() -> None:
    """A served value equal to a float32 training value lands in the bin training put it."""
    rng = np.random.default_rng(3)
    # Few distinct values: the decile edges are training values themselves.
    X = rng.choice([0.1, 0.3, 0.6, 0.7, 0.9], size=(500, 1)).astype(np.float32)
    profile = Profile.fit(X, ["x"])
    edges = profile.feature("x")["edges"]
    assert {0.30000001192092896, 0.699999988079071} <= set(edges)
    for value in (0.1, 0.3, 0.6, 0.7, 0.9):
        expected = int(np.searchsorted(edges, float(np.float32(value)), side="right"))
        # The client sends the decimal text: a float64 on the other side of the edge.
        assert expected == feature_fields([value], profile=profile)["feature_bin.x"]


def test_sparse_rows_everywhere() -> None:
    """CSR/CSC rows for scores and features; Profile.fit on a sparse matrix (issue: it said
    'X must be 2-D ... got shape ()')."""
    dense = np.array([[0.0, 2.0, 0.0], [1.0, 0.0, 3.0], [0.0, 0.0, 5.0]])
    names = ["a", "b", "c"]
    for matrix in (scipy.sparse.csr_matrix(dense), scipy.sparse.csc_matrix(dense),
                   scipy.sparse.csr_array(dense)):
        profile = Profile.fit(matrix, names)
        assert Profile.fit(dense, names) == profile
        row = scipy.sparse.csr_matrix(dense[1:2])
        assert feature_fields(dense[1], profile=profile) == feature_fields(row, profile=profile)
    probs = scipy.sparse.csr_matrix(np.array([[0.0, 0.25, 0.75]]))
    assert score_fields([0.0, 0.25, 0.75]) == score_fields(probs)
    several = feature_fields(scipy.sparse.csr_matrix(dense))
    assert {ERR: 1, REASONS: ["features: expected one row of features"]} == several
    ids = ["a", "b", "c"]
    assert ranking_fields(ids, dense[1]) == ranking_fields(ids, scipy.sparse.csr_matrix(dense[1:2]))


def test_pandas_missing_outcomes_and_times_are_absent() -> None:
    """The same rule elsewhere: a pd.NA label or reward is no outcome (not the text
    '<NA>', not a problem); a NaT training time is an unknown one."""
    fields, _ = feedback_fields(uuid7(), label=pd.NA, reward=pd.NA)
    assert {"feedback.label", "feedback.reward", ERR}.isdisjoint(fields)
    nan_reward, _ = feedback_fields(uuid7(), reward=float("nan"))
    assert ["feedback: reward is not finite"] == nan_reward[REASONS]
    ev = FakeEvent()
    _bind.model(ev, "m", "1", trained_at=pd.NaT)
    assert {"model.trained_at", ERR}.isdisjoint(ev.fields)


def test_fit_list_of_dicts() -> None:
    """A list of dicts (one per row; a missing key is a missing value) fits a profile."""
    rows = [{"age": 30, "city": "rome"}, {"age": 40}, {"age": None, "city": "oslo"}]
    profile = Profile.fit(rows, categorical=["city"])
    assert (("age", "city"), 1 / 3, 1 / 3, [30.0, 40.0]) == (
        profile.names, profile.feature("age")["null_rate"], profile.feature("city")["null_rate"],
        [profile.feature("age")["min"], profile.feature("age")["max"]])


@pytest.mark.parametrize("values", [None, 3.5, "a,b,c", b"raw", object()])
def test_not_a_row_records_nothing(values: Any) -> None:
    """None, a scalar, a string, bytes or an object: one reason, no data.* fields."""
    profile = Profile.fit({"a": [1.0, 2.0], "b": [3.0, 4.0]})
    assert {ERR: 1, REASONS: ["features: not a row of features"]} == feature_fields(
        values, profile=profile)


def test_empty_row_with_a_profile_is_a_length_mismatch() -> None:
    """[] against a 30-feature profile: a length mismatch, not 30 nulls."""
    names = [f"f{i}" for i in range(30)]
    profile = Profile.fit(np.zeros((3, 30)), names)
    assert {ERR: 1, REASONS: ["features: names length mismatch"]} == feature_fields(
        [], profile=profile)


@pytest.mark.parametrize(
    "values", [[[1.0, 2.0], [3.0, 4.0]], np.ones((2, 2)), pd.DataFrame({"a": [1, 2], "b": [3, 4]})]
)
def test_several_rows_give_one_reason(values: Any) -> None:
    """A list of lists, a 2-D array and a two-row frame give the same reason."""
    assert {ERR: 1, REASONS: ["features: expected one row of features"]} == feature_fields(values)


def test_nested_dicts_count_one_problem_each() -> None:
    """30 nested dicts for 30 numeric profile features: 30 problems, not 60."""
    names = [f"f{i}" for i in range(30)]
    profile = Profile.fit(np.zeros((3, 30)), names)
    fields = feature_fields({n: {"deep": 1} for n in names}, profile=profile)
    assert (30, ["features: unsupported value type"], 0, 0) == (
        fields[ERR], fields[REASONS], fields["data.null_count"], fields["data.oor_count"])


def test_bad_names_is_a_reason_not_an_internal_error() -> None:
    """names=5 is counted as bad names and the row is named by position."""
    fields = feature_fields([1.0, 2.0], names=5)  # type: ignore[arg-type]
    assert (["features: names is not a list of strings"], 1.0, 2.0) == (
        fields[REASONS], fields["feature.0"], fields["feature.1"])


def test_boolean_is_stored_as_bool_and_checked_as_0_or_1() -> None:
    """True for a numeric feature: recorded as true, range-checked and binned as 1."""
    profile = Profile.fit({"flag": [0.0, 0.0, 1.0, 1.0, 1.0], "x": [0.0] * 5})
    fields = feature_fields({"flag": True, "x": 0.0}, profile=profile)
    edges = profile.feature("flag")["edges"]
    assert (True, 0, int(np.searchsorted(edges, 1.0, side="right"))) == (
        fields["feature.flag"], fields["data.oor_count"], fields["feature_bin.flag"])
    assert fields["feature.flag"] is True


def test_fit_errors_say_how_to_fix() -> None:
    """Unreadable training data raises ConfigurationError naming the accepted forms."""
    with pytest.raises(ConfigurationError, match="DataFrame, a scipy sparse matrix"):
        Profile.fit(np.zeros(5), ["a"])
    with pytest.raises(ConfigurationError, match="different lengths"):
        Profile.fit({"a": [1.0, 2.0], "b": [1.0]})
    with pytest.raises(ConfigurationError, match="mixes dicts"):
        Profile.fit([{"a": 1}, [2]])
