"""The request-thread path against hostile input: exceptions whose ``__str__``, ``__repr__``,
``__class__`` or metaclass misbehave, BaseExceptions passing through ``with event()``,
``in_context``/``instrument`` with hostile callables, ``current_event()`` across threads.

Whatever happens, the user's exception comes out unchanged (the very object), the event is
emitted, and nothing of ours raises into the caller.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import wideevents
from tests.support.hostile import Hostile
from wideevents.testing import capture_events


class HostileCallable(Hostile):
    """Callable, but every attribute read that misses raises RuntimeError."""

    def __call__(self, *args: Any, **kwargs: Any) -> str:
        return "called"


class StrRaises(Exception):
    def __str__(self) -> str:
        raise RuntimeError("str")


class StrAndReprRaise(Exception):
    def __str__(self) -> str:
        raise KeyboardInterrupt  # a BaseException from __str__ must not escape either

    def __repr__(self) -> str:
        raise RuntimeError("repr")


class ClassRaises(Exception):
    @property  # type: ignore[misc]
    def __class__(self) -> Any:  # noqa: D105 - isinstance() reads it
        raise RuntimeError("__class__")


class HostileMeta(type):
    """A metaclass whose class name and module raise SystemExit when read."""

    def __getattribute__(cls, name: str) -> Any:
        if name in ("__qualname__", "__module__", "__name__"):
            raise SystemExit(f"no {name}")
        return super().__getattribute__(name)


class MetaRaises(Exception, metaclass=HostileMeta):
    pass


def _raise_through_event(exc: BaseException, **configure: Any) -> dict[str, Any]:
    """Raise ``exc`` inside ``with event()``; assert the same object comes out; the event."""
    with capture_events() as events:
        if configure.get("capture_stacktrace"):
            wideevents._core.runtime.active_pipeline().capture_stacktrace = True
        with pytest.raises(BaseException) as caught:
            with wideevents.event("request"):
                raise exc
    assert caught.value is exc
    assert 1 == len(events)
    return events[0]


@pytest.mark.parametrize(("exc", "message"), [
    (StrRaises("x"), "StrRaises('x')"),
    (StrAndReprRaise("x"), "<unrepresentable StrAndReprRaise>"),
    (ValueError("m" * 5000), "m" * 1024),
])
def test_error_message_of_a_misbehaving_exception(exc: BaseException, message: str) -> None:
    """__str__ raising (even a BaseException) falls back to repr, then to the type name."""
    event = _raise_through_event(exc)
    assert (True, message) == (event["error"], event["error.message"])


def test_exception_whose_class_property_raises() -> None:
    """An exception whose __class__ raises is recorded with its real type."""
    event = _raise_through_event(ClassRaises("boom"))
    assert (True, f"{__name__}.ClassRaises", "boom") == (
        event["error"], event["error.type"], event["error.message"])


@pytest.mark.parametrize("stacktrace", [False, True])
def test_exception_whose_metaclass_raises_system_exit(stacktrace: bool) -> None:
    """A metaclass raising SystemExit when its name is read: the event is still emitted with
    the error recorded, and the user's exception (not the SystemExit) propagates."""
    event = _raise_through_event(MetaRaises("meta"), capture_stacktrace=stacktrace)
    assert (True, "meta") == (event["error"], event["error.message"])
    assert event["error.type"].startswith("<")  # the repr of the class, as best it can
    assert ("exception.stacktrace" in event) is False


def test_keyboard_interrupt_from_a_real_sigint() -> None:
    """A real SIGINT inside the block: KeyboardInterrupt is recorded and re-raised."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with capture_events() as events:
            with pytest.raises(KeyboardInterrupt):
                with wideevents.event("request"):
                    os.kill(os.getpid(), signal.SIGINT)
                    time.sleep(10)  # the handler raises here, at once
    finally:
        signal.signal(signal.SIGINT, previous)
    assert [("KeyboardInterrupt", True)] == [(e["error.type"], e["error"]) for e in events]
    assert events[0]["duration_ms"] < 5000


@pytest.mark.parametrize(("code", "message"), [(3, "3"), ("bye", "bye")])
def test_system_exit_is_recorded_and_re_raised(code: Any, message: str) -> None:
    """sys.exit() inside the block: recorded as SystemExit, the exit goes on unchanged."""
    with capture_events() as events:
        with pytest.raises(SystemExit) as caught:
            with wideevents.event("job"):
                sys.exit(code)
    assert code == caught.value.code
    assert [("SystemExit", message)] == [(e["error.type"], e["error.message"]) for e in events]


def test_cancelled_task_is_recorded_and_stays_cancelled() -> None:
    """A real task.cancel() while awaiting inside the block: recorded, the task is cancelled."""

    async def handler(started: asyncio.Event) -> None:
        with wideevents.event("request"):
            started.set()
            await asyncio.sleep(30)

    async def main() -> bool:
        started = asyncio.Event()
        task = asyncio.ensure_future(handler(started))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return task.cancelled()

    with capture_events() as events:
        assert asyncio.run(main()) is True
    assert ["asyncio.exceptions.CancelledError"] == [e["error.type"] for e in events]


def test_generator_closed_early_is_not_an_error() -> None:
    """GeneratorExit through a block (a consumer stopped early) is not recorded as an error."""

    def stream() -> Iterator[int]:
        with wideevents.event("stream"):
            yield 1
            yield 2

    with capture_events() as events:
        gen = stream()
        assert 1 == next(gen)
        gen.close()
    assert [("stream", None)] == [(e["name"], e.get("error")) for e in events]


# -- in_context and instrument with hostile callables -----------------------------------------
def test_in_context_with_a_hostile_callable() -> None:
    """in_context() of an object whose attributes raise: wraps without raising, calls it."""
    with capture_events():
        with wideevents.event("request"):
            run = wideevents.in_context(HostileCallable())
            assert "called" == run()


def test_instrument_with_a_hostile_callable() -> None:
    """instrument() of an object whose attributes raise: one event per call, named by repr."""
    with capture_events() as events:
        wrapped = wideevents.instrument(HostileCallable())
        assert "called" == wrapped()
    assert ["<unrepresentable HostileCallable>"] == [e["name"] for e in events]


def test_instrument_with_a_hostile_name() -> None:
    """instrument(<object whose bool() and repr() raise>) names the events safely."""
    with capture_events() as events:

        @wideevents.instrument(Hostile())  # type: ignore[call-overload]
        def work() -> int:
            return 7

        assert 7 == work()
    assert ["<unrepresentable Hostile>"] == [e["name"] for e in events]


def test_instrumented_generator_called_with_bad_arguments_emits_its_event() -> None:
    """A generator whose call raises (wrong arguments) still finishes its event, with error."""

    @wideevents.instrument("gen")
    def numbers(n: int) -> Iterator[int]:
        yield from range(n)

    with capture_events() as events:
        with pytest.raises(TypeError):
            list(numbers())  # type: ignore[call-arg]
        stats = wideevents.stats()
    assert [("gen", "TypeError")] == [(e["name"], e.get("error.type")) for e in events]
    assert 1 == stats["emitted"]


def test_instrumented_async_generator_called_with_bad_arguments_emits_its_event() -> None:
    """The async-generator counterpart: the event is finished with the TypeError."""

    @wideevents.instrument("agen")
    async def numbers(n: int) -> Any:
        for i in range(n):
            yield i

    async def consume() -> None:
        async for _ in numbers():  # type: ignore[call-arg]
            pass

    with capture_events() as events:
        with pytest.raises(TypeError):
            asyncio.run(consume())
    assert [("agen", "TypeError")] == [(e["name"], e.get("error.type")) for e in events]


# -- current_event() across threads ------------------------------------------------------------
def test_current_event_is_not_inherited_by_a_plain_thread() -> None:
    """A thread started inside an event does not see it (contextvars start empty there)."""
    seen: list[Any] = []
    with capture_events() as events:
        with wideevents.event("request") as ev:
            t = threading.Thread(target=lambda: seen.append(wideevents.current_event()))
            t.start()
            t.join()
            wideevents.add(main_thread=True)
    assert 1 == len(seen)
    assert seen[0] is not ev
    assert seen[0].recording is False
    assert [True] == [e["main_thread"] for e in events]


def test_in_context_gives_every_worker_the_same_event() -> None:
    """Through in_context, pool threads see the very same Event object and add to it."""
    with capture_events() as events:
        with wideevents.event("request") as ev:
            with ThreadPoolExecutor(4) as pool:
                found = list(pool.map(wideevents.in_context(
                    lambda i: (wideevents.current_event(), wideevents.add({f"w{i}": i}))[0]),
                    range(8)))
    assert all(f is ev for f in found)
    assert {f"w{i}": i for i in range(8)} == {k: v for k, v in events[0].items()
                                              if k.startswith("w")}


def test_in_context_after_the_event_finished_counts_late() -> None:
    """A pool task that runs after its event finished: its add() is counted late."""
    with capture_events() as events:
        with wideevents.event("request"):
            task = wideevents.in_context(lambda: wideevents.add(late_field=1))
        task()
        stats = wideevents.stats()
    assert "late_field" not in events[0]
    assert {"late": 1} == stats["fields"]["dropped"]
