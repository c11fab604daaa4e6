"""The pipeline's per-event step on its own: no queue, no worker thread, no sink."""

from __future__ import annotations

import threading
from typing import Any

import orjson

from wideevents._core.prepare import Preparer, Tally
from wideevents._core.redact import Redactor


def _raw(**fields: Any) -> tuple[dict[str, Any], int]:
    base: dict[str, Any] = {"timestamp": None, "name": "e", "duration_ms": 1.5}
    base.update(fields)
    return base, 1_700_000_000_123_456_789


def test_a_clean_event_becomes_one_record_with_its_json() -> None:
    """Timestamp formatted from the start time, fields as given, JSON serialised once."""
    tally = Tally()
    threads = threading.active_count()
    records = Preparer().prepare_all([_raw(user=7, ok=True)], tally)
    assert 1 == len(records)
    assert {"timestamp": "2023-11-14T22:13:20.123456Z", "name": "e", "duration_ms": 1.5,
            "user": 7, "ok": True} == records[0].fields
    assert records[0].fields == orjson.loads(records[0].json)
    assert ({}, {}, {}, {}) == (tally.dropped, tally.errors, tally.fields_dropped,
                                tally.fields_truncated)
    assert threads == threading.active_count()


def test_processors_sampler_redaction_and_limits_in_order() -> None:
    """Each stage runs in the documented order and every loss lands in the tally."""
    seen: list[str] = []

    def processor(ev: dict[str, Any]) -> dict[str, Any] | None:
        seen.append("processor")
        if ev.get("drop"):
            return None
        ev["added"] = "by processor"
        return ev

    def failing(ev: dict[str, Any]) -> dict[str, Any]:
        raise ValueError("broken processor")

    def sampler(ev: dict[str, Any]) -> int:
        seen.append("sampler")
        assert ev["added"] == "by processor"  # processors run first
        return 0 if ev.get("sample_out") else 4

    preparer = Preparer(processors=[processor, failing], sampler=sampler,
                        redactor=Redactor(["password"]))
    tally = Tally()
    chunk = [_raw(password="hunter2", samplerate="2.6"), _raw(drop=True),
             _raw(sample_out=True), _raw(value=float("nan"))]
    records = preparer.prepare_all(chunk, tally)
    assert [r.fields.get("password") for r in records] == ["[REDACTED]", None]
    assert [12, 4] == [r.fields["samplerate"] for r in records]  # "2.6" -> 3, then x4
    assert records[1].fields["meta.nonfinite_fields"] == ["value"]
    assert {"processor": 1, "sampled": 1} == tally.dropped
    assert {"processor_error": 4 - 1} == tally.errors  # the failing one ran for 3 events
    assert ["processor", "sampler"] * 1 == seen[:2]


def test_an_event_that_cannot_be_prepared_is_counted_not_raised() -> None:
    """Something that is not an event's fields is dropped as internal_error; the rest go on."""
    good = _raw(ok=1)
    bad: tuple[Any, int] = (["not", "a", "dict"], 0)
    tally = Tally()
    records = Preparer().prepare_all([bad, good], tally)
    assert [1] == [r.fields["ok"] for r in records]
    assert {"internal_error": 1} == tally.dropped
