"""Carrying events across boundaries: ``instrument`` (one event per call of a function,
generators included) and ``in_context`` (run a function in a thread inside the caller's
event)."""

from __future__ import annotations

import contextvars
import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar, cast, overload

from .event import _current, event
from .normalize import safe_repr

__all__ = ["in_context", "instrument"]

F = TypeVar("F", bound=Callable[..., Any])


def in_context(fn: F) -> F:
    """Wrap ``fn`` to run inside the caller's current event (for thread pools)."""
    ctx = contextvars.copy_context()

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        # A copy per call: one Context cannot be entered by two threads at once.
        return ctx.copy().run(fn, *args, **kwargs)

    return cast(F, run)


@overload
def instrument(name: F, /) -> F: ...


@overload
def instrument(name: str | None = None, /, **fields: Any) -> Callable[[F], F]: ...


def instrument(name: Any = None, /, **fields: Any) -> Any:
    """Decorator: one event per call of a sync or async function (named ``name``)."""
    if callable(name):
        return instrument(None)(name)

    def decorate(fn: F) -> F:
        ev_name = name or getattr(fn, "__qualname__", None) or safe_repr(fn, 100)
        if inspect.isasyncgenfunction(fn):
            return cast(F, _instrument_async_generator(fn, ev_name, fields))
        if inspect.isgeneratorfunction(fn):
            return cast(F, _instrument_generator(fn, ev_name, fields))
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with event(ev_name, **fields):
                    return await fn(*args, **kwargs)

            return cast(F, async_wrapper)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with event(ev_name, **fields):
                return fn(*args, **kwargs)

        return cast(F, wrapper)

    return decorate


def _instrument_generator(fn: Callable[..., Any], ev_name: str, fields: dict[str, Any]) -> Any:
    """One event per iteration of a generator (a streaming handler), active only while the
    generator body runs, so the consumer's code between items is not inside it."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ev = event(ev_name, **fields)
        inner = fn(*args, **kwargs)
        error: BaseException | None = None
        method: Callable[[Any], Any] = inner.send
        arg: Any = None
        try:
            while True:
                token = _current.set(ev)
                try:
                    item = method(arg)
                except StopIteration as stop:
                    return stop.value
                finally:
                    _current.reset(token)
                try:
                    arg = yield item
                    method = inner.send
                except GeneratorExit:
                    inner.close()
                    raise
                except BaseException as exc:  # noqa: BLE001 - thrown in: pass it on
                    method, arg = inner.throw, exc
        except GeneratorExit:
            raise
        except BaseException as exc:
            error = exc
            raise
        finally:
            ev.finish(error)

    return wrapper


def _instrument_async_generator(fn: Callable[..., Any], ev_name: str,
                                fields: dict[str, Any]) -> Any:
    """The async-generator counterpart of :func:`_instrument_generator`."""

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        ev = event(ev_name, **fields)
        inner = fn(*args, **kwargs)
        error: BaseException | None = None
        method: Callable[[Any], Any] = inner.asend
        arg: Any = None
        try:
            while True:
                token = _current.set(ev)
                try:
                    item = await method(arg)
                except StopAsyncIteration:
                    return
                finally:
                    _current.reset(token)
                try:
                    arg = yield item
                    method = inner.asend
                except GeneratorExit:
                    await inner.aclose()
                    raise
                except BaseException as exc:  # noqa: BLE001 - thrown in: pass it on
                    method, arg = inner.athrow, exc
        except GeneratorExit:
            raise
        except BaseException as exc:
            error = exc
            raise
        finally:
            ev.finish(error)

    return wrapper
