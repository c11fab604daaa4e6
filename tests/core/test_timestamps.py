"""Event timestamps: the units a number is read in, the RFC 3339 range, and what happens to
a value that is not a point in time (counted ``bad_timestamp``; the event keeps its start).

The rule under test is docs/schema.md, ``timestamp``: a number whose magnitude is at least
1e17 is nanoseconds, at least 1e14 microseconds, at least 1e11 milliseconds, else seconds.
The range is what RFC 3339 can write: section 5.6, ``date-fullyear = 4DIGIT``, so years
0001-9999 (year 0000 is not a year of the proleptic Gregorian calendar Python uses).
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import time
from typing import Any

import numpy as np
import pytest

import wideevents
from tests.support.hostile import Hostile
from wideevents._core import log
from wideevents.ml import feedback
from wideevents.testing import capture_events

# 1_700_000_000 s after the epoch is 2023-11-14T22:13:20Z (date -u -d @1700000000).
BASE = "2023-11-14T22:13:20"
STAMP = f"{BASE}.123456Z"


def _parse(stamp: str) -> dt.datetime:
    return dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)


def _stamped(value: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """One event with set_timestamp(value): the event and the pipeline's stats."""
    with capture_events() as events:
        with wideevents.event("stamped") as ev:
            ev.set_timestamp(value)
        stats = wideevents.stats()
    assert len(events) == 1
    return events[0], stats


@pytest.mark.parametrize(("value", "expected"), [
    (1_700_000_000, f"{BASE}.000000Z"),                    # seconds
    (1_700_000_000.123456, STAMP),                          # seconds with a fraction
    (1_700_000_000_123, f"{BASE}.123000Z"),                 # milliseconds
    (1_700_000_000_123.456, STAMP),                         # fractional milliseconds
    (1_700_000_000_123_456, STAMP),                         # microseconds
    (1_700_000_000_123_456_789, STAMP),                     # nanoseconds (time.time_ns())
    (1.700000000123456e18, STAMP),                          # nanoseconds as a float
    (np.int64(1_700_000_000_123_456_789), STAMP),
    (np.float64(1_700_000_000.123456), STAMP),
    (np.float32(1.0e9), "2001-09-09T01:46:40.000000Z"),
    (decimal.Decimal("1700000000.123456"), STAMP),
    (0, "1970-01-01T00:00:00.000000Z"),
    (-86_400, "1969-12-31T00:00:00.000000Z"),
    (-100_000_000_000, "1966-10-31T14:13:20.000000Z"),      # negative milliseconds
    (-62_135_596_800, "0001-01-01T00:00:00.000000Z"),       # the first second RFC 3339 writes
    (99_999_999_999, "5138-11-16T09:46:39.000000Z"),        # the largest number read as seconds
    (99_999_999_999_999, "5138-11-16T09:46:39.999000Z"),    # the largest read as milliseconds
    (253_402_300_799_999_999_999, "9999-12-31T23:59:59.999999Z"),  # the last ns of 9999
])
def test_numbers_are_read_in_the_unit_their_magnitude_says(value: Any, expected: str) -> None:
    """Seconds, milliseconds, microseconds and nanoseconds all give the same RFC 3339 text."""
    event, stats = _stamped(value)
    assert expected == event["timestamp"]
    assert {} == stats["fields"]["dropped"]
    assert {} == stats["dropped"]


def test_time_ns_is_accepted() -> None:
    """set_timestamp(time.time_ns()) gives now, not a dropped event (issue 16, item 14)."""
    before = dt.datetime.now(dt.UTC)
    event, stats = _stamped(time.time_ns())
    after = dt.datetime.now(dt.UTC)
    assert before - dt.timedelta(milliseconds=1) <= _parse(event["timestamp"]) <= after
    assert ({}, {}) == (stats["dropped"], stats["fields"]["dropped"])


def test_time_in_milliseconds_is_not_year_58899() -> None:
    """time.time() * 1000 is read as milliseconds: a four-digit year, now."""
    before = dt.datetime.now(dt.UTC)
    event, _ = _stamped(time.time() * 1000)
    after = dt.datetime.now(dt.UTC)
    assert before - dt.timedelta(milliseconds=2) <= _parse(event["timestamp"]) <= after


@pytest.mark.parametrize(("value", "expected"), [
    (dt.datetime(2024, 1, 2, 3, 4, 5, 123456), "2024-01-02T03:04:05.123456Z"),  # naive = UTC
    (dt.datetime(2024, 1, 2, 5, 4, 5, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2))),
     "2024-01-02T03:04:05.123456Z"),
    (dt.datetime(2024, 1, 1, 22, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
     "2024-01-02T03:04:05.000000Z"),
    (dt.datetime.min, "0001-01-01T00:00:00.000000Z"),
    (dt.datetime.max, "9999-12-31T23:59:59.999999Z"),
    (dt.datetime.max.replace(tzinfo=dt.timezone(dt.timedelta(hours=5))),
     "9999-12-31T18:59:59.999999Z"),
    (dt.date(2024, 1, 2), "2024-01-02T00:00:00.000000Z"),
    ("2024-01-02T03:04:05.123456Z", "2024-01-02T03:04:05.123456Z"),
    ("2024-01-02T05:04:05+02:00", "2024-01-02T03:04:05.000000Z"),
    (np.datetime64("2024-01-02T03:04:05.123456789", "ns"), "2024-01-02T03:04:05.123456Z"),
    (np.datetime64("2024-01-02", "D"), "2024-01-02T00:00:00.000000Z"),
    (np.datetime64("2024-03", "M"), "2024-03-01T00:00:00.000000Z"),
    (np.datetime64("2024", "Y"), "2024-01-01T00:00:00.000000Z"),
    (np.datetime64(1_700_000_000_123, "ms"), f"{BASE}.123000Z"),
    (np.datetime64("0001-01-01", "D"), "0001-01-01T00:00:00.000000Z"),
])
def test_points_in_time_of_every_kind(value: Any, expected: str) -> None:
    """datetimes (naive = UTC, aware, year 1 and 9999), dates, ISO 8601 text, datetime64."""
    event, stats = _stamped(value)
    assert expected == event["timestamp"]
    assert {} == stats["fields"]["dropped"]


def test_pandas_timestamps() -> None:
    """A pandas Timestamp (a datetime subclass) is used; pandas' NaT is a bad timestamp."""
    pd = pytest.importorskip("pandas")
    event, _ = _stamped(pd.Timestamp("2024-01-02T05:04:05.123456789+02:00"))
    assert "2024-01-02T03:04:05.123456Z" == event["timestamp"]
    event, stats = _stamped(pd.NaT)
    assert 1 == stats["fields"]["dropped"].get("bad_timestamp")


BAD = [
    True, False, np.bool_(True),                          # bools are not points in time
    math.nan, math.inf, -math.inf, np.float64("nan"),
    1e300, -1e300, 10**30, -(10**30),                     # far beyond any unit
    10**21,                                               # nanoseconds in the year 33658
    -62_135_596_801,                                      # one second before year 1
    253_402_300_800 * 10**9,                              # nanoseconds: year 10000
    dt.datetime.max.replace(tzinfo=dt.timezone(dt.timedelta(hours=-5))),  # year 10000 in UTC
    dt.datetime.min.replace(tzinfo=dt.timezone(dt.timedelta(hours=5))),   # year 0 in UTC
    np.datetime64("NaT"), np.datetime64(10**15, "D"), np.datetime64("20000", "Y"),
    "not a time", "", "1700000000", None, [1_700_000_000], object(), Hostile(),
]


@pytest.mark.parametrize("value", BAD, ids=[f"{n}-{type(v).__name__}" for n, v in enumerate(BAD)])
def test_a_bad_timestamp_is_counted_and_the_event_keeps_its_start(value: Any) -> None:
    """Not a point in time RFC 3339 can write: counted once, logged, the event is kept."""
    before = dt.datetime.now(dt.UTC)
    event, stats = _stamped(value)
    after = dt.datetime.now(dt.UTC)
    assert before - dt.timedelta(milliseconds=1) <= _parse(event["timestamp"]) <= after
    assert {"bad_timestamp": 1} == stats["fields"]["dropped"]
    assert {} == stats["dropped"]


def test_a_bad_timestamp_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    """The first bad timestamp is named on the wideevents logger, with the counter to watch."""
    caplog.set_level("WARNING", logger="wideevents")
    log.reset()  # log_once is per process: earlier tests may have logged this key
    _stamped(10**30)
    _stamped(10**31)
    messages = [r.getMessage() for r in caplog.records if "bad_timestamp" in r.getMessage()]
    assert 1 == len(messages)
    assert "1000000000000000000000000000000" in messages[0]


def test_a_bad_timestamp_keeps_an_earlier_good_one() -> None:
    """A rejected value does not undo the timestamp set before it."""
    with capture_events() as events:
        with wideevents.event("twice") as ev:
            ev.set_timestamp(1_700_000_000.123456)
            ev.set_timestamp(math.nan)
    assert STAMP == events[0]["timestamp"]


def test_set_timestamp_after_finish_is_late() -> None:
    """A timestamp set after the event finished is counted late, like any late field."""
    with capture_events() as events:
        with wideevents.event("done") as ev:
            pass
        ev.set_timestamp(1_700_000_000)
        stats = wideevents.stats()
    assert BASE not in events[0]["timestamp"]
    assert {"late": 1} == stats["fields"]["dropped"]


# -- feedback(timestamp=...) and model(trained_at=...) use the same rule ----------------------
PREDICTION_ID = "018bcfe5-6800-7000-8000-000000000000"  # UUIDv7 of 1_700_000_000_000 ms (0x18bcfe56800)


def test_feedback_timestamp_in_milliseconds() -> None:
    """feedback(timestamp=ms): the event's time and feedback.delay_ms read it as milliseconds."""
    with capture_events() as events:
        feedback(PREDICTION_ID, label=1, timestamp=1_700_000_002_500)
    e = events[0]
    assert (f"{BASE[:-2]}22.500000Z", 2500.0) == (e["timestamp"], e["feedback.delay_ms"])
    assert "meta.ml_error_count" not in e


@pytest.mark.parametrize("value", [time.time_ns, lambda: time.time_ns() // 1000])
def test_feedback_timestamp_in_nanoseconds_and_microseconds(value: Any) -> None:
    """feedback(timestamp=time.time_ns()) is now, not an event lost to internal_error."""
    before = dt.datetime.now(dt.UTC)
    with capture_events() as events:
        feedback(PREDICTION_ID, label=1, timestamp=value())
        stats = wideevents.stats()
    after = dt.datetime.now(dt.UTC)
    assert 1 == len(events)
    assert before - dt.timedelta(milliseconds=1) <= _parse(events[0]["timestamp"]) <= after
    assert ({}, {}) == (stats["dropped"], stats["fields"]["dropped"])


def test_feedback_with_an_out_of_range_timestamp_is_counted_and_kept() -> None:
    """feedback(timestamp=1e30): the event is emitted at its own time, the problem counted."""
    before = dt.datetime.now(dt.UTC)
    with capture_events() as events:
        feedback(PREDICTION_ID, label=1, timestamp=1e30)
        stats = wideevents.stats()
    e = events[0]
    assert before - dt.timedelta(milliseconds=1) <= _parse(e["timestamp"])
    assert (1, ["feedback: timestamp is not a point in time"]) == (
        e["meta.ml_error_count"], e["meta.ml_error_reasons"])
    assert {"bad_timestamp": 1} == stats["fields"]["dropped"]


def test_model_trained_at_in_milliseconds() -> None:
    """model(trained_at=ms) writes an RFC 3339 model.trained_at with a four-digit year."""
    with capture_events() as events:
        with wideevents.event("predict") as ev:
            ev.model("ranker", "v1", trained_at=1_700_000_000_123)
    assert f"{BASE}.123000Z" == events[0]["model.trained_at"]
    assert "meta.ml_error_count" not in events[0]
