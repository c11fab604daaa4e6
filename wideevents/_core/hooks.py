"""The hook lists that integrations register into, in one place.

The core runs these; it never imports the code that fills them (OpenTelemetry
correlation, the HTTP middlewares, the log bridges), so the dependency points one way:
an integration imports this module and appends to a list.

- :data:`parent_resolvers`: callables returning ``(trace_id, parent_span_id)`` of a
  remote or OpenTelemetry parent for a new root event, or None. The first that finds one
  wins (OpenTelemetry correlation inserts itself first; the middlewares' ``traceparent``
  resolver appends itself).
- :data:`scope_hooks`: ``(enter, exit)`` pairs run when an event becomes the current
  one and when it stops being current: ``enter(event)`` returns a token that
  ``exit(token)`` receives (OpenTelemetry correlation keeps its context in step).
- :data:`inject_fallbacks`: callables adding trace headers when ``inject()`` is called
  outside any event (OpenTelemetry correlation injects the active span).
- :data:`ml_helpers`: the module implementing ``Event.model``, ``Event.scores``... (each
  ``helper(event, *args, **kwargs)``); ``wideevents.ml`` is above the core, so the
  wiring (:mod:`wideevents._config`) puts it here.
- :func:`register_request_finish_hook`: callables run by the ASGI/WSGI middlewares on
  a request's event just before it finishes (the structlog bridge merges its
  contextvars bindings there).

Every hook runs inside a containment guard: a failing hook is logged once, never raised.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .log import log_once
from .normalize import safe_repr

__all__ = [
    "inject_fallbacks", "ml_helpers", "parent_resolvers", "register_request_finish_hook",
    "request_finish_hooks", "run_request_finish_hooks", "scope_hooks",
]

parent_resolvers: list[Callable[[], tuple[str, str] | None]] = []
scope_hooks: list[tuple[Callable[[Any], object], Callable[[object], None]]] = []
inject_fallbacks: list[Callable[[dict[str, str]], None]] = []
ml_helpers: Any = None
# A tuple, replaced on registration: read on every request without a lock.
request_finish_hooks: tuple[Callable[[Any], None], ...] = ()


def register_request_finish_hook(hook: Callable[[Any], None]) -> None:
    """Run ``hook(event)`` before each middleware request event finishes (idempotent)."""
    global request_finish_hooks
    if hook not in request_finish_hooks:
        request_finish_hooks = (*request_finish_hooks, hook)


def run_request_finish_hooks(ev: Any) -> None:
    """Run the request finish hooks on ``ev``; a failing hook is logged once."""
    for hook in request_finish_hooks:
        try:
            hook(ev)
        except Exception as exc:  # noqa: BLE001 - a hook's failure is contained, logged once
            log_once(f"finish-hook:{getattr(hook, '__qualname__', hook)}",
                     "wideevents: a finish hook failed: %s", safe_repr(exc, 200))
