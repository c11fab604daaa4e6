"""@wideevents.instrument on plain handler functions outside any web framework."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import wideevents
from wideevents.testing import capture_events


@pytest.fixture()
def events() -> Iterator[list[dict[str, Any]]]:
    with capture_events() as captured:
        yield captured


def test_sync_handler_one_event_per_call(events: list[dict[str, Any]]) -> None:
    """Each call is one event with the decorator's name and fields, the result passes through."""
    @wideevents.instrument("consume", queue="orders")
    def consume(message: dict[str, Any]) -> str:
        time.sleep(0.01)
        wideevents.add({"message.id": message["id"]})
        return f"done-{message['id']}"

    results = [consume({"id": i}) for i in range(3)]
    assert ["done-0", "done-1", "done-2"] == results
    assert [("consume", "orders", i) for i in range(3)] == [
        (e["name"], e["queue"], e["message.id"]) for e in events]
    assert all(e["duration_ms"] >= 10 for e in events)


def test_async_handlers_concurrently_keep_their_own_fields(events: list[dict[str, Any]]) -> None:
    """Concurrent async calls each get their own event with only their own fields."""
    @wideevents.instrument("rpc.Predict")
    async def predict(request_id: int) -> int:
        await asyncio.sleep((request_id * 7 % 5) / 1000)
        wideevents.add({"request.n": request_id})
        await asyncio.sleep(0)
        wideevents.current_event().incr("steps")
        return request_id * 2

    async def main() -> list[int]:
        return list(await asyncio.gather(*(predict(i) for i in range(50))))

    assert [i * 2 for i in range(50)] == asyncio.run(main())
    assert {i: 1 for i in range(50)} == {e["request.n"]: e["steps"] for e in events}
    assert 50 == len({e["trace.trace_id"] for e in events})


def test_thread_pool_consumers_keep_their_own_fields(events: list[dict[str, Any]]) -> None:
    """A queue consumer run on a thread pool makes one independent event per message."""
    @wideevents.instrument("worker.handle")
    def handle(n: int) -> int:
        wideevents.add({"job.n": n})
        time.sleep(0.001)
        wideevents.add({"job.square": n * n})
        return n

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(range(40)) == list(pool.map(handle, range(40)))
    assert {n: n * n for n in range(40)} == {e["job.n"]: e["job.square"] for e in events}


def test_exceptions_are_recorded_and_reraised_unchanged(events: list[dict[str, Any]]) -> None:
    """Sync and async handlers: the same exception object propagates; the event records it."""
    raised = ValueError("bad payload")

    @wideevents.instrument("sync.fail")
    def sync_fail() -> None:
        raise raised

    @wideevents.instrument("async.fail")
    async def async_fail() -> None:
        raise raised

    with pytest.raises(ValueError) as sync_info:
        sync_fail()
    with pytest.raises(ValueError) as async_info:
        asyncio.run(async_fail())
    assert sync_info.value is raised and async_info.value is raised
    assert [("sync.fail", True, "ValueError", "bad payload"),
            ("async.fail", True, "ValueError", "bad payload")] == [
        (e["name"], e["error"], e["error.type"], e["error.message"]) for e in events]


def test_nested_handlers_form_a_trace(events: list[dict[str, Any]]) -> None:
    """An instrumented call inside another is its child: same trace, parent id = outer span."""
    @wideevents.instrument("inner")
    def inner() -> None:
        wideevents.add({"level": "inner"})

    @wideevents.instrument("outer")
    def outer() -> None:
        inner()

    outer()
    child, parent = events
    assert ("inner", "outer") == (child["name"], parent["name"])
    assert (parent["trace.trace_id"], parent["trace.span_id"]) == (
        child["trace.trace_id"], child["trace.parent_id"])
    assert "trace.parent_id" not in parent


class Servicer:
    """A gRPC-style servicer (module level, so the qualname is 'Servicer.<method>')."""

    @wideevents.instrument
    def Predict(self, request: str) -> str:  # noqa: N802 - gRPC method style
        """Answer a prediction."""
        return request.upper()

    @wideevents.instrument()
    async def Stream(self) -> str:  # noqa: N802
        return "ok"


def test_bare_decorator_names_and_metadata(events: list[dict[str, Any]]) -> None:
    """Without a name the qualname is used; wraps keeps metadata; async stays a coroutine fn."""
    servicer = Servicer()
    assert ("ABC", "ok") == (servicer.Predict("abc"), asyncio.run(servicer.Stream()))
    assert ["Servicer.Predict", "Servicer.Stream"] == [e["name"] for e in events]
    assert ("Predict", "Answer a prediction.") == (Servicer.Predict.__name__,
                                                   Servicer.Predict.__doc__)
    assert inspect.iscoroutinefunction(Servicer.Stream)


def test_no_event_is_left_current_after_a_call(events: list[dict[str, Any]]) -> None:
    """After an instrumented call returns, no event is current any more."""
    @wideevents.instrument("h")
    def handler() -> bool:
        return wideevents.current_event().recording

    assert (True, False) == (handler(), wideevents.current_event().recording)


def test_generator_handler_event_covers_the_stream(events: list[dict[str, Any]]) -> None:
    """A server-streaming handler (generator) should record fields added while streaming."""
    @wideevents.instrument("stream")
    def stream() -> Iterator[int]:
        wideevents.add({"stream.started": True})
        yield 1

    assert [1] == list(stream())
    assert [True] == [e.get("stream.started") for e in events]


def test_async_generator_handler_event_covers_the_stream(events: list[dict[str, Any]]) -> None:
    """An async server-streaming handler should record fields added while streaming."""
    @wideevents.instrument("astream")
    async def stream() -> AsyncIterator[int]:
        wideevents.add({"stream.started": True})
        yield 1

    async def main() -> list[int]:
        return [x async for x in stream()]

    assert [1] == asyncio.run(main())
    assert [True] == [e.get("stream.started") for e in events]
