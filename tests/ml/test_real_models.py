"""Real scikit-learn models on the datasets scikit-learn bundles (no network), served the
way ML code holds its inputs: pandas one-row frames, scipy CSR rows and dicts.

Every field is compared with a reference computed independently: the model's own
``predict``/``predict_proba`` (sklearn), ``scipy.stats.entropy``, ``numpy.searchsorted`` on
the profile's edges, numpy's min/max. Issue 18.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
import scipy.sparse
import scipy.stats
from sklearn.datasets import load_breast_cancer, load_digits, load_wine
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import wideevents
from wideevents.ml import Profile, feature_fields, score_fields, score_fields_batch
from wideevents.testing import capture_events

ROWS = 40  # served rows per dataset


def split(loader: Any) -> tuple[pd.DataFrame, pd.DataFrame, Any, Any]:
    data = loader(as_frame=True)
    return train_test_split(data.data, data.target, test_size=0.3, random_state=0)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def digits() -> tuple[Any, pd.DataFrame, pd.DataFrame, Any]:
    X_train, X_test, y_train, _ = split(load_digits)
    X_train.columns = [f"px{i}" for i in range(64)]  # digits' own names hold no dots
    X_test.columns = X_train.columns
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    model.fit(X_train, y_train)
    return model, X_train, X_test, y_train


@pytest.fixture(scope="module")
def cancer() -> tuple[Any, pd.DataFrame, pd.DataFrame]:
    X_train, X_test, y_train, _ = split(load_breast_cancer)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    model.fit(X_train, y_train)
    return model, X_train, X_test


def ref_bin(p: float) -> int:
    """score.bin from its definition: the decile i with i/10 <= p < (i+1)/10, 1.0 in 9."""
    return min(int(math.floor(p * 10)), 9)


def test_digits_multiclass_fields_match_sklearn_and_scipy(digits: Any) -> None:
    """Served as one-row frames: the logged label is model.predict's, the scores its
    predict_proba, the entropy scipy's, the bin the top probability's decile."""
    model, _, X_test, _ = digits
    labels = [int(c) for c in model.classes_]
    for i in range(ROWS):
        row = X_test.iloc[[i]]  # what model.predict takes
        proba = model.predict_proba(row)[0]
        fields = score_fields(proba, labels=labels, k=3)
        top = np.sort(proba)[::-1]
        h = float(scipy.stats.entropy(proba))
        expected = {
            "prediction.label": int(model.predict(row)[0]),
            "prediction.score": float(top[0]),
            "score.margin": float(top[0] - top[1]),
            "score.entropy": h,
            "score.entropy_norm": h / math.log(10),
            "score.bin": ref_bin(float(top[0])),
        }
        actual = {k: fields[k] for k in expected}
        assert expected == pytest.approx(actual, rel=1e-12, abs=1e-12)
        assert "meta.ml_error_count" not in fields


def test_wine_logits_are_sklearns_softmax() -> None:
    """Multinomial logistic regression: decision_function rows with logits=True give
    predict_proba's probabilities and predict's label."""
    X_train, X_test, y_train, _ = split(load_wine)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
    model.fit(X_train, y_train)
    z = model.decision_function(X_test)
    proba = model.predict_proba(X_test)
    rows = score_fields_batch(z, logits=True, labels=list(model.classes_), k=3)
    for i, fields in enumerate(rows):
        assert (model.predict(X_test.iloc[[i]])[0], []) == (
            fields["prediction.label"], fields.get("meta.ml_error_reasons", []))
        assert sorted(proba[i])[::-1] == pytest.approx(fields["score.topk.scores"], rel=1e-9)
        assert scipy.stats.entropy(proba[i]) == pytest.approx(fields["score.entropy"], rel=1e-9)


def test_breast_cancer_binary_two_columns(cancer: Any) -> None:
    """predict_proba's two-column row with a threshold is binary: p_positive is column 1,
    the label is the threshold's decision, and score.bin is p's decile."""
    model, _, X_test = cancer
    names = ["malignant", "benign"]
    for i in range(ROWS):
        proba = model.predict_proba(X_test.iloc[[i]])[0]
        for threshold in (0.5, 0.9):
            fields = score_fields(proba, labels=names, threshold=threshold)
            p = float(proba[1])
            assert (names[int(p >= threshold)], p, p, ref_bin(p)) == (
                fields["prediction.label"], fields["prediction.p_positive"],
                fields["prediction.score"], fields["score.bin"])
            assert float(scipy.stats.entropy([1 - p, p])) == pytest.approx(
                fields["score.entropy"], rel=1e-12)
        # The model's own decision is the threshold-0.5 one.
        default = score_fields(proba, labels=names, positive="benign")
        assert names[int(model.predict(X_test.iloc[[i]])[0])] == default["prediction.label"]


def reference_features(profile: Profile, row: pd.Series) -> dict[str, Any]:
    """feature / feature_bin / data fields of a numeric row, from numpy on the profile."""
    out: dict[str, Any] = {}
    oor = []
    for name in profile.names:
        f, x = profile.feature(name), float(row[name])
        out["feature." + name] = x
        out["feature_bin." + name] = int(np.searchsorted(f["edges"], x, side="right"))
        if not f["min"] <= x <= f["max"]:
            oor.append(name)
    out.update({"data.null_count": 0, "data.nan_count": 0, "data.inf_count": 0,
                "data.oor_count": len(oor), "data.unseen_category_count": 0})
    if oor:
        out["data.oor_features"] = oor[:20]
    return out


def test_cancer_features_from_one_row_frames(cancer: Any) -> None:
    """df.iloc[[i]] is read as one row named by its columns, checked against the profile."""
    _, X_train, X_test = cancer
    profile = Profile.fit(X_train)
    assert tuple(X_train.columns) == profile.names
    mins, maxs = X_train.min(), X_train.max()
    for i in range(ROWS):
        fields = feature_fields(X_test.iloc[[i]], profile=profile)
        assert reference_features(profile, X_test.iloc[i]) == fields
        outside = [c for c in X_train.columns if not mins[c] <= X_test.iloc[i][c] <= maxs[c]]
        assert len(outside) == fields["data.oor_count"]


def test_digits_csr_rows_and_matrix_equal_dense(digits: Any) -> None:
    """A CSR matrix fits the same profile as its dense array (implicit entries are 0), and
    a CSR row gives the fields of the dense row."""
    _, X_train, X_test, _ = digits
    names = list(X_train.columns)
    dense = X_train.to_numpy()
    assert Profile.fit(dense, names) == Profile.fit(scipy.sparse.csr_matrix(dense), names)
    assert Profile.fit(dense, names) == Profile.fit(scipy.sparse.csc_array(dense), names)
    profile = Profile.fit(dense, names)
    served = scipy.sparse.csr_matrix(X_test.to_numpy())
    for i in range(ROWS):
        expected = feature_fields(X_test.to_numpy()[i], profile=profile)
        assert expected == feature_fields(served[i], profile=profile)
        assert reference_features(profile, X_test.iloc[i]) == expected


def test_digits_dicts_fit_and_serve_like_the_frame(digits: Any) -> None:
    """A list of dicts fits the profile the DataFrame fits; dict rows give the frame's fields."""
    _, X_train, X_test, _ = digits
    records = X_train.to_dict(orient="records")
    assert Profile.fit(X_train) == Profile.fit(records)
    profile = Profile.fit(records)
    for i in range(ROWS):
        row = X_test.iloc[i].to_dict()
        assert feature_fields(X_test.iloc[[i]], profile=profile) == feature_fields(
            row, profile=profile)


def test_profile_score_reference_matches_numpy(cancer: Any, tmp_path: Any) -> None:
    """Profile v2 keeps the training score distribution: the score.bin fractions of
    predict_proba's positive column (numpy's histogram), saved and loaded."""
    model, X_train, _ = cancer
    proba = model.predict_proba(X_train)
    profile = Profile.fit(X_train, scores=proba, positive=1)
    expected = np.histogram(proba[:, 1], bins=np.linspace(0, 1, 11))[0] / len(proba)
    score = profile.score
    assert score is not None
    assert ("binary", len(proba), 0.0) == (score["kind"], score["count"], score["null_rate"])
    assert expected.tolist() == pytest.approx(score["bin_fractions"], abs=1e-12)
    path = tmp_path / "profile.json"
    profile.save(path)
    assert profile == Profile.load(path)


def test_served_through_events(digits: Any) -> None:
    """Through wideevents.event: a one-row frame's features and its model's scores land
    on the event, with the label model.predict serves."""
    model, X_train, X_test, _ = digits
    profile = Profile.fit(X_train)
    with capture_events() as events:
        for i in range(5):
            row = X_test.iloc[[i]]
            with wideevents.event("predict") as ev:
                ev.features(row, profile=profile)
                ev.scores(model.predict_proba(row)[0], labels=list(model.classes_))
    assert [int(model.predict(X_test.iloc[[i]])[0]) for i in range(5)] == [
        e["prediction.label"] for e in events]
    assert [float(X_test.iloc[i]["px10"]) for i in range(5)] == [
        e["feature.px10"] for e in events]
    assert [0] * 5 == [e.get("meta.ml_error_count", 0) for e in events]
