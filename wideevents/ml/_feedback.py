"""Feedback: outcomes that arrive after the prediction, emitted as their own events.

Honeycomb cannot join events well, so a ``feedback`` event carries what is needed to slice
it on its own (docs/schema.md, "Feedback", says which fields in which case):

- from the core's bounded in-process cache of recent predictions
  (:mod:`wideevents._core.predictions`), which the pipeline's worker fills when it processes
  an event with a ``prediction.id`` (off the request thread, before sampling, so feedback
  for a sampled-away prediction still matches; feedback sent within the worker's interval,
  ~0.1 s, of its prediction may find nothing yet): the prediction's ``model.*``,
  ``slice.*``, ``data.*``, ``prediction.label`` / ``.score`` / ``.p_positive`` and
  ``score.bin`` (``feedback.matched`` true);
- from a ``context`` token (:mod:`._context`, ``ev.feedback_context()``), in any process or
  host: the same fields but ``data.*`` (``feedback.context_verified`` says whether its
  signature was checked); the cache's values win where both have a field.

``feedback.correct`` compares the predicted and the true label when both are known, by the
canonical rule of :mod:`._values` (numbers by value, booleans as booleans, strings exactly).
"""

from __future__ import annotations

import math
import time
from typing import Any

from .._core import predictions
from .._core.event import event
from .._core.ids import uuid7_unix_ms
from .._core.log import log_once
from .._errors import ConfigurationError
from . import _context
from ._problems import Problems
from ._time import unix_seconds
from ._values import is_missing, is_pandas_missing, same_value

__all__ = ["configure_feedback_cache", "feedback", "feedback_fields"]

def configure_feedback_cache(max_size: int = 10_000, ttl_s: float = 3600.0) -> None:
    """Size (entries; 0 disables it) and time-to-live (seconds) of the prediction cache.

    Raises ConfigurationError for a bad value. Entries beyond the new size are evicted,
    oldest first.
    """
    if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 0:
        raise ConfigurationError(
            f"configure_feedback_cache: max_size={max_size!r}; pass a non-negative integer "
            "(0 disables the cache)"
        )
    if (
        isinstance(ttl_s, bool)
        or not isinstance(ttl_s, (int, float))
        or not math.isfinite(ttl_s)
        or ttl_s <= 0
    ):
        raise ConfigurationError(
            f"configure_feedback_cache: ttl_s={ttl_s!r}; pass a positive number of seconds"
        )
    predictions.cache.configure(max_size, float(ttl_s))


def _plain(value: Any) -> Any:
    """numpy scalars unwrapped (without importing numpy); everything else unchanged."""
    if type(value) in (str, int, float, bool) or value is None:
        return value
    if getattr(value, "ndim", None) == 0 and callable(getattr(value, "item", None)):
        return value.item()
    return value


def feedback_fields(
    prediction_id: Any,
    *,
    label: Any = None,
    reward: Any = None,
    timestamp: Any = None,
    context: Any = None,
    now: float | None = None,
    **fields: Any,
) -> tuple[dict[str, Any], float | None]:
    """The ``feedback`` event's fields, and its time in Unix seconds when ``timestamp`` was
    usable (else None: the event keeps its own start time). Never raises."""
    problems = Problems()
    out: dict[str, Any] = {}
    when: float | None = None
    try:
        key = prediction_id if isinstance(prediction_id, str) else str(prediction_id)
        out["prediction.id"] = key
        if timestamp is not None:
            when = unix_seconds(timestamp)
            if when is None:
                problems.add("feedback: timestamp is not a point in time", timestamp)
        cached = predictions.lookup(key)
        if cached:
            out.update(cached)
        out["feedback.matched"] = cached is not None
        made_ms = uuid7_unix_ms(key)
        if context is not None:
            carried, carried_ms, verified, problem = _context.read_token(
                context, key, _context.current_key())
            out["feedback.context_verified"] = verified
            if problem is not None:
                problems.add(problem)
            for name, value in carried.items():
                out.setdefault(name, value)  # the cache (this process) wins
            if made_ms is None:
                made_ms = carried_ms
        if not is_missing(label):  # None, NaN, pandas' NA / NaT: no outcome given
            out["feedback.label"] = _plain(label)
            correct = same_value(out.get("prediction.label"), label)
            if correct is not None:
                out["feedback.correct"] = correct
        if reward is not None and not is_pandas_missing(reward):  # NaN: counted, not finite
            _reward(out, problems, reward)
        if made_ms is None:
            problems.add("feedback: prediction id is not a UUIDv7", key)
        else:
            at = when if when is not None else (time.time() if now is None else now)
            out["feedback.delay_ms"] = at * 1000.0 - made_ms
        for name, value in fields.items():
            out["feedback." + name] = value
    except Exception as exc:  # noqa: BLE001 - containment
        problems.add("feedback: internal error", exc)
    return problems.into(out), when


def _reward(out: dict[str, Any], problems: Problems, reward: Any) -> None:
    try:
        value = float(_plain(reward))
    except Exception:  # noqa: BLE001 - a user's __float__ may raise anything
        problems.add("feedback: reward is not a number", reward)
        return
    if isinstance(reward, str):
        problems.add("feedback: reward is not a number", reward)
        return
    if math.isfinite(value):
        out["feedback.reward"] = value
    else:
        problems.add("feedback: reward is not finite", reward)
        out["feedback.reward"] = None


def feedback(
    prediction_id: Any,
    *,
    label: Any = None,
    reward: Any = None,
    timestamp: Any = None,
    context: str | None = None,
    **fields: Any,
) -> None:
    """Emit one event named ``feedback`` for an earlier prediction.

    Fields: ``prediction.id``, ``feedback.label``, ``feedback.correct`` (the predicted label
    equals ``label``, when both are known), ``feedback.reward`` (a float),
    ``feedback.<key>`` for each extra keyword, ``feedback.delay_ms`` (feedback time -
    ``timestamp`` as a datetime, ISO 8601 or a Unix time in seconds, milliseconds, microseconds
    or nanoseconds (read by magnitude, docs/schema.md ``timestamp``), default now - minus the
    time in the UUIDv7, or in the context), ``feedback.matched`` (the prediction was in this
    process's cache), ``feedback.context_verified`` (with ``context``, the token returned by
    ``ev.feedback_context()``) and the prediction's fields from either. A given ``timestamp``
    also becomes the event's timestamp. Never raises: a bad id, value or context is counted
    in ``meta.ml_error_count`` and the event is still emitted (a bad ``timestamp`` also in
    ``stats()["fields"]["dropped"]["bad_timestamp"]``; the event then keeps its own start
    time).
    """
    try:
        out, when = feedback_fields(
            prediction_id, label=label, reward=reward, timestamp=timestamp, context=context,
            **fields
        )
        with event("feedback") as ev:
            if timestamp is not None:
                # The raw value, so that the core's one rule reads it and counts a bad one
                # (stats()["fields"]["dropped"]["bad_timestamp"]); ``when`` is the same time.
                ev.set_timestamp(timestamp)
            ev.add(out)
    except Exception as exc:  # noqa: BLE001 - containment
        log_once("ml:feedback.emit", "wideevents.ml: cannot emit feedback (%r)", exc)
