"""Carrying events across boundaries: ``instrument`` (one event per call of a function,
generators included) and ``in_context`` (run a function in a thread inside the caller's
event).

Wrapping never raises, whatever the callable's attributes do (functools.wraps copies only
what can be read), and every event these open is finished: a generator whose call raises
(wrong arguments) still emits its event, with the error.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar, cast, overload

from .event import _current, event
from .log import log_once
from .normalize import safe_repr

__all__ = ["in_context", "instrument"]

F = TypeVar("F", bound=Callable[..., Any])


def _wraps(fn: Any, wrapper: Any) -> Any:
    """``functools.update_wrapper``, or the bare wrapper when ``fn``'s attributes raise
    something other than AttributeError (which is all update_wrapper tolerates)."""
    try:
        return functools.update_wrapper(wrapper, fn)
    except Exception as exc:  # noqa: BLE001 - a user object's __getattr__ may raise anything
        log_once("wraps", "wideevents: could not copy the name and docstring of %s: %s",
                 safe_repr(fn, 100), safe_repr(exc, 200))
        return wrapper


def _event_name(name: Any, fn: Any) -> Any:
    """``name``, else ``fn``'s qualified name, else its repr; never raises."""
    if name is not None and not (type(name) is str and not name):
        return name  # event() turns a non-string name into its repr
    try:
        qualname = getattr(fn, "__qualname__", None)
    except Exception:  # noqa: BLE001 - a user object's __getattr__ may raise anything
        qualname = None
    return qualname if type(qualname) is str and qualname else safe_repr(fn, 100)


def _kind(fn: Any) -> str:
    """"asyncgen", "gen", "coro" or "sync"; "sync" when introspection itself raises."""
    try:
        if inspect.isasyncgenfunction(fn):
            return "asyncgen"
        if inspect.isgeneratorfunction(fn):
            return "gen"
        if inspect.iscoroutinefunction(fn):
            return "coro"
    except Exception:  # noqa: BLE001 - inspect reads attributes that may raise anything
        pass
    return "sync"


def in_context(fn: F) -> F:
    """Wrap ``fn`` to run inside the caller's current event (for thread pools)."""
    ctx = contextvars.copy_context()

    def run(*args: Any, **kwargs: Any) -> Any:
        # A copy per call: one Context cannot be entered by two threads at once.
        return ctx.copy().run(fn, *args, **kwargs)

    return cast(F, _wraps(fn, run))


@overload
def instrument(name: F, /) -> F: ...


@overload
def instrument(name: str | None = None, /, **fields: Any) -> Callable[[F], F]: ...


def instrument(name: Any = None, /, **fields: Any) -> Any:
    """Decorator: one event per call of a sync or async function (named ``name``)."""
    if callable(name):
        return instrument(None)(name)

    def decorate(fn: F) -> F:
        ev_name = _event_name(name, fn)
        kind = _kind(fn)
        if kind == "asyncgen":
            return cast(F, _wraps(fn, _instrument_async_generator(fn, ev_name, fields)))
        if kind == "gen":
            return cast(F, _wraps(fn, _instrument_generator(fn, ev_name, fields)))
        if kind == "coro":

            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with event(ev_name, **fields):
                    return await fn(*args, **kwargs)

            return cast(F, _wraps(fn, async_wrapper))

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with event(ev_name, **fields):
                return fn(*args, **kwargs)

        return cast(F, _wraps(fn, wrapper))

    return decorate


def _instrument_generator(fn: Callable[..., Any], ev_name: str, fields: dict[str, Any]) -> Any:
    """One event per iteration of a generator (a streaming handler), active only while the
    generator body runs, so the consumer's code between items is not inside it."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ev = event(ev_name, **fields)
        error: BaseException | None = None
        arg: Any = None
        try:
            inner = fn(*args, **kwargs)  # inside the try: a call that raises is recorded
            method: Callable[[Any], Any] = inner.send
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

    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        ev = event(ev_name, **fields)
        error: BaseException | None = None
        arg: Any = None
        try:
            inner = fn(*args, **kwargs)  # inside the try: a call that raises is recorded
            method: Callable[[Any], Any] = inner.asend
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
