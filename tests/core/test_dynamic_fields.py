"""Dynamic fields (issue 22): ``configure(dynamic_fields={name: fn})``, each function called
on the thread that starts an event, its exceptions caught and counted per field, its calls
and time in ``stats()["dynamic_fields"]``.

The behaviour matched is libhoney's dynamic fields (libhoney-py ``libhoney/client.py``,
``Client.add_dynamic_field``: "the function will be called each time an event is
created"), the mechanism behind Beeline's per-event callbacks.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import wideevents
from wideevents import ConfigurationError
from wideevents.sinks import MemorySink


def _configure(fields: dict[str, Callable[[], Any]]) -> MemorySink:
    sink = MemorySink()
    wideevents.configure(service_name="svc", sinks=[sink], dynamic_fields=fields)
    return sink


def _events(sink: MemorySink) -> list[dict[str, Any]]:
    assert wideevents.flush(5.0)
    return list(sink.events)


def test_each_event_gets_a_fresh_value() -> None:
    """The function runs once per event, when it starts: two events, two values."""
    counter = iter(range(100))
    sink = _configure({"n.started": lambda: next(counter)})
    for _ in range(2):
        with wideevents.event("e"):
            pass
    assert [0, 1] == [e["n.started"] for e in _events(sink)]
    assert 2 == wideevents.stats()["dynamic_fields"]["n.started"]["calls"]


def test_called_on_the_thread_that_starts_the_event() -> None:
    """The callback sees the emitting thread (a request thread), not the pipeline's worker."""
    sink = _configure({"thread.name": lambda: threading.current_thread().name})

    def request() -> None:
        with wideevents.event("e"):
            pass

    t = threading.Thread(target=request, name="request-thread-7")
    t.start()
    t.join()
    assert ["request-thread-7"] == [e["thread.name"] for e in _events(sink)]


def test_value_is_taken_when_the_event_starts() -> None:
    """Evaluated at the start: a change during the event is not seen."""
    state = {"v": "before"}
    sink = _configure({"state": lambda: state["v"]})
    with wideevents.event("e"):
        state["v"] = "after"
    assert ["before"] == [e["state"] for e in _events(sink)]


def test_an_exception_is_caught_and_counted_per_field() -> None:
    """A raising callback: the event is emitted without that field, the others are there,
    and stats() counts the error under that field only."""
    def broken() -> int:
        raise RuntimeError("psutil went away")

    sink = _configure({"broken": broken, "ok": lambda: 1})
    for _ in range(3):
        with wideevents.event("e"):
            pass
    events = _events(sink)
    assert [(False, 1)] * 3 == [("broken" in e, e["ok"]) for e in events]
    stats = wideevents.stats()["dynamic_fields"]
    assert ((3, 3), (3, 0)) == ((stats["broken"]["calls"], stats["broken"]["errors"]),
                                (stats["ok"]["calls"], stats["ok"]["errors"]))


def test_a_slow_callback_shows_in_stats() -> None:
    """A callback that takes 20 ms: its total_ms in stats() is at least 20 ms per call, so a
    slow callback on the request path is visible."""
    sink = _configure({"slow": lambda: time.sleep(0.02) or 1, "fast": lambda: 2})
    for _ in range(3):
        with wideevents.event("e"):
            pass
    assert 3 == len(_events(sink))
    stats = wideevents.stats()["dynamic_fields"]
    assert stats["slow"]["total_ms"] >= 3 * 20.0 * 0.95
    assert stats["fast"]["total_ms"] < stats["slow"]["total_ms"]


def test_values_are_snapshotted_and_normalised() -> None:
    """A mutable value is copied when the event starts; a numpy value becomes a number."""
    shared = [1]
    sink = _configure({"shared": lambda: shared, "np": lambda: np.float64(0.5)})
    with wideevents.event("e"):
        shared.append(2)
    (event,) = _events(sink)
    assert ([1], 0.5, float) == (event["shared"], event["np"], type(event["np"]))


def test_precedence_static_dynamic_trace_then_explicit() -> None:
    """static < dynamic < add_trace-inherited < fields given to the event."""
    sink = MemorySink()
    wideevents.configure(service_name="svc", sinks=[sink], static_fields={"a": "static",
                                                                         "b": "static"},
                         dynamic_fields={"a": lambda: "dynamic", "b": lambda: "dynamic",
                                         "c": lambda: "dynamic"})
    with wideevents.event("outer"):
        wideevents.add_trace(b="trace")
        with wideevents.event("inner", c="explicit"):
            pass
    inner = next(e for e in _events(sink) if e["name"] == "inner")
    assert ("dynamic", "trace", "explicit") == (inner["a"], inner["b"], inner["c"])


def test_no_stats_section_without_dynamic_fields() -> None:
    """Without dynamic fields, stats() has no dynamic_fields key (nothing to show)."""
    wideevents.configure(service_name="svc", sinks=[MemorySink()])
    assert "dynamic_fields" not in wideevents.stats()


@pytest.mark.parametrize("fields,fix", [
    ([("a", len)], "use a dict of field name"),
    ({"name": lambda: 1}, "cannot be a dynamic field name"),
    ({"trace.trace_id": lambda: 1}, "cannot be a dynamic field name"),
    ({"": lambda: 1}, "cannot be a dynamic field name"),
    ({"x": 3}, "is not callable"),
])
def test_bad_dynamic_fields_fail_loudly(fields: Any, fix: str) -> None:
    """configure() refuses a wrong dynamic_fields with a message saying how to fix it."""
    with pytest.raises(ConfigurationError, match=fix):
        wideevents.configure(sinks="none", dynamic_fields=fields)


def test_callbacks_survive_many_threads() -> None:
    """8 threads x 200 events: every event has its value and the calls add up exactly."""
    sink = _configure({"thread": lambda: threading.current_thread().name})
    alive = threading.Barrier(8)  # all at once: threads really overlap

    def work() -> None:
        alive.wait()
        for _ in range(200):
            with wideevents.event("e"):
                pass

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    events = _events(sink)
    assert (1600, 8) == (len(events), len({e["thread"] for e in events}))
    assert 1600 == wideevents.stats()["dynamic_fields"]["thread"]["calls"]


def test_a_callback_that_starts_an_event_does_not_recurse() -> None:
    """A callback that itself emits an event (an instrumented helper): that inner event gets
    no dynamic fields, so one event leads to exactly one callback call and one inner event
    (before the fix: ~166 nested events, up to the recursion limit)."""
    def instrumented_helper() -> int:
        with wideevents.event("inner"):
            pass
        return 1

    sink = _configure({"x": instrumented_helper})
    with wideevents.event("outer"):
        pass
    events = _events(sink)
    assert (["inner", "outer"], [None, 1]) == (
        [e["name"] for e in events], [e.get("x") for e in events])
    assert {"calls": 1, "errors": 0} == {
        k: wideevents.stats()["dynamic_fields"]["x"][k] for k in ("calls", "errors")}
