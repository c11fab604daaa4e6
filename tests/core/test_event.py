"""Events: fields, timing, errors, trace ids, nesting and context propagation."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import wideevents
from wideevents.testing import capture_events

HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")


def test_event_has_name_timestamp_duration_and_fields() -> None:
    """An event carries its name, an RFC 3339 UTC start time, its duration and its fields."""
    before = dt.datetime.now(dt.UTC)
    with capture_events() as events:
        with wideevents.event("predict", user_id=7) as ev:
            ev.add({"model.version": "v3", "user.id": 42})
            ev["cache_hit"] = False
            time.sleep(0.02)
    after = dt.datetime.now(dt.UTC)
    assert len(events) == 1
    e = events[0]
    assert e["name"] == "predict"
    assert e["user_id"] == 7
    assert (e["model.version"], e["user.id"], e["cache_hit"]) == ("v3", 42, False)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", e["timestamp"])
    start = dt.datetime.strptime(e["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=dt.UTC)
    assert before - dt.timedelta(milliseconds=1) <= start <= after
    assert 20.0 <= e["duration_ms"] < 2000.0


def test_error_fields_and_exception_reraised_unchanged() -> None:
    """A raising block records error fields and re-raises the very same exception."""
    original = KeyError("missing-feature")
    with capture_events() as events:
        with pytest.raises(KeyError) as caught:
            with wideevents.event("predict"):
                raise original
    assert caught.value is original
    e = events[0]
    assert (e["error"], e["error.type"], e["error.message"]) == (True, "KeyError",
                                                                  "'missing-feature'")
    assert "exception.stacktrace" not in e


def test_custom_exception_type_is_qualified_by_module() -> None:
    """Non-builtin exception types are named with their module."""

    class ModelNotLoaded(Exception):
        pass

    with capture_events() as events:
        with pytest.raises(ModelNotLoaded):
            with wideevents.event("predict"):
                raise ModelNotLoaded("ranker v3")
    assert events[0]["error.type"] == f"{__name__}.{ModelNotLoaded.__qualname__}"
    assert events[0]["error.message"] == "ranker v3"


def test_incr_and_timer_accumulate() -> None:
    """incr adds up; repeated timers of one stage add up into timing.<stage>_ms."""
    with capture_events() as events:
        with wideevents.event("batch") as ev:
            ev.incr("cache.misses")
            ev.incr("cache.misses", 2)
            for _ in range(2):
                with ev.timer("fetch"):
                    time.sleep(0.01)
    e = events[0]
    assert e["cache.misses"] == 3
    assert 20.0 <= e["timing.fetch_ms"] <= e["duration_ms"]


def test_root_and_nested_trace_ids() -> None:
    """Roots have W3C ids and no parent; a nested event is a child in the same trace."""
    with capture_events() as events:
        with wideevents.event("request") as outer:
            with wideevents.event("inference") as inner:
                pass
    child, root = events
    assert (child["name"], root["name"]) == ("inference", "request")
    assert HEX32.match(root["trace.trace_id"]) and HEX16.match(root["trace.span_id"])
    assert "trace.parent_id" not in root
    assert child["trace.trace_id"] == root["trace.trace_id"]
    assert child["trace.parent_id"] == root["trace.span_id"]
    assert child["trace.span_id"] != root["trace.span_id"]
    assert (outer.span_id, inner.parent_id) == (root["trace.span_id"], root["trace.span_id"])


def test_two_roots_have_different_traces() -> None:
    """Two sequential root events start two traces."""
    with capture_events() as events:
        with wideevents.event("a"):
            pass
        with wideevents.event("b"):
            pass
    assert events[0]["trace.trace_id"] != events[1]["trace.trace_id"]


def test_add_trace_reaches_nested_events_only() -> None:
    """add_trace fields go to the current event and events started under it, not siblings."""
    with capture_events() as events:
        with wideevents.event("request"):
            wideevents.add_trace({"slice.tenant": "acme"})
            with wideevents.event("child"):
                with wideevents.event("grandchild"):
                    pass
        with wideevents.event("sibling"):
            pass
    by_name = {e["name"]: e for e in events}
    assert [by_name[n].get("slice.tenant") for n in ("request", "child", "grandchild", "sibling")] \
        == ["acme", "acme", "acme", None]


def test_module_add_and_current_event_outside_any_event() -> None:
    """Outside an event, add() is a no-op and current_event() is a non-recording event."""
    with capture_events() as events:
        wideevents.add(x=1)
        ev = wideevents.current_event()
        assert ev is not None and ev.recording is False
        ev.add({"a": 1})
        ev.incr("b")
        with ev.timer("t"):
            pass
        ev.scores([0.1, 0.9])
    assert events == []


def test_module_add_goes_to_current_event() -> None:
    """wideevents.add() adds to the innermost active event."""
    with capture_events() as events:
        with wideevents.event("outer"):
            wideevents.add({"where": "outer"})
            with wideevents.event("inner"):
                wideevents.add(where="inner")
    assert {e["name"]: e["where"] for e in events} == {"outer": "outer", "inner": "inner"}


def test_values_are_snapshotted_when_added() -> None:
    """Mutating an array, list or dict after adding it does not change the event."""
    arr = np.array([1.0, 2.0, 3.0])
    items = [1, 2]
    mapping = {"a": 1}
    with capture_events() as events:
        with wideevents.event("x") as ev:
            ev.add({"arr": arr, "items": items, "m": mapping})
            arr[0] = 99.0
            items.append(3)
            mapping["a"] = 2
    e = events[0]
    assert (e["arr"], e["items"], e["m.a"]) == ([1.0, 2.0, 3.0], [1, 2], 1)


def test_late_fields_are_counted_not_raised() -> None:
    """Fields added after the event finished are dropped and counted as late."""
    pipeline = wideevents.configure(sinks=[wideevents.sinks.MemorySink()])
    with wideevents.event("x") as ev:
        pass
    ev.add({"too": "late"}, more=1)
    ev["later"] = 2
    assert wideevents.flush(5.0)
    assert pipeline.stats()["fields"]["dropped"]["late"] == 3
    assert "too" not in pipeline.sinks[0].events[0]


def test_instrument_sync_and_async() -> None:
    """@instrument makes one event per call of sync and async functions."""

    @wideevents.instrument("score")
    def score(x: int) -> int:
        wideevents.add(x=x)
        return x * 2

    @wideevents.instrument
    async def fetch(x: int) -> int:
        wideevents.add(x=x)
        await asyncio.sleep(0)
        return x + 1

    with capture_events() as events:
        assert score(3) == 6
        assert asyncio.run(fetch(4)) == 5
    assert [(e["name"], e["x"]) for e in events] == [
        ("score", 3), (fetch.__qualname__, 4)]


def test_instrument_records_errors() -> None:
    """An instrumented function that raises produces an error event and re-raises."""

    @wideevents.instrument("boom")
    def boom() -> None:
        raise ValueError("no")

    with capture_events() as events:
        with pytest.raises(ValueError):
            boom()
    assert (events[0]["error"], events[0]["error.type"]) == (True, "ValueError")


def test_in_context_carries_event_into_threads() -> None:
    """in_context runs a function in a thread pool inside the caller's event."""
    with capture_events() as events:
        with wideevents.event("request"):
            with ThreadPoolExecutor(4) as pool:
                futures = [pool.submit(wideevents.in_context(wideevents.add), {f"w{i}": i})
                           for i in range(8)]
                for f in futures:
                    f.result()
    assert {k: v for k, v in events[0].items() if k.startswith("w")} == {
        f"w{i}": i for i in range(8)}


def test_no_bleed_between_1000_asyncio_tasks() -> None:
    """1,000 concurrent asyncio tasks each keep their own fields."""

    async def handle(i: int) -> None:
        with wideevents.event("req", task=i):
            for step in range(3):
                wideevents.add({f"step{step}": i})
                await asyncio.sleep(0)

    async def main() -> None:
        await asyncio.gather(*(handle(i) for i in range(1000)))

    with capture_events() as events:
        asyncio.run(main())
    assert len(events) == 1000
    for e in events:
        assert (e["step0"], e["step1"], e["step2"]) == (e["task"],) * 3
    assert len({e["trace.trace_id"] for e in events}) == 1000


def test_no_bleed_between_32_threads() -> None:
    """32 threads emitting concurrently each keep their own fields."""
    barrier = threading.Barrier(32)

    def work(i: int) -> None:
        barrier.wait()
        for j in range(20):
            with wideevents.event("req", thread=i, j=j):
                wideevents.add(echo=i * 1000 + j)
                time.sleep(0)

    with capture_events() as events:
        threads = [threading.Thread(target=work, args=(i,)) for i in range(32)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(events) == 32 * 20
    assert all(e["echo"] == e["thread"] * 1000 + e["j"] for e in events)
    assert all("trace.parent_id" not in e for e in events)


def test_inject_adds_traceparent_of_current_event() -> None:
    """inject() writes a W3C traceparent naming the current event's trace and span."""
    with capture_events():
        with wideevents.event("call") as ev:
            headers = wideevents.inject({"accept": "json"})
    assert headers == {"accept": "json", "traceparent": f"00-{ev.trace_id}-{ev.span_id}-01"}
    assert wideevents.inject({}) == {}


def test_prediction_id_is_uuid7_and_recorded() -> None:
    """prediction_id is a UUIDv7 string, stable per event, and recorded as prediction.id."""
    with capture_events() as events:
        with wideevents.event("predict") as ev:
            first = ev.prediction_id
            assert ev.prediction_id == first
    parsed = uuid.UUID(first)
    assert (parsed.version, events[0]["prediction.id"]) == (7, first)
    ms = int(first.replace("-", "")[:12], 16)
    assert abs(ms / 1000 - time.time()) < 60


def test_set_timestamp_overrides_start_time() -> None:
    """set_timestamp takes Unix seconds or a datetime and becomes the event's timestamp."""
    with capture_events() as events:
        with wideevents.event("a") as ev:
            ev.set_timestamp(1_700_000_000.25)
        with wideevents.event("b") as ev:
            ev.set_timestamp(dt.datetime(2024, 1, 2, 3, 4, 5, 600000, tzinfo=dt.UTC))
    assert [e["timestamp"] for e in events] == [
        "2023-11-14T22:13:20.250000Z", "2024-01-02T03:04:05.600000Z"]


def test_instrumented_generator_event_spans_the_stream_only() -> None:
    """A generator's event covers its body; the consumer's code between items is outside it."""

    @wideevents.instrument("stream")
    def stream(n: int):  # type: ignore[no-untyped-def]
        for i in range(n):
            wideevents.add({f"item{i}": i})
            yield i
        raise RuntimeError("upstream closed")

    with capture_events() as events:
        seen = []
        with pytest.raises(RuntimeError):
            for item in stream(2):
                seen.append((item, wideevents.current_event().recording))
        partial = stream(5)
        next(partial)
        partial.close()
    assert seen == [(0, False), (1, False)]
    failed, closed = events
    assert (failed["item0"], failed["item1"], failed["error.type"]) == (0, 1, "RuntimeError")
    assert "error" not in closed and closed["item0"] == 0 and "item1" not in closed
