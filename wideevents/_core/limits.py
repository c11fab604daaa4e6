"""Field limits and the single serialisation of each event.

These run on the worker, after the user's processors, the sampler and redaction
(:mod:`.redact`), in this order: limits, serialisation. Decisions that depend only on a
key are cached, so the per-event cost is a dictionary lookup per field.

The size limit holds for every event: :func:`serialize` returns JSON shorter than
``max_event_bytes``. Past it, an identity value larger than a quarter of the limit is cut
to that, then the largest other fields are dropped; if the identity fields alone are still
too large, their values are cut to equal shares, and as a last resort (a tiny limit) the
largest fields dropped. Every cut is counted (``event_too_large``) and named in ``meta.*``
(the name lists shortened if they would not fit either); the field-count limit still
holds.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from .._errors import ConfigurationError
from .normalize import FieldReport, fix_surrogates, safe_repr
from .redact import Redactor
from .resource import DETECTED_KEYS

__all__ = ["Limits", "apply_limits", "dumps", "fast_serialize", "serialize"]

META_NAMES_MAX = 20

# Fields that identify an event: the last ones the limits remove (a huge value is cut, not
# dropped; only a limit too small for them all drops some, the last of this order first).
# An exact list: a prefix rule would let 10,000 "model.*" keys past the field cap.
IDENTITY_ORDER = (
    "name", "timestamp", "duration_ms", "trace.trace_id", "trace.span_id", "trace.parent_id",
    "samplerate", "service.name", "error", "error.type", "error.message", "request.id",
    "prediction.id", "model.name", "model.version", "user.id", "model.stage", "service.version",
    "deployment.environment.name", "host.name", "process.pid",
    *DETECTED_KEYS,  # where the process runs (issue 22): who emitted, like host.name
)
IDENTITY_FIELDS = frozenset(IDENTITY_ORDER)
_PRIORITY = {key: n for n, key in enumerate(IDENTITY_ORDER)}


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


def _add_meta(fields: dict[str, Any], kind: str, names: list[str],
              max_names: int = META_NAMES_MAX) -> None:
    unique = list(dict.fromkeys(names))
    fields[f"meta.{kind}_fields"] = unique[:max_names]
    fields[f"meta.{kind}_count"] = len(unique)


def apply_limits(fields: dict[str, Any], limits: Limits, report: FieldReport) -> dict[str, Any]:
    """Enforce the field-count limit and add the ``meta.*`` accounting fields."""
    meta_kinds = sum(1 for x in (report.nonfinite, report.truncated, report.dropped) if x)
    budget = limits.max_fields - 6  # room for up to three meta name/count pairs
    if len(fields) + 2 * meta_kinds > limits.max_fields:
        kept: dict[str, Any] = {}
        extra: list[str] = []
        keep = {k for k in fields if is_identity(k)}
        if len(keep) > budget:  # a max_fields too small for them all: the first in order
            keep = set(sorted(keep, key=_PRIORITY.__getitem__)[:max(0, budget)])
        for key, value in fields.items():
            if key in keep:
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
    if (len(data) > limits.max_string_bytes or len(data) >= limits.max_event_bytes
            or data.find(b"{", 1) >= 0 or _NULL(data)):
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
    """Serialise once; repair lone surrogates; make an oversize event fit. Never raises.

    The JSON returned is always shorter than ``limits.max_event_bytes`` (module docstring).
    """
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
    return _fit(fields, limits.max_event_bytes - 1, limits.max_fields, report)


# -- making an oversize event fit (rare: the cost is one dumps per field) ---------------------
_KINDS = ("nonfinite", "truncated", "dropped")
_FIXED = (int, float, bool, type(None))  # identity values too small to be worth cutting


def _entry(key: str, value: Any) -> int:
    """Bytes of ``"key":value`` in the event's JSON (a field's share, without its comma)."""
    return len(orjson.dumps({key: value}, default=safe_repr, option=_OPTS)) - 2


def _body_size(sizes: dict[str, int]) -> int:
    return 2 + sum(sizes.values()) + max(0, len(sizes) - 1)


def _cut(key: str, value: Any, room: int) -> Any:
    """``value`` as a string whose entry is at most ``room`` bytes (a list or other value as
    its JSON text), cut on a character boundary; None when even ``""`` does not fit."""
    if _entry(key, "") > room:
        return None
    if type(value) is str:
        text = value
    else:
        text = orjson.dumps(value, default=safe_repr, option=_OPTS).decode("utf-8", "replace")
    raw = text.encode("utf-8")
    keep = min(len(raw), room)
    while True:  # escapes (quotes, control characters) make JSON longer than the text
        cut = raw[:keep].decode("utf-8", "ignore")
        over = _entry(key, cut) - room
        if over <= 0:
            return cut
        keep = max(0, min(keep - 1, keep * room // (room + over)))  # in proportion


def _accounting_keys(report: FieldReport) -> set[str]:
    """The meta.* fields apply_limits() wrote from ``report`` (rebuilt after fitting)."""
    present = (report.nonfinite, report.truncated, report.dropped)
    return {f"meta.{kind}_{what}" for kind, names in zip(_KINDS, present) if names
            for what in ("fields", "count")}


def _with_meta(body: dict[str, Any], report: FieldReport, truncated: list[str],
               dropped: list[str], max_names: int) -> dict[str, Any]:
    out = dict(body)
    lists = (report.nonfinite, [k for k, _ in report.truncated] + truncated,
             [k for k, _ in report.dropped] + dropped)
    for kind, names in zip(_KINDS, lists):
        if names:
            _add_meta(out, kind, names, max_names)
    return out


def _fit(fields: dict[str, Any], target: int, max_fields: int, report: FieldReport
         ) -> tuple[dict[str, Any], bytes]:
    """The event cut to at most ``target`` bytes of JSON and ``max_fields`` fields (the meta
    fields it adds included), its cuts added to ``report``."""
    meta_keys = _accounting_keys(report)
    body = {k: v for k, v in fields.items() if k not in meta_keys}
    sizes = {k: _entry(k, v) for k, v in body.items()}
    reserve, max_names = 256, META_NAMES_MAX
    for _ in range(64):  # converges in a few rounds; the bound is for safety only
        kept, truncated, dropped = _shrink(body, sizes, target - reserve)
        _cap_count(kept, sizes, truncated, dropped, max_fields - _kinds(report, truncated, dropped))
        out = _with_meta(kept, report, truncated, dropped, max_names)
        data = orjson.dumps(out, default=safe_repr, option=_OPTS)
        if len(data) <= target:
            report.truncated.extend((k, "event_too_large") for k in truncated)
            report.dropped.extend((k, "event_too_large") for k in dropped)
            return out, data
        # The meta fields (or escapes) took more than reserved: reserve more, and past a
        # quarter of the limit name fewer fields (the counts stay exact).
        reserve += len(data) - target + 64
        if reserve > target // 4 and max_names:
            max_names //= 2
            reserve = target // 4
        elif reserve >= target:
            reserve = target  # everything but the meta counts goes: they always fit 1 KB
    names = [k for k, _ in report.dropped] + list(body)
    report.dropped.extend((k, "event_too_large") for k in body)
    out = {"meta.dropped_fields": [], "meta.dropped_count": len(dict.fromkeys(names))}
    return out, orjson.dumps(out)


def _kinds(report: FieldReport, truncated: list[str], dropped: list[str]) -> int:
    """How many fields the meta accounting will add (a name list and a count per kind)."""
    return 2 * sum(1 for x in (report.nonfinite, report.truncated or truncated,
                               report.dropped or dropped) if x)


def _cap_count(kept: dict[str, Any], sizes: dict[str, int], truncated: list[str],
               dropped: list[str], room: int) -> None:
    """Drop the largest fields (others before identity) until ``room`` fields remain, room
    for the meta fields included: the field-count limit holds after fitting too."""
    if len(kept) <= room:
        return
    if not dropped:
        room -= 2  # the first drop adds meta.dropped_fields and meta.dropped_count
    order = sorted(kept, key=lambda k: (is_identity(k), -_PRIORITY.get(k, 0), -sizes[k]))
    for key in order[:max(0, len(kept) - room)]:
        del kept[key]
        dropped.append(key)
        if key in truncated:
            truncated.remove(key)


def _shrink(body: dict[str, Any], sizes: dict[str, int], budget: int
            ) -> tuple[dict[str, Any], list[str], list[str]]:
    """Fields within ``budget`` bytes: the largest non-identity fields dropped, then identity
    values cut to equal shares, then (a tiny budget) the largest remaining fields dropped."""
    kept = dict(body)
    now = dict(sizes)
    total = _body_size(now)
    dropped: list[str] = []
    truncated: list[str] = []

    def drop(key: str) -> None:
        nonlocal total
        total -= now.pop(key) + (1 if now else 0)
        del kept[key]
        dropped.append(key)

    def cut(key: str, room: int) -> None:
        nonlocal total
        value = _cut(key, kept[key], room)
        if value is not None:  # else: dropped below if still needed
            size = _entry(key, value)
            total += size - now[key]
            kept[key], now[key] = value, size
            if key not in truncated:
                truncated.append(key)

    cuttable = [k for k in kept if is_identity(k) and type(kept[k]) not in _FIXED]
    if total > budget:  # one huge identity value must not push every other field out
        for key in cuttable:
            if now[key] > budget // 4:
                cut(key, budget // 4)
    # Sorted by size only: a processor may have added keys of types that do not compare.
    for key in sorted((k for k in now if not is_identity(k)), key=now.__getitem__, reverse=True):
        if total <= budget:
            return kept, truncated, dropped
        drop(key)
    if total > budget:
        room = budget - (total - sum(now[k] for k in cuttable))
        left = len(cuttable)
        for key in sorted(cuttable, key=now.__getitem__):  # smallest first: equal shares
            share = max(0, room) // left
            left -= 1
            if now[key] > share:
                cut(key, share)
            room -= now[key]
    for key in sorted(now, key=now.__getitem__, reverse=True):
        if total <= budget:
            break
        drop(key)
        if key in truncated:
            truncated.remove(key)
    return kept, truncated, dropped
