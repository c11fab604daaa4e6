"""The pipeline's small helpers about events it makes or measures itself.

- :func:`stats_event`: the ``wideevents.stats`` event (``configure(self_report_interval=)``):
  ``stats()`` flattened to ``stats.*`` fields. It goes through processors, the sampler,
  limits and every sink like any event, so it is counted in the next report's
  ``stats.emitted``, not in its own.
- :func:`sampler_stats`: ``stats()["samplers"]``, from the sampler's own ``stats()``.
- :func:`estimate_size`: a cheap estimate of the bytes an event holds while queued, for
  the queue's byte bound.
"""

from __future__ import annotations

from typing import Any

from .ids import new_span_id, new_trace_id

__all__ = ["estimate_size", "sampler_stats", "stats_event"]


def stats_event(base_fields: dict[str, Any], stats: dict[str, Any]) -> dict[str, Any]:
    """The fields of one ``wideevents.stats`` event."""
    fields = base_fields.copy()
    fields["name"] = "wideevents.stats"
    fields["trace.trace_id"] = new_trace_id()
    fields["trace.span_id"] = new_span_id()
    fields["duration_ms"] = 0.0
    _flatten("stats", stats, fields)
    return fields


def estimate_size(fields: dict[str, Any]) -> int:
    """Roughly how many bytes an event holds in the queue: a cost per field, plus strings'
    and bytes' lengths, arrays' ``nbytes`` and containers' lengths. Never raises."""
    size = 200 + 96 * len(fields)
    try:
        for value in fields.values():
            kind = type(value)
            if kind is str or kind is bytes:
                size += len(value)
            elif kind is int or kind is float or kind is bool or value is None:
                continue
            elif kind is list or kind is tuple or kind is dict:
                size += 64 * len(value)
            else:
                nbytes = getattr(value, "nbytes", None)
                size += nbytes if type(nbytes) is int else 256
    except BaseException:  # noqa: BLE001 - a user object's attribute or length may raise
        size += 4096
    return size


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}", inner, out)
    else:
        out[prefix] = value


def sampler_stats(sampler: Any) -> dict[str, Any]:
    """``{name: sampler.stats()}`` (``{}`` without a sampler); never raises."""
    if sampler is None:
        return {}
    name = getattr(sampler, "name", None) or type(sampler).__name__
    fn = getattr(sampler, "stats", None)
    try:
        return {str(name): fn() if callable(fn) else {}}
    except Exception:  # noqa: BLE001 - a sampler's stats must not break stats()
        return {str(name): {}}
