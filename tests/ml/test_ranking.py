"""ranking_fields and compare_rankings against scipy and a naive RBO written here."""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
import pytest

from tests.support.ml import assert_close, ref_compare, ref_rbo_ext
from wideevents.ml import compare_rankings, ranking_fields

ERR = "meta.ml_error_count"
REASONS = "meta.ml_error_reasons"


def ref_ranking(ids: list[Any], scores: list[float] | None, k: int) -> dict[str, Any]:
    """result.* from the definitions: stable descending sort, non-finite last."""
    out: dict[str, Any] = {"result.count": len(ids)}
    if scores is None:
        order = list(range(len(ids)))
    else:
        order = sorted(
            range(len(ids)),
            key=lambda i: (0, -scores[i], i) if math.isfinite(scores[i]) else (1, 0.0, i),
        )
    top = order[:k]
    out["result.ids"] = [ids[i] for i in top]
    for rank, i in enumerate(top[:3], 1):
        out[f"result.{rank}.id"] = ids[i]
        if scores is not None:
            s = scores[i]
            out[f"result.{rank}.score"] = s if math.isfinite(s) else None
            if rank < len(top):
                nxt = scores[top[rank]]
                if math.isfinite(s) and math.isfinite(nxt):
                    out[f"result.{rank}.gap"] = s - nxt
    return out


def test_ranking_matches_reference() -> None:
    """Random scores (with ties) of many sizes: every field equals the reference."""
    rng = np.random.default_rng(20)
    for n in (0, 1, 2, 3, 4, 10, 63, 64, 200, 1000):
        for k in (1, 3, 10, 50):
            scores = (rng.integers(0, 20, size=n) / 4.0).tolist()
            ids = [f"doc{i}" for i in range(n)]
            assert_close(ref_ranking(ids, scores, k), ranking_fields(ids, scores, k=k))


def test_ranking_without_scores_keeps_order() -> None:
    """No scores: ids are already ranked; no score fields."""
    ids = [5, 3, 9, 1]
    assert ref_ranking(ids, None, 2) == ranking_fields(ids, k=2)


def test_ranking_nonfinite_scores_rank_last() -> None:
    """NaN/Inf scores rank last with a None score and are counted."""
    ids = ["a", "b", "c", "d"]
    scores = [0.5, float("nan"), 0.9, float("-inf")]
    fields = ranking_fields(ids, scores, k=4)
    expected = ref_ranking(ids, scores, 4)
    expected.update({ERR: 1, REASONS: ["ranking: non-finite scores"]})
    assert_close(expected, fields)
    assert ["c", "a", "b", "d"] == fields["result.ids"]


def test_ranking_numpy_ids_are_plain() -> None:
    """numpy id arrays give plain Python ids."""
    fields = ranking_fields(np.array([10, 20, 30]), np.array([0.1, 0.3, 0.2]), k=2)
    assert [20, 30] == fields["result.ids"]
    assert all(type(x) is int for x in fields["result.ids"])


@pytest.mark.parametrize(
    ("ids", "scores", "reason"),
    [
        (["a", "b", "c"], [0.3, 0.1], "ranking: ids and scores length mismatch"),
        (["a", "b"], ["x", "y"], "ranking: scores are not numeric"),
        (42, None, "ranking: ids is not a sequence"),
        ("abc", None, "ranking: ids must be a sequence, not a string"),
    ],
)
def test_ranking_bad_input_never_raises(ids: Any, scores: Any, reason: str) -> None:
    """Bad input is counted with a short reason, never raised."""
    fields = ranking_fields(ids, scores)
    assert (1, [reason]) == (fields[ERR], fields[REASONS])


def test_ranking_length_mismatch_uses_the_common_prefix() -> None:
    """Mismatched lengths: the first min(n, m) pairs are ranked."""
    fields = ranking_fields(["a", "b", "c"], [0.3, 0.5])
    assert (2, ["b", "a"]) == (fields["result.count"], fields["result.ids"])


def test_compare_identical_and_disjoint() -> None:
    """Identical lists agree fully; disjoint ones not at all."""
    ids = [f"d{i}" for i in range(10)]
    assert_close(
        {
            "shadow.top1_same": True,
            "shadow.overlap_at_k": 1.0,
            "shadow.kendall_tau": 1.0,
            "shadow.rbo": 1.0,
        },
        compare_rankings(ids, ids, 10),
    )
    other = [f"e{i}" for i in range(10)]
    fields = compare_rankings(ids, other, 10)
    assert_close(ref_compare(ids, other, 10), fields)
    assert (False, 0.0, 0.0) == (
        fields["shadow.top1_same"],
        fields["shadow.overlap_at_k"],
        fields["shadow.rbo"],
    )


def test_compare_reversed_list() -> None:
    """A reversed list: tau is -1 (scipy), RBO from the naive formula."""
    ids = list(range(10))
    fields = compare_rankings(ids, ids[::-1], 10)
    assert_close(ref_compare(ids, ids[::-1], 10), fields)
    assert math.isclose(-1.0, fields["shadow.kendall_tau"])


def test_compare_random_lists_match_references() -> None:
    """Random overlapping lists of equal and unequal length: scipy tau-b, naive RBO."""
    rnd = random.Random(21)
    for _ in range(400):
        pool = [f"x{i}" for i in range(rnd.randint(1, 30))]
        k = rnd.randint(1, 15)
        primary = rnd.sample(pool, min(len(pool), rnd.randint(1, k)))
        shadow = rnd.sample(pool, min(len(pool), rnd.randint(1, k)))
        assert_close(ref_compare(primary, shadow, k), compare_rankings(primary, shadow, k))


def test_compare_truncates_to_k() -> None:
    """Only the top k of each list is compared."""
    primary = list("abcdefgh")
    shadow = list("abcxyzgh")
    assert_close(ref_compare(primary, shadow, 3), compare_rankings(primary, shadow, 3))
    assert 1.0 == compare_rankings(primary, shadow, 3)["shadow.rbo"]


def test_rbo_known_values() -> None:
    """Hand-computed extrapolated RBO for tiny lists (eq. 30 of Webber et al.)."""
    # [a, b] vs [b, a], p = 0.9: X1 = 0, X2 = 2 -> (0.1/0.9) * (0 + 2/2 * 0.81) + 2/2 * 0.81
    expected = 0.1 / 0.9 * 0.81 + 0.81
    assert math.isclose(expected, compare_rankings(["a", "b"], ["b", "a"], 2)["shadow.rbo"])
    assert math.isclose(expected, ref_rbo_ext(["a", "b"], ["b", "a"]))


def test_compare_one_empty_list() -> None:
    """One empty list: no agreement; tau undefined (None)."""
    fields = compare_rankings(["a", "b"], [], 10)
    assert {
        "shadow.top1_same": False,
        "shadow.overlap_at_k": 0.0,
        "shadow.kendall_tau": None,
        "shadow.rbo": 0.0,
    } == fields


def test_compare_single_items() -> None:
    """Top-1 lists: same item -> tau undefined; different -> tau -1."""
    same = compare_rankings(["a"], ["a"], 1)
    assert (True, 1.0, None, 1.0) == tuple(
        same[k]
        for k in ("shadow.top1_same", "shadow.overlap_at_k", "shadow.kendall_tau", "shadow.rbo")
    )
    assert_close(ref_compare(["a"], ["b"], 1), compare_rankings(["a"], ["b"], 1))


def test_compare_bad_input_never_raises() -> None:
    """Both empty, duplicates, non-sequences: counted, never raised."""
    both_empty = compare_rankings([], [], 10)
    assert (None, ["shadow: both rankings are empty"]) == (
        both_empty["shadow.rbo"],
        both_empty[REASONS],
    )
    dup = compare_rankings(["a", "a", "b"], ["a", "b"], 10)
    assert (1.0, ["shadow: duplicate ids"]) == (dup["shadow.rbo"], dup[REASONS])
    bad = compare_rankings(None, ["a"], 10)
    assert ["shadow: ids is not a sequence"] == bad[REASONS]
    unhashable = compare_rankings([["a"], ["b"]], [["a"], ["b"]], 2)
    assert 1.0 == unhashable["shadow.rbo"]
