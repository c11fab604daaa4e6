"""Framework integrations: middleware for ASGI and WSGI apps, bridges for log libraries.

- :class:`wideevents.integrations.asgi.WideEventsMiddleware` (FastAPI, Starlette, any ASGI 3 app)
- :class:`wideevents.integrations.wsgi.WideEventsWSGIMiddleware` (Flask, any WSGI app)
- :class:`wideevents.integrations.structlog.AddToEvent` and ``add_to_event`` (structlog)
- :class:`wideevents.integrations.logging.WideEventsHandler` (stdlib logging)
- :class:`wideevents.integrations.libhoney.HoneycombTransmission` (a plain ``libhoney.Client``
  sending through wideevents' sender)
- :mod:`wideevents.integrations.clients` (``instrument()``: outgoing httpx, requests, aiohttp
  and urllib3 calls in the event, with ``traceparent``; import the module itself)

None of these modules imports a web framework; the names below load their module on first
access, so ``import wideevents.integrations`` costs nothing.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "AddToEvent", "HoneycombTransmission", "WideEventsHandler", "WideEventsMiddleware",
    "WideEventsWSGIMiddleware", "add_to_event",
]

_LAZY = {
    "WideEventsMiddleware": ".asgi",
    "WideEventsWSGIMiddleware": ".wsgi",
    "AddToEvent": ".structlog",
    "add_to_event": ".structlog",
    "WideEventsHandler": ".logging",
    "HoneycombTransmission": ".libhoney",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'wideevents.integrations' has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)


def __dir__() -> list[str]:
    return sorted(__all__)
