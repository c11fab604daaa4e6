"""score_fields and score_fields_batch against references written from the definitions."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from tests.support.ml import assert_close, ref_score_fields
from wideevents.ml import score_fields, score_fields_batch

ERR = "meta.ml_error_count"
REASONS = "meta.ml_error_reasons"


def without_errors(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if not k.startswith("meta.ml_error")}


def test_multiclass_probabilities_match_reference() -> None:
    """Random probability vectors of many sizes: every field equals the reference."""
    rng = np.random.default_rng(1)
    for n in (2, 3, 10, 63, 64, 65, 300, 1000):
        for k in (1, 2, 5, 20):
            p = rng.dirichlet(np.ones(n))
            labels = [f"c{i}" for i in range(n)]
            assert_close(ref_score_fields(p, labels, k), score_fields(p, labels=labels, k=k))


def test_multiclass_logits_match_scipy_softmax() -> None:
    """logits=True ranks and reports scipy's softmax probabilities."""
    rng = np.random.default_rng(2)
    for n in (2, 7, 100, 1000):
        z = rng.normal(scale=3.0, size=n)
        assert_close(ref_score_fields(z, None, 5, logits=True), score_fields(z, logits=True))


def test_known_small_example() -> None:
    """A hand-checkable vector: label, top-2, margin and entropy."""
    fields = score_fields([0.1, 0.6, 0.3], labels=["a", "b", "c"], k=2)
    h = -(0.1 * math.log(0.1) + 0.6 * math.log(0.6) + 0.3 * math.log(0.3))
    expected = {
        "prediction.label": "b",
        "prediction.score": 0.6,
        "score.top1": 0.6,
        "score.top1.label": "b",
        "score.top2": 0.3,
        "score.top2.label": "c",
        "score.topk.labels": ["b", "c"],
        "score.topk.scores": [0.6, 0.3],
        "score.margin": 0.6 - 0.3,
        "score.entropy": h,
        "score.entropy_norm": h / math.log(3),
        "prediction.nonfinite": False,
        "score.nonfinite_count": 0,
        "score.bin": 6,
    }
    assert_close(expected, fields)


def test_ties_rank_lower_index_first() -> None:
    """Equal scores rank by class index, both inside the top k and at the cut."""
    fields = score_fields([0.2, 0.3, 0.3, 0.2], k=3)
    assert [1, 2, 0] == fields["score.topk.labels"]
    assert 0.0 == fields["score.margin"]
    flat = np.full(200, 1 / 200)  # large enough for the argpartition path
    assert [0, 1, 2, 3, 4] == score_fields(flat, k=5)["score.topk.labels"]


def test_ties_at_the_cut_large_vectors() -> None:
    """Many duplicated values (argpartition path): the top k is the stable-sort reference."""
    rng = np.random.default_rng(3)
    for _ in range(50):
        v = rng.integers(0, 6, size=500) / 10.0
        k = int(rng.integers(1, 30))
        expected = sorted(range(500), key=lambda i: (-v[i], i))[:k]
        assert expected == score_fields(v, k=k)["score.topk.labels"]


def test_k_larger_than_classes_reports_every_class() -> None:
    """k > number of classes: all classes reported, no error."""
    fields = score_fields([0.5, 0.2, 0.3], k=10)
    assert_close(ref_score_fields([0.5, 0.2, 0.3], None, 10), fields)
    assert [0, 2, 1] == fields["score.topk.labels"]
    assert "score.top4" not in fields


def test_single_value_with_multiclass_kind() -> None:
    """One class: top1 only, no margin, entropy 0 and entropy_norm undefined (None)."""
    fields = score_fields([1.0], kind="multiclass")
    assert 1.0 == fields["score.top1"]
    assert "score.margin" not in fields
    assert (0.0, None, 9) == (
        fields["score.entropy"], fields["score.entropy_norm"], fields["score.bin"]
    )


def test_row_shaped_input_is_one_vector() -> None:
    """(1, n) and (n, 1) arrays are read as one vector."""
    p = np.array([0.1, 0.2, 0.7])
    assert score_fields(p) == score_fields(p[None, :]) == score_fields(p[:, None])


def test_binary_by_threshold_and_by_labels() -> None:
    """Binary: label decided by the threshold; margin and entropy of (1 - p, p)."""
    for p, threshold, labels in [
        (0.7, None, ["neg", "pos"]),
        (0.3, None, ["neg", "pos"]),
        (0.7, 0.8, None),
        (0.8, 0.8, None),
        (0.0, 0.5, None),
        (1.0, 0.5, None),
    ]:
        expected = ref_score_fields(p, labels, threshold=threshold)
        assert_close(expected, score_fields(p, labels=labels, threshold=threshold))
    assert "pos" == score_fields(0.5, labels=["neg", "pos"])["prediction.label"]


def test_binary_logits_and_two_column_form() -> None:
    """Binary logits use the sigmoid; a two-value binary output is (negative, positive)."""
    for z in (-30.0, -1.5, 0.0, 2.0, 40.0):
        assert_close(
            ref_score_fields(z, threshold=0.5, logits=True),
            score_fields(z, threshold=0.5, logits=True),
        )
    two = [0.3, 1.7]
    assert_close(
        ref_score_fields(two, kind="binary", logits=True),
        score_fields(two, kind="binary", logits=True),
    )
    assert_close(
        ref_score_fields([0.4, 0.6], kind="binary"), score_fields([0.4, 0.6], kind="binary")
    )


def test_binary_probability_outside_unit_interval_is_a_problem() -> None:
    """p outside [0, 1] without logits: recorded, counted, no margin or entropy."""
    fields = score_fields(1.5, threshold=0.5)
    assert (1.5, 1, 1) == (fields["prediction.score"], fields["prediction.label"], fields[ERR])
    assert "score.entropy" not in fields


def test_regression() -> None:
    """One value without threshold or two labels: regression."""
    assert {
        "prediction.score": 3.25,
        "prediction.nonfinite": False,
        "score.nonfinite_count": 0,
    } == score_fields(3.25)
    assert 3.0 == score_fields(np.int64(3))["prediction.score"]


def test_nonfinite_scores() -> None:
    """NaN/Inf: the row is no distribution: numpy.argmax's label, a null score, counted."""
    v = [0.1, float("nan"), 0.5, float("inf"), 0.2]
    fields = score_fields(v, k=5)
    assert_close(ref_score_fields(v, None, 5), without_errors(fields))
    assert (1, True, 2, 1, ["scores: non-finite values"]) == (
        fields["prediction.label"],
        fields["prediction.nonfinite"],
        fields["score.nonfinite_count"],
        fields[ERR],
        fields[REASONS],
    )
    assert "score.topk.labels" not in fields
    all_bad = score_fields([float("nan"), float("nan")])
    assert (0, None, 2) == (
        all_bad["prediction.label"],
        all_bad["prediction.score"],
        all_bad["score.nonfinite_count"],
    )
    regression = score_fields(float("inf"))
    assert (None, True, 1) == (
        regression["prediction.score"],
        regression["prediction.nonfinite"],
        regression["score.nonfinite_count"],
    )
    binary = score_fields(float("nan"), threshold=0.5)
    assert (0, None, True) == (
        binary["prediction.label"],
        binary["prediction.score"],
        binary["prediction.nonfinite"],
    )


def test_masked_logits_are_not_nonfinite() -> None:
    """-inf logits are masked classes: left out, not counted; NaN logits are counted."""
    z = [1.0, -np.inf, 2.0, 0.5]
    fields = score_fields(z, logits=True, k=5)
    assert_close(ref_score_fields(z, None, 5, logits=True), fields)
    assert (0, [2, 0, 3]) == (fields["score.nonfinite_count"], fields["score.topk.labels"])
    z = [1.0, -np.inf, 2.0, np.nan, 0.5]
    fields = score_fields(z, logits=True, k=5)
    assert_close(ref_score_fields(z, None, 5, logits=True), without_errors(fields))
    assert (1, 3) == (fields["score.nonfinite_count"], fields["prediction.label"])


def test_negative_probabilities_without_logits() -> None:
    """Negative 'probabilities': ranked, but no entropy, and the problem is counted."""
    fields = score_fields([-1.0, 2.0, 0.5])
    assert (1, 1.5) == (fields["prediction.label"], fields["score.margin"])
    assert "score.entropy" not in fields
    assert ["scores: values are not probabilities (pass logits=True?)"] == fields[REASONS]


def test_scores_that_are_no_probability_vector_have_no_calibration_fields() -> None:
    """Scores above 1 (logits given as probabilities): ranked, no entropy or bin, counted."""
    v = np.array([2.0, 1.0, 1.0, 0.0])
    fields = score_fields(v)
    assert_close(ref_score_fields(v), without_errors(fields))
    assert ["scores: values are not probabilities (pass logits=True?)"] == fields[REASONS]
    assert {"score.bin", "score.entropy"}.isdisjoint(fields)


@pytest.mark.parametrize(
    ("values", "kwargs", "reason"),
    [
        ("abc", {}, "scores: values are not numeric"),
        (["a", "b"], {}, "scores: values are not numeric"),
        (object(), {}, "scores: values are not numeric"),
        ([], {}, "scores: no values"),
        (np.zeros((2, 3)), {}, "scores: expected one row of scores"),
        ([0.2, 0.8], {"labels": ["a"]}, "scores: labels length mismatch"),
        ([0.2, 0.8], {"labels": 5}, "scores: labels is not a sequence"),
        ([0.2, 0.8], {"k": 0}, "scores: k must be a positive integer"),
        ([0.2, 0.8], {"k": "3"}, "scores: k must be a positive integer"),
        ([0.2, 0.8], {"kind": "ordinal"}, "scores: unknown kind"),
        ([0.1, 0.2, 0.7], {"kind": "binary"}, "scores: binary expects one or two values"),
        ([0.1, 0.2], {"kind": "regression"}, "scores: regression expects one value"),
        (0.4, {"threshold": "high"}, "scores: threshold is not a number"),
        (0.4, {"labels": ["a", "b", "c"], "kind": "binary"}, "scores: binary needs two labels"),
    ],
)
def test_bad_input_never_raises(values: Any, kwargs: dict[str, Any], reason: str) -> None:
    """Bad input is counted with a short reason, never raised."""
    fields = score_fields(values, **kwargs)
    assert (1, [reason]) == (fields[ERR], fields[REASONS])


def test_labels_mismatch_falls_back_to_indices() -> None:
    """With the wrong number of labels the class indices are used."""
    fields = score_fields([0.2, 0.8], labels=["a", "b", "c"])
    assert_close(ref_score_fields([0.2, 0.8]), without_errors(fields))


def test_returned_values_are_plain_python() -> None:
    """No numpy scalars leak into the fields."""
    fields = score_fields(np.array([0.1, 0.9], dtype=np.float32), labels=np.array(["x", "y"]))
    plain = (str, int, float, bool, list, type(None))
    assert all(isinstance(v, plain) and not isinstance(v, np.generic) for v in fields.values())
    assert all(type(x) is str for x in fields["score.topk.labels"])


def test_k_is_capped() -> None:
    """k above 100 is capped (the 2,000-field budget), and counted."""
    fields = score_fields(np.ones(300) / 300, k=500)
    assert (100, 1) == (len(fields["score.topk.labels"]), fields[ERR])


def check_batch(arr: Any, **kwargs: Any) -> None:
    rows = score_fields_batch(arr, **kwargs)
    assert len(np.asarray(arr)) == len(rows)
    for i, row in enumerate(rows):
        assert_close(score_fields(np.asarray(arr)[i], **kwargs), row)


def test_batch_multiclass_matches_reference_per_row() -> None:
    """Every row of the batch equals the reference (and the one-row function)."""
    rng = np.random.default_rng(4)
    for n_cols in (2, 10, 100):
        probs = rng.dirichlet(np.ones(n_cols), size=64)
        labels = [f"l{j}" for j in range(n_cols)]
        rows = score_fields_batch(probs, labels=labels, k=3)
        for i, row in enumerate(rows):
            assert_close(ref_score_fields(probs[i], labels, 3), row)
        check_batch(probs, labels=labels, k=3)
        logits = rng.normal(size=(32, n_cols))
        check_batch(logits, logits=True, k=5)


def test_batch_with_dirty_rows_and_ties() -> None:
    """Rows with NaN, negative values or ties at the cut give the one-row result."""
    rng = np.random.default_rng(5)
    probs = rng.dirichlet(np.ones(80), size=20)
    probs[3, 7] = np.nan
    probs[5, :] = 1 / 80
    probs[8, 2] = -0.5
    probs[11, :] = np.inf
    probs[13, :10] = probs[13].max()
    check_batch(probs, k=5)
    small = np.array([[0.5, 0.5, 0.0], [np.nan, 0.2, 0.8], [0.0, 0.0, 0.0]])
    check_batch(small, k=2)


def test_batch_binary_and_regression() -> None:
    """One value per row: binary (threshold / two labels) or regression."""
    rng = np.random.default_rng(6)
    p = rng.uniform(size=40)
    p[[3, 9]] = [np.nan, 1.4]
    rows = score_fields_batch(p, threshold=0.3)
    for i, row in enumerate(rows):
        assert_close(score_fields(float(p[i]), threshold=0.3), row)
        if i not in (3, 9):
            assert_close(ref_score_fields(p[i], threshold=0.3), row)
    check_batch(p[:, None], labels=["no", "yes"])
    z = rng.normal(size=(30, 2))
    check_batch(z, kind="binary", logits=True)
    y = rng.normal(size=25)
    y[4] = np.inf
    rows = score_fields_batch(y)
    for i, row in enumerate(rows):
        assert_close(ref_score_fields(y[i]), without_errors(row))


def test_batch_bad_inputs_never_raise() -> None:
    """Not a batch: [] (or one error dict per row when rows exist)."""
    assert [] == score_fields_batch("abc")
    assert [] == score_fields_batch(np.zeros((0, 3)))
    assert [1, 1] == [row[ERR] for row in score_fields_batch(np.zeros((2, 2, 2)))]
    assert [] == score_fields_batch(42)
    rows = score_fields_batch([["a", 1.0], [0.5, 0.5]])
    assert [1, 0] == [row.get(ERR, 0) for row in rows]
    rows = score_fields_batch(np.full((3, 4), 0.25), labels=["a"])
    assert [1, 1, 1] == [row[ERR] for row in rows]
    assert [0, 0, 0] == [row["prediction.label"] for row in rows]
