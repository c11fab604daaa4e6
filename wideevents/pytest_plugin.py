"""The wideevents pytest plugin: the ``wideevents_events`` fixture and its assertion helpers.

Installed with wideevents (entry point ``pytest11``), so any project's tests can write::

    def test_checkout(wideevents_events):
        checkout(cart)
        ev = wideevents_events.one("POST /checkout")
        wideevents_events.assert_fields(ev, {"cart.items": 3, "http.response.status_code": 200})

During the test, every finished event is prepared and delivered on the thread that
finishes it (a synchronous pipeline into a memory sink), so it is in ``wideevents_events``
as soon as its ``with`` block (or request) ends: no flush, no sleep. Events carry what
production events carry after the worker's step: the configured pipeline's static fields,
dynamic fields and redaction rules (``configure()`` called before the test, e.g. when the
application module is imported), values normalised, limits applied. Sampling is off unless
the test asks to keep the configured sampler, to test it::

    @pytest.mark.wideevents(keep_sampler=True)
    def test_errors_are_always_kept(wideevents_events): ...

Kept events then carry ``samplerate`` and the others are absent, as in production. The
previous pipeline is put back, untouched, when the test ends. A test that calls
``wideevents.configure()`` itself replaces the capture: configure first (in a fixture the
test requests before ``wideevents_events``), then capture.

Loading the plugin imports the ``wideevents`` package (no thread, no pipeline, no
configuration: those happen when a test uses the fixture); its modules are imported by
the fixture when a test uses it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, overload

import pytest

if TYPE_CHECKING:
    from .sinks import MemorySink

__all__ = ["CapturedEvents", "wideevents_events"]

_MISSING = object()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "wideevents(keep_sampler=False): options of the wideevents_events fixture "
        "(keep_sampler=True: sample with the configured pipeline's sampler)")


class CapturedEvents(Sequence[dict[str, Any]]):
    """The events finished during the test, in the order they finished, with helpers.

    Fields are matched by exact equality; ``fields`` takes dotted names
    (``{"http.client.count": 3}``), keywords take plain ones (``user_id=7``).
    """

    def __init__(self, sink: MemorySink, pipeline: Any) -> None:
        self._sink = sink
        self._pipeline = pipeline

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        return self._sink.events[index]

    def __len__(self) -> int:
        return len(self._sink.events)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(list(self._sink.events))

    def __repr__(self) -> str:
        return f"<CapturedEvents {self.names()}>"

    def names(self) -> list[str]:
        """The events' names, in order."""
        return [str(e.get("name")) for e in self._sink.events]

    def find(self, name: str | None = None, /, fields: Mapping[str, Any] | None = None,
             **kwargs: Any) -> list[dict[str, Any]]:
        """The events named ``name`` (any name when None) holding every given field."""
        wanted = {**(fields or {}), **kwargs}
        return [e for e in self._sink.events
                if (name is None or e.get("name") == name)
                and all(e.get(k, _MISSING) == v for k, v in wanted.items())]

    def one(self, name: str | None = None, /, fields: Mapping[str, Any] | None = None,
            **kwargs: Any) -> dict[str, Any]:
        """The only event matching (see :meth:`find`); AssertionError naming what was
        captured when there is none or more than one."""
        __tracebackhide__ = True  # the failure points at the test's line (pytest docs)
        found = self.find(name, fields, **kwargs)
        if len(found) != 1:
            wanted = {**(fields or {}), **kwargs}
            raise AssertionError(
                f"expected exactly one event{f' named {name!r}' if name else ''}"
                f"{f' with {wanted!r}' if wanted else ''}, found {len(found)}; "
                f"captured: {self.names()}")
        return found[0]

    def values(self, key: str, name: str | None = None) -> list[Any]:
        """``key``'s value in each event (named ``name``) that has it, in order."""
        return [e[key] for e in self._sink.events
                if key in e and (name is None or e.get("name") == name)]

    def assert_fields(self, event: Mapping[str, Any], expected: Mapping[str, Any]) -> None:
        """AssertionError listing every field of ``expected`` that ``event`` lacks or holds
        with another value (``<absent>`` when missing)."""
        __tracebackhide__ = True
        wrong = {k: (v, event.get(k, "<absent>")) for k, v in expected.items()
                 if event.get(k, _MISSING) != v}
        if wrong:
            lines = "\n".join(f"  {k}: expected {want!r}, got {got!r}"
                              for k, (want, got) in wrong.items())
            raise AssertionError(f"event {event.get('name')!r} differs:\n{lines}")

    def stats(self) -> dict[str, Any]:
        """``wideevents.stats()`` of the capturing pipeline (sampled-out events, drops)."""
        stats: dict[str, Any] = self._pipeline.stats()
        return stats

    def clear(self) -> None:
        """Forget the events captured so far."""
        self._sink.clear()


@pytest.fixture
def wideevents_events(request: pytest.FixtureRequest) -> Iterator[CapturedEvents]:
    """Capture the events this test produces (see the module docstring)."""
    from ._core import runtime
    from ._core.pipeline import Pipeline
    from ._core.redact import Redactor
    from ._core.service import default_service_name, static_fields
    from .sinks import MemorySink

    marker = request.node.get_closest_marker("wideevents")
    keep_sampler = bool(marker.kwargs.get("keep_sampler", False)) if marker else False
    configured = runtime.current()
    if configured is not None:
        static = dict(configured.base_fields)
        for placeholder in ("timestamp", "name"):
            static.pop(placeholder, None)
        redactor = configured.redactor
        dynamic = configured.dynamic_fields
        sampler = configured._sampler if keep_sampler else None
    else:
        static = static_fields(default_service_name(None))
        redactor, dynamic, sampler = Redactor(), None, None
    sink = MemorySink(max_events=None)
    pipeline = Pipeline(sinks=[sink], static_fields=lambda: dict(static), redactor=redactor,
                        sampler=sampler, synchronous=True, dynamic_fields=dynamic)
    previous = runtime.swap(pipeline)
    try:
        yield CapturedEvents(sink, pipeline)
    finally:
        runtime.swap(previous)
        pipeline.shutdown(timeout=1.0)
