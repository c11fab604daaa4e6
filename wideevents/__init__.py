"""wideevents: one wide structured event per unit of work, for machine-learning services.

>>> import wideevents
>>> with wideevents.event("predict", user_id=7) as ev:
...     ev.add({"model.version": "2024-11-03"})

Events go to stdout as JSON lines unless ``configure()`` (or ``WIDEEVENTS_SINK``) says
otherwise. Nothing here imports libhoney, the OpenTelemetry SDK, duckdb, numpy or a web
framework: those load only when a sink or helper that needs them is used.
"""

from __future__ import annotations

from typing import Any

from ._config import configure
from ._core.event import Event, add, add_trace, current_event, event, inject, rollup
from ._core.instrument import in_context, instrument
from ._core.lifecycle import install_signal_handlers
from ._core.limits import Limits
from ._core.pipeline import Pipeline
from ._core.runtime import flush, shutdown, stats
from ._errors import ConfigurationError
from ._version import __version__ as __version__

__all__ = [
    "ConfigurationError",
    "Event",
    "Limits",
    "Pipeline",
    "add",
    "add_trace",
    "configure",
    "current_event",
    "event",
    "feedback",
    "flush",
    "in_context",
    "inject",
    "install_signal_handlers",
    "instrument",
    "rollup",
    "shutdown",
    "stats",
]


def feedback(prediction_id: str, *, label: Any = None, reward: Any = None,
             timestamp: Any = None, context: str | None = None, **fields: Any) -> None:
    """Emit a ``feedback`` event for an earlier prediction (see :mod:`wideevents.ml`);
    ``context`` is the token ``ev.feedback_context()`` returned with the prediction."""
    from .ml._feedback import feedback as _feedback

    _feedback(prediction_id, label=label, reward=reward, timestamp=timestamp, context=context,
              **fields)
