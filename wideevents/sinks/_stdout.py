"""``StdoutSink``: one flat JSON object per line, or a human-readable rendering."""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence
from typing import IO, Any

from .._core.record import Record
from .._errors import ConfigurationError

__all__ = ["StdoutSink", "render_pretty"]


def _renderer(colors: bool) -> Any:
    import structlog

    return structlog.dev.ConsoleRenderer(colors=colors, sort_keys=False, pad_event_to=24)


def render_pretty(fields: dict[str, Any], renderer: Any) -> str:
    """Render one event with structlog's console renderer (name as the message)."""
    data = dict(fields)
    name = data.pop("name", "event")
    out: dict[str, Any] = {"timestamp": data.pop("timestamp", None), "event": name}
    if data.get("error"):
        out["level"] = "error"
    out.update(data)
    return str(renderer(None, "info", out))


class StdoutSink:
    """Write events to standard output (resolved at each write, so redirection works).

    ``format="json"``: one flat JSON object per line. ``format="pretty"``: structlog's
    console renderer, with colours only when the stream is a TTY.
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

    def _target(self) -> IO[str]:
        return self._stream if self._stream is not None else sys.stdout

    def export(self, batch: Sequence[Record]) -> None:
        stream = self._target()
        if self.format == "json":
            data = b"\n".join([*(r.json for r in batch), b""])
            with self._lock:
                buffer = getattr(stream, "buffer", None)
                if buffer is not None:
                    stream.flush()
                    buffer.write(data)
                    buffer.flush()
                else:
                    stream.write(data.decode("utf-8"))
                    stream.flush()
            return
        isatty = getattr(stream, "isatty", None)
        colors = bool(isatty and isatty())
        renderer = self._renderers.get(colors)
        if renderer is None:
            renderer = self._renderers[colors] = _renderer(colors)
        text = "".join(render_pretty(r.fields, renderer) + "\n" for r in batch)
        with self._lock:
            stream.write(text)
            stream.flush()

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
