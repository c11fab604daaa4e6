"""Feedback: the bounded prediction cache, the feedback fields and the emitted event."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import pytest

import wideevents
from wideevents._core import predictions
from wideevents._core.ids import uuid7
from wideevents._core.predictions import PredictionCache, remember
from wideevents._errors import ConfigurationError
from wideevents.ml import configure_feedback_cache, feedback
from wideevents.ml._feedback import feedback_fields

ERR = "meta.ml_error_count"
REASONS = "meta.ml_error_reasons"


class Clock:
    """A manual monotonic clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def fresh_cache() -> Any:
    predictions.cache.clear()
    configure_feedback_cache()
    yield
    predictions.cache.clear()
    configure_feedback_cache()


def test_cache_ttl_expiry() -> None:
    """Entries vanish ttl_s after they were stored."""
    clock = Clock()
    cache = PredictionCache(10, 60.0, clock)
    cache.put("a", {"x": 1})
    clock.now += 59.9
    assert {"x": 1} == cache.get("a")
    clock.now += 0.2
    assert (None, 0) == (cache.get("a"), len(cache))


def test_cache_size_bound_evicts_oldest() -> None:
    """Past max_size the oldest entries go first; re-putting refreshes an entry."""
    clock = Clock()
    cache = PredictionCache(3, 60.0, clock)
    for key in "abc":
        cache.put(key, {"k": key})
        clock.now += 1
    cache.put("a", {"k": "a2"})
    cache.put("d", {"k": "d"})
    assert [None, {"k": "a2"}, {"k": "c"}, {"k": "d"}] == [cache.get(k) for k in "bacd"]
    assert 3 == len(cache)


def test_cache_expired_entries_are_dropped_on_insert() -> None:
    """Expired entries at the front are evicted when new ones arrive (bounded memory)."""
    clock = Clock()
    cache = PredictionCache(100, 10.0, clock)
    for i in range(50):
        cache.put(str(i), {})
    clock.now += 11
    cache.put("new", {})
    assert 1 == len(cache)


def test_cache_thread_safety() -> None:
    """Concurrent puts and gets: no errors, the size bound holds."""
    cache = PredictionCache(500, 60.0)
    errors: list[BaseException] = []

    def work(offset: int) -> None:
        try:
            for i in range(3000):
                cache.put(f"{offset}-{i}", {"i": i})
                cache.get(f"{offset}-{i // 2}")
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert ([], 500) == (errors, len(cache))


def test_configure_validates_and_resizes() -> None:
    """Bad sizes/TTLs raise ConfigurationError; a smaller size evicts; 0 disables."""
    for bad in (
        {"max_size": -1},
        {"max_size": 1.5},
        {"max_size": True},
        {"ttl_s": 0},
        {"ttl_s": float("inf")},
        {"ttl_s": "1"},
    ):
        with pytest.raises(ConfigurationError, match="configure_feedback_cache"):
            configure_feedback_cache(**bad)
    for i in range(5):
        remember({"prediction.id": f"id{i}", "model.name": "m"})
    configure_feedback_cache(max_size=2)
    assert 2 == len(predictions.cache)
    configure_feedback_cache(max_size=0)
    remember({"prediction.id": "new", "model.name": "m"})
    assert 0 == len(predictions.cache)


def test_remember_keeps_only_the_copied_fields() -> None:
    """model.*, slice.*, prediction.label/score are kept; feedback events are ignored."""
    remember(
        {
            "name": "predict",
            "prediction.id": "p1",
            "model.name": "m",
            "model.version": "v1",
            "slice.tenant": "t",
            "prediction.label": "cat",
            "prediction.score": 0.9,
            "user.id": 7,
            "score.top1": 0.9,
        }
    )
    remember({"name": "feedback", "prediction.id": "p2", "model.name": "m"})
    remember({"name": "predict", "model.name": "m"})
    remember({"name": "predict", "prediction.id": 12})
    assert {
        "model.name": "m",
        "model.version": "v1",
        "slice.tenant": "t",
        "prediction.label": "cat",
        "prediction.score": 0.9,
    } == predictions.cache.get("p1")
    assert (None, 1) == (predictions.cache.get("p2"), len(predictions.cache))


def test_feedback_fields_matched_with_delay() -> None:
    """Delay = feedback time - UUIDv7 time, for datetime, seconds and ISO timestamps."""
    made_ms = 1_730_000_000_000
    pid = uuid7(made_ms)
    remember({"prediction.id": pid, "model.name": "m", "slice.region": "eu"})
    at = datetime(2024, 10, 27, 12, 0, 5, tzinfo=UTC)
    for timestamp in (at, at.timestamp(), "2024-10-27T12:00:05+00:00"):
        fields, when = feedback_fields(
            pid, label="dog", reward=0.5, timestamp=timestamp, clicked=True
        )
        assert at.timestamp() == when
        assert {
            "prediction.id": pid,
            "model.name": "m",
            "slice.region": "eu",
            "feedback.matched": True,
            "feedback.label": "dog",
            "feedback.reward": 0.5,
            "feedback.delay_ms": at.timestamp() * 1000 - made_ms,
            "feedback.clicked": True,
        } == fields


def test_feedback_fields_default_now_and_unmatched() -> None:
    """Without a timestamp the delay is measured to now; unknown ids are unmatched."""
    pid = uuid7(1_730_000_000_000)
    fields, when = feedback_fields(pid, reward=1, now=1_730_000_010.0)
    assert {
        "prediction.id": pid,
        "feedback.matched": False,
        "feedback.reward": 1.0,
        "feedback.delay_ms": 10_000.0,
    } == fields
    assert when is None


@pytest.mark.parametrize(
    ("prediction_id", "kwargs", "reason"),
    [
        ("not-a-uuid", {}, "feedback: prediction id is not a UUIDv7"),
        (12345, {}, "feedback: prediction id is not a UUIDv7"),
        (uuid7(), {"reward": "lots"}, "feedback: reward is not a number"),
        (uuid7(), {"reward": [1]}, "feedback: reward is not a number"),
        (uuid7(), {"reward": float("nan")}, "feedback: reward is not finite"),
        (uuid7(), {"timestamp": "yesterday"}, "feedback: timestamp is not a point in time"),
    ],
)
def test_feedback_bad_input_is_counted(
    prediction_id: Any, kwargs: dict[str, Any], reason: str
) -> None:
    """Bad ids or values: counted with a reason; the fields are still produced."""
    fields, _ = feedback_fields(prediction_id, **kwargs)
    assert (1, [reason], str(prediction_id)) == (
        fields[ERR],
        fields[REASONS],
        fields["prediction.id"],
    )


def test_feedback_event_is_emitted() -> None:
    """feedback() emits one 'feedback' event with the copied fields and its timestamp."""
    from wideevents.testing import capture_events

    with capture_events() as events:
        with wideevents.event("predict") as ev:
            ev.model("clf", "v7")
            ev.scores([0.2, 0.8], labels=["no", "yes"])
            ev.add({"slice.tenant": "acme"})
            pid = ev.prediction_id
        at = datetime(2030, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
        feedback(pid, label="yes", reward=1.0, timestamp=at, source="click")
        feedback("garbage", label="no")
    predict, matched, unmatched = events
    assert ("feedback", "2030-01-02T03:04:05.678000Z") == (matched["name"], matched["timestamp"])
    made_ms = int(pid.replace("-", "")[:12], 16)
    assert {
        "prediction.id": pid,
        "model.name": "clf",
        "model.version": "v7",
        "slice.tenant": "acme",
        "prediction.label": "yes",
        "prediction.score": 0.8,
        "feedback.matched": True,
        "feedback.label": "yes",
        "feedback.correct": True,
        "feedback.reward": 1.0,
        "feedback.delay_ms": at.timestamp() * 1000 - made_ms,
        "feedback.source": "click",
    } == {
        k: matched[k]
        for k in matched
        if k.startswith(("prediction.", "model.", "slice.", "feedback."))
    }
    assert (False, 1, "garbage") == (
        unmatched["feedback.matched"],
        unmatched[ERR],
        unmatched["prediction.id"],
    )


def test_top_level_feedback_emits_the_same_event() -> None:
    """wideevents.feedback emits the feedback event built here."""
    from wideevents.testing import capture_events

    pid = uuid7()
    remember({"prediction.id": pid, "model.name": "m"})
    with capture_events() as events:
        wideevents.feedback(pid, reward=2)
    (emitted,) = events
    assert ("feedback", True, "m", 2.0) == (
        emitted["name"],
        emitted["feedback.matched"],
        emitted["model.name"],
        emitted["feedback.reward"],
    )
