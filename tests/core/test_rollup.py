"""Rollups (issue 22): ``ev.rollup`` / ``wideevents.rollup`` sum into the event and, as
``rollup.<field>``, into its root; concurrent children lose nothing; bad values are counted.

The semantics are Honeycomb's Beeline rollups: beeline-go ``trace/trace.go``
``Span.AddRollupField`` adds to the span's own field and to the root span's
``rollup.<field>``."""

from __future__ import annotations

import asyncio
import contextvars
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import wideevents
from wideevents.sinks import MemorySink


@pytest.fixture
def sink() -> Iterator[MemorySink]:
    memory = MemorySink()
    wideevents.configure(service_name="rollups", sinks=[memory])
    yield memory


def _by_name(sink: MemorySink) -> dict[str, dict[str, object]]:
    assert wideevents.flush(5.0)
    return {str(e["name"]): e for e in sink.events}


def test_child_work_sums_into_the_root(sink: MemorySink) -> None:
    """Each event gets its own sum; the root gets rollup.<field> over itself and every
    descendant, however deep."""
    with wideevents.event("request") as request:
        request.rollup("db.calls", 1)
        with wideevents.event("stage"):
            wideevents.rollup("db.calls", 2)
            with wideevents.event("leaf") as leaf:
                leaf.rollup("db.calls", 4).rollup("db.ms", 1.5)
    events = _by_name(sink)
    assert (1, 7) == (events["request"]["db.calls"], events["request"]["rollup.db.calls"])
    assert (2, False) == (events["stage"]["db.calls"], "rollup.db.calls" in events["stage"])
    assert (4, 1.5) == (events["leaf"]["db.calls"], events["leaf"]["db.ms"])
    assert 1.5 == events["request"]["rollup.db.ms"]


def test_types_follow_the_values(sink: MemorySink) -> None:
    """int + int stays an int; a float makes a float; numpy scalars count as numbers."""
    with wideevents.event("e") as ev:
        ev.rollup("ints", 2).rollup("ints", 3)
        ev.rollup("mixed", 2).rollup("mixed", 0.5)
        ev.rollup("numpy", np.int64(4)).rollup("numpy", np.float32(0.5))
    event = _by_name(sink)["e"]
    assert [(5, int), (2.5, float), (4.5, float)] == [
        (event[k], type(event[k])) for k in ("ints", "mixed", "numpy")]


@pytest.mark.parametrize("value", ["3", None, True, float("nan"), float("inf"), [1]])
def test_a_value_that_is_not_a_finite_number_is_dropped_and_counted(
        sink: MemorySink, value: object) -> None:
    """Not a finite number (a bool included): the field is not touched, the drop counted."""
    with wideevents.event("e") as ev:
        ev.rollup("n", 1)
        ev.rollup("n", value)  # type: ignore[arg-type]
    assert (1, 1) == (_by_name(sink)["e"]["n"], wideevents.stats()["fields"]["dropped"]
                      ["bad_rollup"])


def test_a_field_holding_text_is_not_summed(sink: MemorySink) -> None:
    """Rolling up into a field the code set to text keeps the text and counts the drop."""
    with wideevents.event("e") as ev:
        ev["n"] = "many"
        ev.rollup("n", 1)
    event = _by_name(sink)["e"]
    assert ("many", 1) == (event["n"], event["rollup.n"])
    assert 1 == wideevents.stats()["fields"]["dropped"]["bad_rollup"]


def test_outside_an_event_it_does_nothing(sink: MemorySink) -> None:
    """wideevents.rollup() with no event, and on the non-recording stand-in: no effect."""
    wideevents.rollup("n", 1)
    wideevents.current_event().rollup("n", 1)
    assert wideevents.flush(5.0)
    assert [] == sink.events


def test_a_child_outliving_its_root_counts_late(sink: MemorySink) -> None:
    """A background child adding after the request finished: its own field is kept, the
    root's part is dropped and counted late."""
    def scenario() -> None:
        with wideevents.event("request"):
            child = wideevents.event("background")
        child.rollup("n", 1)
        child.finish()

    # In a copy of the context: nothing of this scenario stays current for the next test.
    contextvars.copy_context().run(scenario)
    events = _by_name(sink)
    assert (1, False) == (events["background"]["n"], "rollup.n" in events["request"])
    assert 1 == wideevents.stats()["fields"]["dropped"]["late"]


def test_concurrent_threads_lose_no_addition(sink: MemorySink) -> None:
    """8 threads x 5,000 rollups into one root, with a 1 µs switch interval so that threads
    switch between reading and storing: the sum is exact."""
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        with wideevents.event("request") as request:
            start = threading.Barrier(8)

            def work() -> None:
                start.wait()
                for _ in range(5_000):
                    request.rollup("n", 1)

            with ThreadPoolExecutor(8) as pool:
                for f in [pool.submit(work) for _ in range(8)]:
                    f.result()
    finally:
        sys.setswitchinterval(previous)
    event = _by_name(sink)["request"]
    assert (40_000, 40_000) == (event["n"], event["rollup.n"])


def test_asyncio_tasks_add_into_the_request(sink: MemorySink) -> None:
    """100 tasks, each its own child event, sum into the request's rollup field."""
    async def child(i: int) -> None:
        with wideevents.event("task"):
            await asyncio.sleep(0)
            wideevents.rollup("items", i)

    async def request() -> None:
        with wideevents.event("request"):
            await asyncio.gather(*(child(i) for i in range(100)))

    asyncio.run(request())
    assert wideevents.flush(5.0)
    (root,) = [e for e in sink.events if e["name"] == "request"]
    assert sum(range(100)) == root["rollup.items"]


def test_a_sum_that_overflows_is_dropped_and_counted(sink: MemorySink) -> None:
    """A float added to an int too large for a float (OverflowError in Python): the rollup
    never raises into the caller, the field keeps its value and the drop is counted, for
    ev.rollup, wideevents.rollup and a client call's several fields at once."""
    from wideevents._core import rollup as core_rollup

    huge = 10**400
    with wideevents.event("e") as ev:
        ev["n"] = huge
        ev.rollup("n", 1.5)
        wideevents.rollup("n", 2.5)
        core_rollup.add_numbers(ev, ("n", "m"), core_rollup.root_keys(("n", "m")), (0.5, 1))
    event = _by_name(sink)["e"]
    # An integer past 2^64 - 1 becomes its decimal string (docs/schema.md, "Values").
    assert (str(huge), 1) == (event["n"], event["m"])
    assert 3 == wideevents.stats()["fields"]["dropped"]["bad_rollup"]


def test_a_float_sum_that_overflows_to_infinity_is_dropped_and_counted(
        sink: MemorySink) -> None:
    """1e308 + 1e308 is inf in IEEE 754 arithmetic (no OverflowError, unlike an int too
    large for a float): a rollup never stores a non-finite total; the field keeps its last
    finite value and the drop is counted, for ev.rollup, wideevents.rollup and a client
    call's several fields at once (then the other fields still add). Counted per field
left unchanged, as for any bad rollup: ``n`` and ``rollup.n`` (the same event) each time."""
    from wideevents._core import rollup as core_rollup

    with wideevents.event("e") as ev:
        ev.rollup("n", 1e308)
        ev.rollup("n", 1e308)
        wideevents.rollup("n", 1e308)
        core_rollup.add_numbers(ev, ("n", "m"), core_rollup.root_keys(("n", "m")), (1e308, 1))
    event = _by_name(sink)["e"]
    assert (1e308, 1e308, 1, 1) == (event["n"], event["rollup.n"], event["m"],
                                     event["rollup.m"])
    assert 6 == wideevents.stats()["fields"]["dropped"]["bad_rollup"]
