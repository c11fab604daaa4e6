"""``StdoutSink``: one flat JSON object per line, or a human-readable rendering.

Contract:

* **Each event is one whole line**, whatever the host writes through ``sys.stdout``. A
  sink writing to ``sys.stdout`` (no ``stream=``) puts a :class:`_LineGuard` in its place:
  it passes every write through unchanged and remembers whether the host left a line open
  (``print(..., end="")``, a ``\\r`` progress bar). The sink's lines are written under the
  guard's lock, after a newline when the host's line is open. The host's own text is never
  reordered or lost; an open line of the host is ended early. Out of reach: bytes written
  around ``sys.stdout`` (``sys.stdout.buffer``, ``os.write(1, ...)``, a C extension).
* **JSON stays JSON, and safe on a terminal**: C0 controls are escaped by the encoder; DEL,
  C1 controls, bidi controls and U+2028/U+2029 are written as ``\\u`` escapes too
  (:func:`wideevents._core.terminal.escape_json_bytes`), the same JSON values.
* **pretty**: structlog's console renderer over :func:`wideevents._core.terminal.console_fields`:
  every key and value is escaped text, one event per line (newlines in values show as
  ``\\n``), colours only on a TTY.
"""

from __future__ import annotations

import os
import sys
import threading
import weakref
from collections.abc import Iterable, Sequence
from typing import IO, Any

from .._core.record import Record
from .._core.terminal import console_fields, escape_json_bytes
from .._errors import ConfigurationError

__all__ = ["StdoutSink", "render_pretty"]


def _renderer(colors: bool) -> Any:
    import structlog

    return structlog.dev.ConsoleRenderer(colors=colors, sort_keys=False, pad_event_to=24)


def render_pretty(fields: dict[str, Any], renderer: Any) -> str:
    """Render one event with structlog's console renderer (name as the message), every key
    and value escaped for the terminal."""
    level = "error" if fields.get("error") else None
    return str(renderer(None, "info", console_fields(fields, level=level)))


class _LineGuard:
    """Stands in for ``sys.stdout``: every call goes to the wrapped stream; writes also
    record whether the last character written ended a line."""

    def __init__(self, stream: Any) -> None:
        self._wrapped = stream
        # Reentrant: a signal handler that prints while the main thread is inside write()
        # must not deadlock (the wrapped stream decides what happens then, as without us).
        self._guard_lock = threading.RLock()
        self._line_open = False
        _GUARDS.add(self)

    def write(self, text: str) -> int:
        with self._guard_lock:
            try:
                n: int = self._wrapped.write(text)
            except BaseException:
                self._line_open = True  # unknown how much was written: assume a line is open
                raise
            if not isinstance(text, str):
                self._line_open = True
            elif text:
                self._line_open = not text.endswith("\n")
            return n

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self._wrapped.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._wrapped, name)

    def __enter__(self) -> Any:
        return self._wrapped.__enter__()

    def __exit__(self, *exc: object) -> Any:
        return self._wrapped.__exit__(*exc)

    def __repr__(self) -> str:
        return repr(self._wrapped)


_GUARDS: weakref.WeakSet[_LineGuard] = weakref.WeakSet()


def _guard_stdout() -> None:
    """Put a :class:`_LineGuard` in ``sys.stdout`` unless one is there already (or there
    is no stdout at all, e.g. pythonw)."""
    current = sys.stdout
    if current is not None and not isinstance(current, _LineGuard):
        sys.stdout = _LineGuard(current)


def _after_fork_in_child() -> None:
    # Another thread may have held a guard's lock when the process forked.
    for guard in list(_GUARDS):
        guard._guard_lock = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _write(stream: Any, data: bytes | str) -> None:
    """JSON bytes (UTF-8) through the stream's binary buffer when it has one (the text
    layer's pending output first); text, and bytes for a stream without a buffer, as text."""
    buffer = getattr(stream, "buffer", None) if isinstance(data, bytes) else None
    if buffer is not None:
        stream.flush()
        buffer.write(data)
        buffer.flush()
    else:
        stream.write(data.decode("utf-8") if isinstance(data, bytes) else data)
        stream.flush()


class StdoutSink:
    """Write events to standard output (resolved at each write, so redirection works).

    ``format="json"``: one flat JSON object per line. ``format="pretty"``: structlog's
    console renderer, with colours only when the stream is a TTY, every value escaped.
    Without ``stream``, ``sys.stdout`` is guarded so that each event is one whole line
    even when the host prints partial lines (module docstring).
    """

    name = "stdout"

    def __init__(self, format: str = "json", stream: IO[str] | None = None) -> None:
        if format not in ("json", "pretty"):
            raise ConfigurationError(
                f"StdoutSink(format={format!r}): use 'json' (JSON lines) or 'pretty' (for people)"
            )
        self.format = format
        self._stream = stream
        self._lock = threading.Lock()
        self._renderers: dict[bool, Any] = {}
        if stream is None:
            _guard_stdout()

    def _target(self) -> IO[str]:
        return self._stream if self._stream is not None else sys.stdout

    def _text(self, batch: Sequence[Record], stream: Any) -> bytes | str:
        if self.format == "json":
            return escape_json_bytes(b"\n".join([*(r.json for r in batch), b""]))
        isatty = getattr(stream, "isatty", None)
        colors = bool(isatty and isatty())
        renderer = self._renderers.get(colors)
        if renderer is None:
            renderer = self._renderers[colors] = _renderer(colors)
        return "".join(render_pretty(r.fields, renderer) + "\n" for r in batch)

    def export(self, batch: Sequence[Record]) -> None:
        stream = self._target()
        data = self._text(batch, stream)
        with self._lock:
            if not isinstance(stream, _LineGuard):
                _write(stream, data)
                return
            with stream._guard_lock:
                if stream._line_open:
                    data = (b"\n" + data) if isinstance(data, bytes) else "\n" + data
                try:
                    _write(stream._wrapped, data)
                except BaseException:
                    stream._line_open = True
                    raise
                stream._line_open = False

    def flush(self, timeout: float = 5.0) -> bool:
        try:
            self._target().flush()
        except Exception:  # noqa: BLE001 - a closed stdout at exit is not our failure
            return False
        return True

    def reset_after_fork(self) -> None:
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"StdoutSink(format={self.format!r})"
