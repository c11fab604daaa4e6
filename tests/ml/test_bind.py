"""The event-bound helpers (wideevents.ml._bind) on a fake event and on the real Event."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

import wideevents
from tests.support.hostile import Hostile
from tests.support.ml import BrokenEvent, FakeEvent, assert_close, ref_compare, ref_score_fields
from wideevents._core.ids import uuid7_unix_ms
from wideevents.ml import Profile, _bind, compare_rankings, feature_fields, ranking_fields

ERR = "meta.ml_error_count"
REASONS = "meta.ml_error_reasons"


def ml_fields(ev: FakeEvent) -> dict[str, Any]:
    return {k: v for k, v in ev.fields.items() if k != "prediction.id"}


def test_non_recording_event_is_left_alone() -> None:
    """A non-recording event gets nothing, not even a prediction id."""
    ev = FakeEvent(recording=False)
    _bind.model(ev, "m", "1")
    _bind.scores(ev, [0.1, 0.9])
    _bind.features(ev, {"a": 1.0})
    _bind.ranking(ev, ["a"], [1.0])
    _bind.retrieval(ev, "bm25", candidates=3, status="ok", duration_ms=1.0)
    _bind.shadow(ev, "v2", ids=["a"])
    assert ({}, 0, None) == (ev.fields, ev.id_reads, ev._ml)


@pytest.mark.parametrize(
    "call",
    [
        lambda ev: _bind.model(ev, "m", "1"),
        lambda ev: _bind.scores(ev, [0.1, 0.9]),
        lambda ev: _bind.features(ev, {"a": 1.0}),
        lambda ev: _bind.ranking(ev, ["a"], [1.0]),
        lambda ev: _bind.retrieval(ev, "bm25", candidates=3, status="ok", duration_ms=1.0),
        lambda ev: _bind.shadow(ev, "v2", ids=["a"]),
    ],
)
def test_every_helper_gives_a_prediction_id(call: Any) -> None:
    """Each helper touches ev.prediction_id, so the event gets a UUIDv7 prediction.id."""
    ev = FakeEvent()
    call(ev)
    assert (1, True) == (ev.id_reads, uuid7_unix_ms(ev.fields["prediction.id"]) is not None)


def test_model_fields_and_age() -> None:
    """model.* fields; age from datetime, Unix seconds or ISO 8601 (naive = UTC)."""
    trained = datetime(2024, 11, 3, 9, 30, tzinfo=UTC)
    for given in (
        trained,
        trained.timestamp(),
        "2024-11-03T09:30:00Z",
        trained.replace(tzinfo=None),
    ):
        ev = FakeEvent()
        before = time.time()
        _bind.model(
            ev,
            "ranker",
            "2024-11-03",
            stage="canary",
            artifact_sha256="ab12",
            trained_at=given,
            team="search",
        )
        after = time.time()
        age = ev.fields.pop("model.age_s")
        assert before - trained.timestamp() <= age <= after - trained.timestamp()
        assert {
            "model.name": "ranker",
            "model.version": "2024-11-03",
            "model.stage": "canary",
            "model.artifact.sha256": "ab12",
            "model.trained_at": "2024-11-03T09:30:00.000000Z",
            "model.team": "search",
        } == ml_fields(ev)
    ev = FakeEvent()
    _bind.model(ev, "m", 3, trained_at="last tuesday")
    assert {
        "model.name": "m",
        "model.version": "3",
        ERR: 1,
        REASONS: ["model: trained_at is not a point in time"],
    } == ml_fields(ev)
    ev = FakeEvent()
    _bind.model(ev, "m", "1", trained_at=datetime(2024, 1, 1, 1, tzinfo=timezone_plus(2)))
    assert "2023-12-31T23:00:00.000000Z" == ev.fields["model.trained_at"]


def timezone_plus(hours: int) -> Any:
    from datetime import timezone

    return timezone(timedelta(hours=hours))


def test_scores_fields_equal_reference() -> None:
    """ev.scores adds exactly the reference score fields."""
    rng = np.random.default_rng(30)
    p = rng.dirichlet(np.ones(50))
    labels = [f"c{i}" for i in range(50)]
    ev = FakeEvent()
    _bind.scores(ev, p, labels=labels, k=4)
    assert_close(ref_score_fields(p, labels, 4), ml_fields(ev))


def test_features_and_ranking_and_retrieval() -> None:
    """ev.features / ev.ranking equal the pure functions; retrieval fields as named."""
    profile = Profile.fit(np.arange(40, dtype=float).reshape(20, 2), ["a", "b"])
    ev = FakeEvent()
    _bind.features(ev, [3.0, 50.0], profile=profile)
    _bind.ranking(ev, ["x", "y", "z"], [0.2, 0.9, 0.5], k=2)
    _bind.retrieval(ev, "vector", candidates=40, status="ok", duration_ms=12.5)
    _bind.retrieval(ev, "bm25", candidates=np.int64(7), status=503, duration_ms=None)
    expected = feature_fields([3.0, 50.0], profile=profile)
    expected.update(ranking_fields(["x", "y", "z"], [0.2, 0.9, 0.5], k=2))
    expected.update(
        {
            "retrieval.vector.candidates": 40,
            "retrieval.vector.status": "ok",
            "timing.retrieval.vector_ms": 12.5,
            "retrieval.bm25.candidates": 7,
            "retrieval.bm25.status": "503",
        }
    )
    assert_close(expected, ml_fields(ev))


def test_retrieval_bad_values_are_counted() -> None:
    """Non-integer candidates, negative durations, empty backend: counted, rest kept."""
    ev = FakeEvent()
    _bind.retrieval(ev, "", candidates=2.5, status="ok", duration_ms=-1)
    assert {
        "retrieval.unknown.status": "ok",
        ERR: 3,
        REASONS: [
            "retrieval: backend must be a non-empty string",
            "retrieval: candidates is not an integer",
            "retrieval: duration_ms is not a non-negative number",
        ],
    } == ml_fields(ev)


def test_errors_accumulate_across_calls() -> None:
    """meta.ml_error_count adds up; reasons stay distinct and capped at 10."""
    ev = FakeEvent()
    _bind.scores(ev, "bad")
    _bind.scores(ev, "bad")
    _bind.features(ev, 42)
    assert (3, ["scores: values are not numeric", "features: not a row of features"]) == (
        ev.fields[ERR],
        ev.fields[REASONS],
    )
    for i in range(15):
        _bind.scores(ev, [0.5, 0.5], k=-i - 1)  # one reason, repeated
        _bind.retrieval(ev, f"b{i}", candidates="x", status=None, duration_ms=None)
    assert (33, 4) == (ev.fields[ERR], len(ev.fields[REASONS]))
    ev2 = FakeEvent()
    reasons_seen = [
        lambda: _bind.scores(ev2, "x"),
        lambda: _bind.scores(ev2, []),
        lambda: _bind.scores(ev2, [0.1], kind="nope"),
        lambda: _bind.features(ev2, 1),
        lambda: _bind.features(ev2, np.zeros((2, 2))),
        lambda: _bind.ranking(ev2, 5, None),
        lambda: _bind.ranking(ev2, ["a"], ["x"]),
        lambda: _bind.retrieval(ev2, "b", candidates="x", status=None, duration_ms=None),
        lambda: _bind.retrieval(ev2, "b", candidates=None, status=None, duration_ms="x"),
        lambda: _bind.model(ev2, "m", "1", trained_at="x"),
        lambda: _bind.shadow(ev2, "v"),
        lambda: _bind.scores(ev2, [0.5, 0.5], labels=[1]),
    ]
    for call in reasons_seen:
        call()
    assert (12, 10) == (ev2.fields[ERR], len(ev2.fields[REASONS]))


def test_shadow_against_ranking() -> None:
    """Shadow ids (optionally ranked by scores) compared with the primary top k."""
    ev = FakeEvent()
    primary = [f"d{i}" for i in range(20)]
    _bind.ranking(ev, primary, list(range(20, 0, -1)), k=10)
    shadow_ids = ["d1", "d0", "d5", "x", "d3", "d2", "y", "d9", "d8", "d7"]
    _bind.shadow(ev, "v3", ids=shadow_ids, k=10, duration_ms=4.5)
    expected = ref_compare(primary[:10], shadow_ids, 10)
    expected.update({"shadow.model.version": "v3", "timing.shadow_ms": 4.5})
    assert_close(
        expected, {k: v for k, v in ml_fields(ev).items() if k.startswith(("shadow.", "timing."))}
    )
    ev2 = FakeEvent()
    _bind.ranking(ev2, primary, list(range(20, 0, -1)), k=10)
    scores = np.linspace(0.0, 1.0, 12)
    ids = [f"d{i}" for i in range(12)]
    _bind.shadow(ev2, "v3", ids=ids, scores=scores, k=5)
    expected = compare_rankings(primary[:10], ids[::-1][:5], 5)
    assert_close(
        expected,
        {
            k: v
            for k, v in ml_fields(ev2).items()
            if k.startswith("shadow.") and k != "shadow.model.version"
        },
    )


def test_shadow_against_multiclass() -> None:
    """Classifier shadow: its label/score, label agreement, score delta, top-k agreement."""
    labels = ["a", "b", "c", "d"]
    ev = FakeEvent()
    primary = [0.1, 0.6, 0.2, 0.1]
    shadow = [0.05, 0.3, 0.55, 0.1]
    _bind.scores(ev, primary, labels=labels, k=3)
    _bind.shadow(ev, "v2", scores=shadow)
    expected = ref_compare(["b", "c", "a"], ["c", "b", "d"], 3)
    expected.update(
        {
            "shadow.model.version": "v2",
            "shadow.prediction.label": "c",
            "shadow.prediction.score": 0.55,
            "shadow.score_delta": 0.55 - 0.6,
        }
    )
    assert_close(expected, {k: v for k, v in ev.fields.items() if k.startswith("shadow.")})
    ev2 = FakeEvent()
    _bind.scores(ev2, primary, labels=labels, k=3)
    _bind.shadow(ev2, "v2", ids=["b", "a", "c"])
    assert_close(
        ref_compare(["b", "c", "a"], ["b", "a", "c"], 3),
        {
            k: v
            for k, v in ev2.fields.items()
            if k.startswith("shadow.") and k != "shadow.model.version"
        },
    )


def test_shadow_against_binary_and_regression() -> None:
    """Binary: label agreement and delta; regression: the delta only."""
    ev = FakeEvent()
    _bind.scores(ev, 0.7, threshold=0.5, labels=["no", "yes"])
    _bind.shadow(ev, "v2", scores=0.4)
    assert_close(
        {
            "shadow.model.version": "v2",
            "shadow.prediction.label": "no",
            "shadow.prediction.score": 0.4,
            "shadow.prediction.p_positive": 0.4,
            "shadow.top1_same": False,
            "shadow.score_delta": 0.4 - 0.7,
        },
        {k: v for k, v in ev.fields.items() if k.startswith("shadow.")},
    )
    ev2 = FakeEvent()
    _bind.scores(ev2, 12.0)
    _bind.shadow(ev2, "v2", scores=10.5)
    assert {
        "shadow.model.version": "v2",
        "shadow.prediction.score": 10.5,
        "shadow.score_delta": -1.5,
    } == {k: v for k, v in ev2.fields.items() if k.startswith("shadow.")}


def test_shadow_without_primary_records_the_reason() -> None:
    """No primary result, or no ids/scores: the reason is recorded, the version kept."""
    ev = FakeEvent()
    _bind.shadow(ev, "v2", ids=["a"])
    assert ("v2", ["shadow: no primary result (call ranking or scores first)"]) == (
        ev.fields["shadow.model.version"],
        ev.fields[REASONS],
    )
    ev2 = FakeEvent()
    _bind.ranking(ev2, ["a"], None)
    _bind.shadow(ev2, "v2", scores=[0.3])
    assert ["shadow: ids needed to compare with a ranking"] == ev2.fields[REASONS]


def test_broken_event_never_raises() -> None:
    """An event whose add/get raise: every helper returns quietly."""
    ev = BrokenEvent()
    _bind.model(ev, "m", "1")
    _bind.scores(ev, [0.2, 0.8])
    _bind.features(ev, [1.0])
    _bind.ranking(ev, ["a"], [1.0])
    _bind.retrieval(ev, "b", candidates=1, status="ok", duration_ms=1.0)
    _bind.shadow(ev, "v2", ids=["a"])
    assert "prediction.id" in ev.fields


def test_real_event_carries_the_fields() -> None:
    """Through wideevents.event: the finished event holds the ML fields and the id."""
    from wideevents.testing import capture_events

    p = np.array([0.2, 0.5, 0.3])
    with capture_events() as events:
        with wideevents.event("predict") as ev:
            ev.model("clf", "v1", stage="prod")
            ev.scores(p, labels=["x", "y", "z"], k=2)
            ev.shadow("v2", scores=np.array([0.1, 0.2, 0.7]))
            pid = ev.prediction_id
    (finished,) = events
    assert pid == finished["prediction.id"]
    expected = ref_score_fields(p, ["x", "y", "z"], 2)
    assert_close(expected, {k: finished[k] for k in expected})
    assert ("z", False) == (finished["shadow.prediction.label"], finished["shadow.top1_same"])


def test_hostile_values_are_contained() -> None:
    """Values that raise on repr/int/float: counted, logged safely, never raised."""
    ev = FakeEvent()
    _bind.retrieval(ev, "b", candidates=Hostile(), status="ok", duration_ms=Hostile())
    _bind.scores(ev, [0.2, 0.8], k=Hostile())
    _bind.scores(ev, 0.4, threshold=Hostile())
    _bind.model(ev, "m", "1", trained_at=Hostile())
    assert (5, "ok") == (ev.fields[ERR], ev.fields["retrieval.b.status"])
