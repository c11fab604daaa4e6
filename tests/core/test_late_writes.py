"""Writes after ``finish()``: once an event is queued its dict is the worker's, so a timer
that exits late, or any other write path, must not touch it; each late write is counted
``stats()["fields"]["dropped"]["late"]`` (issue 16, item 17)."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import wideevents
from wideevents.sinks import MemorySink

PREDICTION_ID = "018bcfe5-6800-7000-8000-000000000000"


@pytest.fixture
def sink() -> Iterator[MemorySink]:
    """A threaded pipeline (a real worker) into a MemorySink."""
    memory = MemorySink()
    wideevents.configure(service_name="late", sinks=[memory])
    yield memory


def _fields_stats() -> tuple[dict[str, int], dict[str, int]]:
    stats = wideevents.stats()
    return stats["fields"]["dropped"], stats["dropped"]


def test_timer_exited_after_finish_is_late_and_not_in_the_event(sink: MemorySink) -> None:
    """A timer still open when the event finishes records nothing and counts one late field."""
    with wideevents.event("request") as ev:
        timer = ev.timer("slow")
        timer.__enter__()
    timer.__exit__(None, None, None)  # deterministically after finish()
    assert wideevents.flush(5.0)
    assert [None] == [e.get("timing.slow_ms") for e in sink.events]
    assert ({"late": 1}, {}) == _fields_stats()


def test_every_write_path_after_finish_is_late(sink: MemorySink) -> None:
    """add, []=, incr, add_trace, a timer, set_timestamp and an ML helper: each write counted."""
    with wideevents.event("request", kept=1) as ev:
        pass
    ev.add({"a": 1, "b": [1, 2]}, c=3)                   # 3
    ev["d"] = 4                                          # 1
    ev.incr("e")                                         # 1
    ev.add_trace({"f": 1}, g=2)                          # 2
    with ev.timer("t"):                                  # 1
        pass
    ev.set_timestamp(1_700_000_000)                      # 1
    ev.model("ranker", "v1")                             # 3: prediction.id, model.name, .version
    assert wideevents.flush(5.0)
    keys = set(sink.events[0])
    assert set() == keys & {"a", "b", "c", "d", "e", "f", "g", "timing.t_ms", "model.name",
                            "prediction.id"}
    assert ({"late": 12}, {}) == _fields_stats()


def test_the_queued_dict_never_changes_after_finish(sink: MemorySink) -> None:
    """While the worker holds the event (inside a processor), a timer another thread kept open
    across finish() exits: the dict the worker holds stays as it was."""
    seen: list[tuple[dict[str, Any], dict[str, Any]]] = []
    worker_has_it = threading.Event()
    timer_exited = threading.Event()

    def watch(fields: dict[str, Any]) -> dict[str, Any]:
        before = dict(fields)
        worker_has_it.set()
        assert timer_exited.wait(10)
        seen.append((before, dict(fields)))
        return fields

    wideevents.configure(service_name="late", sinks=[sink], processors=[watch])
    entered = threading.Event()
    finished = threading.Event()

    def hold_timer(ev: wideevents.Event) -> None:
        with ev.timer("held"):
            entered.set()
            assert worker_has_it.wait(10)  # exits while the worker holds the finished event
        timer_exited.set()

    with wideevents.event("request") as ev:
        helper = threading.Thread(target=hold_timer, args=(ev,))
        helper.start()
        assert entered.wait(10)
    finished.set()
    wideevents.flush(0.0)  # wake the worker now rather than at its next interval
    helper.join(10)
    assert wideevents.flush(5.0)
    assert 1 == len(seen)
    before, after = seen[0]
    assert before == after
    assert "timing.held_ms" not in after
    assert ({"late": 1}, {}) == _fields_stats()


def test_300_timers_exiting_after_finish_on_another_thread(sink: MemorySink) -> None:
    """300 events, each with a timer another thread exits right after finish(): no event lost
    to internal_error, none carries the late timer, and exactly 300 late fields."""
    n = 300
    opened = threading.Semaphore(0)
    go = [threading.Event() for _ in range(n)]
    events: list[wideevents.Event] = []

    def helper() -> None:
        for i in range(n):
            while len(events) <= i:
                threading.Event().wait(0.0005)
            with events[i].timer("held"):
                opened.release()
                assert go[i].wait(10)

    thread = threading.Thread(target=helper)
    thread.start()
    for i in range(n):
        with wideevents.event("request", i=i) as ev:
            events.append(ev)
            assert opened.acquire(timeout=10)
        go[i].set()  # the helper exits the timer now: after finish()
    thread.join(30)
    assert wideevents.flush(10.0)
    assert list(range(n)) == sorted(e["i"] for e in sink.events)
    assert [] == [e["i"] for e in sink.events if "timing.held_ms" in e]
    assert ({"late": n}, {}) == _fields_stats()


def test_concurrent_writers_lose_nothing_silently(sink: MemorySink) -> None:
    """Four threads incr() the current event while the main thread finishes events under them:
    every increment is either in a delivered event or counted late, never lost or fatal."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads as often as CPython allows
    current: list[wideevents.Event] = []
    attempts = [0] * 4
    stop = threading.Event()

    def writer(tid: int) -> None:
        key = f"w{tid}"
        while not stop.is_set():
            ev = current[-1]
            ev.incr(key)
            attempts[tid] += 1

    try:
        with wideevents.event("first") as first:
            current.append(first)
            threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
            for t in threads:
                t.start()
        for i in range(100):
            with wideevents.event("request", i=i) as ev:
                current.append(ev)
                threading.Event().wait(0.0002)
        stop.set()
        for t in threads:
            t.join(10)
    finally:
        sys.setswitchinterval(old)
    assert wideevents.flush(10.0)
    fields_dropped, dropped = _fields_stats()
    delivered = sum(e.get(f"w{t}", 0) for e in sink.events for t in range(4))
    assert 101 == len(sink.events)
    assert {} == dropped
    assert sum(attempts) == delivered + fields_dropped.get("late", 0)


def test_prediction_id_read_after_finish(sink: MemorySink) -> None:
    """Reading prediction_id after finish(): the event's own id is returned and not late; an
    id first made after finish() is in no event, so it counts one late field."""
    with wideevents.event("with-id") as with_id:
        made = with_id.prediction_id
    with wideevents.event("given") as given:
        given.add({"prediction.id": PREDICTION_ID})
    with wideevents.event("without-id") as without:
        pass
    assert (made, PREDICTION_ID) == (with_id.prediction_id, given.prediction_id)
    late_id = without.prediction_id
    assert wideevents.flush(5.0)
    by_name = {e["name"]: e.get("prediction.id") for e in sink.events}
    assert {"with-id": made, "given": PREDICTION_ID, "without-id": None} == by_name
    assert late_id == without.prediction_id  # stable once made
    assert ({"late": 1}, {}) == _fields_stats()
