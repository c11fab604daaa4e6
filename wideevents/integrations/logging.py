"""stdlib logging bridge: warnings and errors of the current request, counted into its event.

    logging.getLogger().addHandler(WideEventsHandler())

For each record at or above the handler's level (default ``WARNING``) emitted while an
event is current, it increments ``log.<level>_count`` (``debug``, ``info``, ``warning``,
``error``, ``critical``, by the record's numeric level) and, from ``ERROR`` up, sets
``log.last_error`` to the formatted message. Records of the ``wideevents`` logger (our own
failure reports) are ignored, so the bridge cannot feed itself. Nothing here ever raises.
"""

from __future__ import annotations

import logging

from .._core.event import _current
from .._core.log import log_once
from .._core.normalize import safe_repr
from .._errors import ConfigurationError

__all__ = ["WideEventsHandler"]

MAX_MESSAGE = 1024


class WideEventsHandler(logging.Handler):
    """A logging handler writing counts and the last error into the current wide event."""

    def __init__(self, level: int | str = logging.WARNING, *, prefix: str = "log.") -> None:
        if not isinstance(prefix, str):
            raise ConfigurationError(f"prefix={prefix!r}: use a string such as 'log.'")
        super().__init__(level)
        self.prefix = prefix
        self._keys = {label: f"{prefix}{label}_count"
                      for label in ("critical", "error", "warning", "info", "debug")}
        self._last_error = f"{prefix}last_error"

    def emit(self, record: logging.LogRecord) -> None:
        ev = _current.get()
        if ev is None:
            return
        name = record.name
        if name == "wideevents" or name.startswith("wideevents."):
            return
        try:
            n = record.levelno
            label = ("critical" if n >= logging.CRITICAL else "error" if n >= logging.ERROR
                     else "warning" if n >= logging.WARNING else "info" if n >= logging.INFO
                     else "debug")
            key = self._keys[label]
            fields = {key: ev.get(key, 0) + 1}
            if n >= logging.ERROR:
                try:
                    message = record.getMessage()
                except Exception:  # noqa: BLE001 - bad %-args: keep the template
                    message = safe_repr(record.msg, MAX_MESSAGE)
                fields[self._last_error] = message[:MAX_MESSAGE]
            ev.add(fields)
        except Exception as exc:  # noqa: BLE001 - logging must never fail because of us
            log_once("logging-bridge", "wideevents: the logging bridge failed: %s",
                     safe_repr(exc, 200))
