"""Field limits and the single serialisation of each event.

These run on the worker, after the user's processors, the sampler and redaction
(:mod:`.redact`), in this order: limits, serialisation. Decisions that depend only on a
key are cached, so the per-event cost is a dictionary lookup per field.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from .._errors import ConfigurationError
from .normalize import FieldReport, fix_surrogates, safe_repr
from .redact import Redactor

__all__ = ["Limits", "apply_limits", "dumps", "fast_serialize", "serialize"]

META_NAMES_MAX = 20

# Fields that identify an event: never the ones removed by the limits. An exact list: a
# prefix rule would let 10,000 "model.*" keys past the field cap.
IDENTITY_FIELDS = frozenset({
    "name", "timestamp", "duration_ms", "samplerate", "request.id", "prediction.id",
    "service.name", "service.version", "host.name", "process.pid", "deployment.environment.name",
    "trace.trace_id", "trace.span_id", "trace.parent_id", "error", "error.type",
    "error.message", "model.name", "model.version", "model.stage", "user.id",
})


class Limits:
    """Per-event limits (Honeycomb's by default)."""

    __slots__ = ("max_fields", "max_string_bytes", "max_event_bytes")

    def __init__(self, max_fields: int = 2_000, max_string_bytes: int = 65_536,
                 max_event_bytes: int = 1_000_000) -> None:
        for label, value, low in (("max_fields", max_fields, 10),
                                  ("max_string_bytes", max_string_bytes, 64),
                                  ("max_event_bytes", max_event_bytes, 1024)):
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ConfigurationError(
                    f"Limits({label}={value!r}) is invalid: use an integer >= {low}"
                )
        self.max_fields = max_fields
        self.max_string_bytes = max_string_bytes
        self.max_event_bytes = max_event_bytes

    def __repr__(self) -> str:
        return (f"Limits(max_fields={self.max_fields}, max_string_bytes={self.max_string_bytes}, "
                f"max_event_bytes={self.max_event_bytes})")


def is_identity(key: str) -> bool:
    return key in IDENTITY_FIELDS


def _add_meta(fields: dict[str, Any], kind: str, names: list[str]) -> None:
    unique = list(dict.fromkeys(names))
    fields[f"meta.{kind}_fields"] = unique[:META_NAMES_MAX]
    fields[f"meta.{kind}_count"] = len(unique)


def apply_limits(fields: dict[str, Any], limits: Limits, report: FieldReport) -> dict[str, Any]:
    """Enforce the field-count limit and add the ``meta.*`` accounting fields."""
    meta_kinds = sum(1 for x in (report.nonfinite, report.truncated, report.dropped) if x)
    budget = limits.max_fields - 6  # room for up to three meta name/count pairs
    if len(fields) + 2 * meta_kinds > limits.max_fields:
        kept: dict[str, Any] = {}
        extra: list[str] = []
        for key, value in fields.items():
            if is_identity(key):
                kept[key] = value
            else:
                extra.append(key)
        room = max(0, budget - len(kept))
        for key in extra[:room]:
            kept[key] = fields[key]
        for key in extra[room:]:
            report.dropped.append((key, "too_many_fields"))
        fields = kept  # identity fields first, then the earliest-added others
    if report.nonfinite:
        _add_meta(fields, "nonfinite", report.nonfinite)
    if report.truncated:
        _add_meta(fields, "truncated", [k for k, _ in report.truncated])
    if report.dropped:
        _add_meta(fields, "dropped", [k for k, _ in report.dropped])
    return fields


_OPTS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY
# Strict: anything orjson would write differently from our normalisation raises instead.
_STRICT = (orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
           | orjson.OPT_PASSTHROUGH_SUBCLASS)
_SCALARS = frozenset({str, int, float, bool, type(None)})
# NaN/Inf (and None) serialise as null. sre's literal search is about 0.6 µs faster per
# event than ``b"null" in data``, whose bloom filter collides with "," "." and "5".
_NULL = re.compile(rb"null").search


def fast_serialize(fields: dict[str, Any], limits: Limits, redactor: Redactor) -> bytes | None:
    """The event's JSON when it needs no normalisation, redaction or limit at all, else None.

    One strict ``orjson.dumps`` doubles as the check: it raises on numpy values, non-string
    keys, 65-bit integers, lone surrogates, datetimes and other types we convert ourselves;
    NaN/Inf (written as null), nested objects, long lists and long strings are found by
    scanning the bytes. Most events take this path; the rest take the full one.
    """
    if len(fields) > limits.max_fields:
        return None
    try:
        data = orjson.dumps(fields, option=_STRICT)
    except Exception:  # noqa: BLE001 - any failure means: take the slow path
        return None
    if len(data) > limits.max_string_bytes or data.find(b"{", 1) >= 0 or _NULL(data):
        return None
    if b"[" in data:
        for v in fields.values():
            if type(v) in (list, tuple) and (
                    len(v) > 128 or not _SCALARS.issuperset(map(type, v))):
                return None
    if not redactor.all_safe(fields):
        return None
    return data


def dumps(fields: dict[str, Any]) -> bytes:
    return orjson.dumps(fields, option=_OPTS)


def _repair(value: Any) -> Any:
    """Make a value orjson accepts (only reached when a processor added something odd)."""
    if isinstance(value, str):
        return fix_surrogates(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value if -(2**63) <= value < 2**64 else str(value)
    if isinstance(value, list):
        return [_repair(v) for v in value]
    if isinstance(value, dict):
        return {fix_surrogates(str(k)): _repair(v) for k, v in value.items()}
    return value


def serialize(fields: dict[str, Any], limits: Limits, report: FieldReport) -> tuple[dict[str, Any], bytes]:
    """Serialise once; repair lone surrogates and oversize events. Never raises."""
    try:
        data = orjson.dumps(fields, option=_OPTS)
    except orjson.JSONEncodeError:
        fields = {fix_surrogates(str(k)): _repair(v) for k, v in fields.items()}
        try:
            data = orjson.dumps(fields, default=safe_repr, option=_OPTS)
        except orjson.JSONEncodeError:
            fields = {k: (v if isinstance(v, (int, float, bool, type(None))) else safe_repr(v))
                      for k, v in fields.items()}
            data = orjson.dumps(fields, default=safe_repr, option=_OPTS)
    if len(data) < limits.max_event_bytes:
        return fields, data
    # Too large: drop the biggest non-identity fields until it fits.
    sizes = sorted(
        ((len(orjson.dumps(v, default=safe_repr, option=_OPTS)) + len(k), k)
         for k, v in fields.items() if not is_identity(k)),
        reverse=True,
    )
    total = len(data)
    fields = dict(fields)
    for size, key in sizes:
        if total < limits.max_event_bytes - 4096:
            break
        del fields[key]
        total -= size + 4
        report.dropped.append((key, "event_too_large"))
    if report.dropped:
        _add_meta(fields, "dropped", [k for k, _ in report.dropped])
    data = orjson.dumps(fields, default=safe_repr, option=_OPTS)
    return fields, data
