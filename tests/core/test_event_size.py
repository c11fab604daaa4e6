"""The event size limit holds for every event, identity fields included (issue 16, item 20).

Identity fields (``name``, ``request.id``, ``error.message``, ...) are kept before any
other field, but a huge identity value is itself cut so that the serialised event stays
under ``Limits(max_event_bytes=)``; every cut is counted and named in ``meta.*``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

import wideevents
from tests.support.json_lines import parse_line
from wideevents import Limits
from wideevents._core.limits import IDENTITY_FIELDS
from wideevents.sinks import MemorySink

MB = 1_000_000
# Identity fields the user can set to any value (the pipeline owns duration_ms and the
# sample rate rule owns samplerate: a string there is dropped as bad_samplerate).
SETTABLE = sorted(IDENTITY_FIELDS - {"duration_ms", "samplerate"})


@pytest.fixture
def sink() -> Iterator[MemorySink]:
    memory = MemorySink()
    yield memory


def _emit(sink: MemorySink, limits: Limits, fields: dict[str, Any], name: str = "big"
          ) -> tuple[bytes, dict[str, Any], dict[str, Any]]:
    """One event through a real threaded pipeline: its JSON line, parsed event, stats."""
    wideevents.configure(service_name="size", sinks=[sink], limits=limits)
    with wideevents.event(name) as ev:
        ev.add(fields)
    assert wideevents.flush(10.0)
    stats = wideevents.stats()
    assert ([], {}) == ([k for k in stats["dropped"]], stats["errors"])
    assert 1 == len(sink.lines)
    line = sink.lines[0]
    return line, parse_line(line), stats


@pytest.mark.parametrize("field", SETTABLE)
def test_each_oversized_identity_field_is_cut_to_fit(sink: MemorySink, field: str) -> None:
    """A 2 MB value in any identity field (strings up to 4 MB allowed): the value is cut to a
    quarter of the 1 MB limit, the other field is kept, the event fits."""
    limits = Limits(max_string_bytes=4 * MB, max_event_bytes=MB)
    line, event, stats = _emit(sink, limits, {field: "x" * (2 * MB), "other": "y" * 100})
    assert len(line) < MB
    assert event[field] == "x" * len(event[field])
    assert MB // 4 - 2048 < len(event[field])  # cut to a quarter of the limit, no further
    assert "y" * 100 == event["other"]  # the huge identity value did not push it out
    assert [field] == event["meta.truncated_fields"]
    assert {"event_too_large": 1} == stats["fields"]["truncated"]


def test_oversized_name_is_cut_to_fit(sink: MemorySink) -> None:
    """event("x" * 2 MB) with strings allowed up to 4 MB: the name is cut, counted, named."""
    limits = Limits(max_string_bytes=4 * MB, max_event_bytes=MB)
    line, event, stats = _emit(sink, limits, {}, name="n" * (2 * MB))
    assert len(line) < MB
    assert 0 < len(event["name"]) < MB
    assert ["name"] == event["meta.truncated_fields"]
    assert {"event_too_large": 1} == stats["fields"]["truncated"]


def test_identity_list_value_is_cut_to_its_json_text(sink: MemorySink) -> None:
    """request.id = 128 strings of 60 KB (7.7 MB within the default limits): cut to fit."""
    line, event, stats = _emit(sink, Limits(), {"request.id": ["r" * 60_000] * 128})
    assert len(line) < MB
    assert event["request.id"].startswith('["rrrr')
    assert ["request.id"] == event["meta.truncated_fields"]
    assert {"event_too_large": 1} == stats["fields"]["truncated"]


def test_many_large_identity_fields_and_others(sink: MemorySink) -> None:
    """Every settable identity field at 64 KB (1.2 MB) plus 40 other 64 KB fields: the others
    go first, then the identity values are cut to equal shares; every cut is named."""
    fields: dict[str, Any] = {k: "i" * 65_000 for k in SETTABLE}
    fields.update({f"other.{n:02d}": "o" * 65_000 for n in range(40)})
    line, event, stats = _emit(sink, Limits(), fields)
    assert len(line) < MB
    assert [] == [k for k in fields if k.startswith("other.") and k in event]
    assert 40 == event["meta.dropped_count"]
    assert len(SETTABLE) == event["meta.truncated_count"]
    lengths = {len(event[k]) for k in SETTABLE}
    assert max(lengths) - min(lengths) <= 64  # equal shares (keys differ in length)
    assert {"event_too_large": 40} == stats["fields"]["dropped"]
    assert {"event_too_large": len(SETTABLE)} == stats["fields"]["truncated"]


def test_big_identity_values_that_fit_are_kept_whole(sink: MemorySink) -> None:
    """Only what is needed is cut: a small identity value next to a huge one is untouched."""
    limits = Limits(max_string_bytes=4 * MB, max_event_bytes=MB)
    line, event, _ = _emit(sink, limits, {"user.id": "u" * 1000, "error.message": "e" * 3 * MB})
    assert "u" * 1000 == event["user.id"]
    assert ["error.message"] == event["meta.truncated_fields"]
    assert len(line) < MB


@pytest.mark.parametrize("limit", [1024, 1500, 4096, 20_000])
def test_tiny_limits_hold_with_long_escaped_names(sink: MemorySink, limit: int) -> None:
    """At the smallest limits, with 30 dropped fields whose 250-byte names need JSON escapes
    (6 bytes per character), the event still fits: name lists shortened, counts exact."""
    fields: dict[str, Any] = {("\x01" * 240) + f"{n:03d}": "v" * 500 for n in range(30)}
    fields.update({k: "i" * 2000 for k in SETTABLE})
    line, event, stats = _emit(sink, Limits(max_event_bytes=limit), fields)
    assert len(line) < limit
    dropped = stats["fields"]["dropped"].get("event_too_large", 0)
    truncated = stats["fields"]["truncated"].get("event_too_large", 0)
    assert dropped == event["meta.dropped_count"]
    assert truncated == event.get("meta.truncated_count", 0)
    assert 30 <= dropped
    missing = [k for k in fields if k not in event]
    assert len(missing) <= dropped  # every field not in the event is counted
    assert set(event.get("meta.dropped_fields", [])) <= set(missing) | {
        "timestamp", "trace.trace_id", "trace.span_id", "service.name", "host.name",
        "process.pid", "duration_ms"}


def test_unicode_identity_value_is_cut_on_a_character_boundary(sink: MemorySink) -> None:
    """A 4-byte character value is cut whole: the line stays valid UTF-8 JSON."""
    limits = Limits(max_string_bytes=4 * MB, max_event_bytes=MB)
    line, event, _ = _emit(sink, limits, {"request.id": "\U0001f600" * 600_000})
    assert len(line) < MB
    assert set(event["request.id"]) == {"\U0001f600"}
    assert json.loads(line.decode("utf-8"))["request.id"] == event["request.id"]


def test_clean_small_fields_over_a_small_limit(sink: MemorySink) -> None:
    """6 KB of plain short fields with max_event_bytes=2048 (the fast path's case) fits."""
    line, event, stats = _emit(sink, Limits(max_event_bytes=2048),
                               {f"k{i}": "v" * 50 for i in range(100)})
    assert len(line) < 2048
    assert event["meta.dropped_count"] == stats["fields"]["dropped"]["event_too_large"]


def test_a_tiny_field_limit_drops_identity_fields_last(sink: MemorySink) -> None:
    """max_fields=10 with every identity field set: at most 10 fields; name, timestamp,
    duration and the trace ids stay; every field left out is counted."""
    fields: dict[str, Any] = {k: "id" for k in SETTABLE}
    fields.update({f"other.{n}": n for n in range(5)})
    line, event, stats = _emit(sink, Limits(max_fields=10), fields)
    assert len(event) <= 10
    assert {"name", "timestamp", "duration_ms", "trace.trace_id"} <= set(event)
    assert event["meta.dropped_count"] == stats["fields"]["dropped"]["too_many_fields"]
    assert len([k for k in fields if k not in event]) == event["meta.dropped_count"]


def test_cutting_an_identity_value_keeps_the_field_limit(sink: MemorySink) -> None:
    """An event at exactly max_fields whose identity value is cut: the meta fields that name
    the cut do not push it past max_fields (the largest other fields make room)."""
    limits = Limits(max_fields=30, max_string_bytes=4 * MB, max_event_bytes=MB)
    _, plain, _ = _emit(sink, limits, {})
    sink.events.clear()
    sink.lines.clear()
    room = 30 - len(plain) - 1  # the event's own fields, then others up to the limit
    fields: dict[str, Any] = {f"other.{n:02d}": "o" * (10 + n) for n in range(room)}
    fields["request.id"] = "r" * (2 * MB)
    line, event, stats = _emit(sink, limits, fields)
    assert 30 == len(plain) + len(fields)
    assert len(event) <= 30
    assert len(line) < MB
    assert ["request.id"] == event["meta.truncated_fields"]
    assert event["meta.dropped_count"] == stats["fields"]["dropped"]["event_too_large"]


def test_identity_value_of_escaped_characters_is_cut_to_fit(sink: MemorySink) -> None:
    """A value whose JSON is six times its text (control characters) is cut by its JSON size."""
    limits = Limits(max_string_bytes=4 * MB, max_event_bytes=MB)
    line, event, _ = _emit(sink, limits, {"request.id": "\x01" * (2 * MB), "other": "y"})
    assert len(line) < MB
    assert 0 < len(event["request.id"]) <= MB // 4 // 6
    assert set(event["request.id"]) == {"\x01"}
    assert "y" == event["other"]


def test_oversize_event_with_keys_that_do_not_compare(sink: MemorySink) -> None:
    """A processor adds an int key beside a str key of the same size to an oversize event:
    fitting it never compares keys (no internal_error), and it fits."""

    def add_odd_keys(fields: dict[Any, Any]) -> dict[Any, Any]:
        fields[1] = "x" * 1000
        fields["b"] = "x" * 1000
        return fields

    wideevents.configure(service_name="size", sinks=[sink], processors=[add_odd_keys],
                         limits=Limits(max_event_bytes=2048))
    with wideevents.event("odd"):
        pass
    assert wideevents.flush(10.0)
    stats = wideevents.stats()
    assert ({}, {}) == (stats["dropped"], stats["errors"])
    assert 1 == len(sink.lines)
    assert len(sink.lines[0]) < 2048
    assert 1 == stats["fields"]["dropped"]["event_too_large"]
