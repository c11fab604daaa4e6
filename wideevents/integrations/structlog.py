"""structlog bridge: a processor that copies each log call into the current wide event.

Add it to *your* processor chain (wideevents never calls ``structlog.configure()``),
before the renderer::

    structlog.configure(processors=[
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        add_to_event,
        structlog.processors.JSONRenderer(),
    ])

For each log call made while an event is current it adds, under ``prefix``:

- the call's fields (``log.info("cache", hit=True)`` -> ``log.hit``), later calls winning;
  structlog's bookkeeping keys (``event``, ``level``, ``timestamp``, ``logger``,
  ``exc_info``, ``exception``, ``stack_info``, ``_record``...) are not fields;
- ``<prefix><level>_count`` per level (``exception`` counts as ``error``, ``warn`` as
  ``warning``, ``fatal`` as ``critical``; an unknown level as ``other``);
- ``<prefix>messages``: the last ``last_n`` messages (the ``event`` values), oldest first;
- ``<prefix>last_error``: the message of the last ``error``/``critical`` call.

Reserved event keys (``name``, ``timestamp``, ``duration_ms``, ``samplerate``, ``error``,
``error.*``, ``exception.*``, ``trace.*``, ``meta.*``, ``service.*``, ``host.name``,
``process.pid``, ``deployment.environment.name``) and the bridge's own keys are never
written from a log call's fields, whatever the prefix. A call made after the event
finished (a thread outliving its request) is counted in
``stats()["fields"]["dropped"]["late"]``. The event dict is returned
unchanged, so the log line is rendered as before; nothing here ever raises.

With ``merge_contextvars=True``, ``structlog.contextvars`` bindings are merged into the
event under the prefix (without replacing fields already there) at each log call, and once
more when a request event of the ASGI/WSGI middleware finishes (bindings made in the
middleware's context, e.g. by an async endpoint that never logs).
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from .._core import hooks
from .._core.event import Event, _current
from .._core.log import log_once
from .._core.normalize import safe_repr

__all__ = ["AddToEvent", "add_to_event"]

EventDict = MutableMapping[str, Any]

_LEVELS = {
    "critical": "critical", "fatal": "critical", "exception": "error", "error": "error",
    "err": "error", "warn": "warning", "warning": "warning", "info": "info", "msg": "info",
    "debug": "debug", "trace": "debug", "notset": "debug",
}
_LABELS = ("critical", "error", "warning", "info", "debug", "other")
_SKIP = frozenset({
    "event", "level", "log_level", "timestamp", "logger", "logger_name", "exc_info",
    "exception", "stack_info", "stack", "_record", "_from_structlog", "positional_args",
})
_RESERVED = frozenset({
    "name", "timestamp", "duration_ms", "samplerate", "error", "host.name", "process.pid",
    "deployment.environment.name",
})
_RESERVED_PREFIXES = ("trace.", "meta.", "service.", "error.", "exception.")
MAX_MESSAGE = 1024


def _reserved(key: str) -> bool:
    return key in _RESERVED or key.startswith(_RESERVED_PREFIXES)


class AddToEvent:
    """structlog processor ``(logger, method_name, event_dict) -> event_dict``.

    ``prefix`` (default ``"log."``) is put before every key it writes; ``last_n`` (>= 0)
    messages are kept; ``merge_contextvars`` merges ``structlog.contextvars`` bindings.
    Records of the ``wideevents`` logger itself are ignored.
    """

    __slots__ = ("prefix", "last_n", "merge_contextvars", "_counts", "_messages",
                 "_last_error", "_own")

    def __init__(self, prefix: str = "log.", last_n: int = 5,
                 merge_contextvars: bool = False) -> None:
        from .._errors import ConfigurationError

        if not isinstance(prefix, str):
            raise ConfigurationError(f"prefix={prefix!r}: use a string such as 'log.'")
        if not isinstance(last_n, int) or isinstance(last_n, bool) or last_n < 0:
            raise ConfigurationError(f"last_n={last_n!r}: use an integer >= 0 (0 keeps none)")
        self.prefix = prefix
        self.last_n = last_n
        self.merge_contextvars = bool(merge_contextvars)
        self._counts = {label: f"{prefix}{label}_count" for label in _LABELS}
        self._messages = f"{prefix}messages"
        self._last_error = f"{prefix}last_error"
        self._own = frozenset((*self._counts.values(), self._messages, self._last_error))
        if self.merge_contextvars:
            _merge_prefixes[prefix] = self._own
            hooks.register_request_finish_hook(_merge_at_finish)

    def __call__(self, logger: Any, method_name: str, event_dict: EventDict) -> EventDict:
        ev = _current.get()
        if ev is None:
            return event_dict
        try:
            self._record(ev, logger, method_name, event_dict)
        except Exception as exc:  # noqa: BLE001 - a log call must never fail because of us
            log_once("structlog-bridge", "wideevents: the structlog bridge failed: %s",
                     safe_repr(exc, 200))
        return event_dict

    def _record(self, ev: Event, logger: Any, method_name: str, event_dict: EventDict) -> None:
        if _is_own_logger(logger, event_dict):
            return
        level = event_dict.get("level")
        label = _LEVELS.get(level.lower() if isinstance(level, str) else method_name)
        if label is None:
            label = _LEVELS.get(method_name, "other")
        prefix = self.prefix
        own = self._own
        fields: dict[str, Any] = {}
        for key, value in event_dict.items():
            if type(key) is not str or key in _SKIP:
                continue
            full = prefix + key
            if full in own or _reserved(full):
                continue
            fields[full] = value
        if self.merge_contextvars:
            _merge_bindings(ev, prefix, own, fields)
        message = event_dict.get("event")
        if message is not None and type(message) is not str:
            message = safe_repr(message, MAX_MESSAGE)
        if message is not None and self.last_n:
            prior = ev.get(self._messages)
            kept = list(prior) if isinstance(prior, list) else []
            kept.append(message[:MAX_MESSAGE])
            fields[self._messages] = kept[-self.last_n:]
        if message is not None and label in ("error", "critical"):
            fields[self._last_error] = message[:MAX_MESSAGE]
        counter = self._counts[label]
        fields[counter] = ev.get(counter, 0) + 1
        ev.add(fields)


def _is_own_logger(logger: Any, event_dict: EventDict) -> bool:
    for name in (getattr(logger, "name", None), getattr(event_dict.get("_record"), "name", None),
                 event_dict.get("logger")):
        if type(name) is str and (name == "wideevents" or name.startswith("wideevents.")):
            return True
    return False


# prefix -> that bridge's own keys, for every bridge built with merge_contextvars=True.
_merge_prefixes: dict[str, frozenset[str]] = {}


def _merge_bindings(ev: Event, prefix: str, own: frozenset[str],
                    pending: dict[str, Any] | None = None) -> None:
    from structlog.contextvars import get_contextvars

    add: dict[str, Any] = {}
    for key, value in get_contextvars().items():
        full = prefix + key
        if full in own or _reserved(full) or full in ev or (pending and full in pending):
            continue
        add[full] = value
    if pending is not None:
        pending.update(add)
    elif add:
        ev.add(add)


def _merge_at_finish(ev: Event) -> None:
    for prefix, own in list(_merge_prefixes.items()):
        _merge_bindings(ev, prefix, own)


add_to_event = AddToEvent()
"""An :class:`AddToEvent` with the defaults (prefix ``"log."``, last 5 messages)."""
