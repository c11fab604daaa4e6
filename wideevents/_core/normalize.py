"""Turning whatever a user put in an event into flat, JSON-safe fields.

Two steps with different budgets:

- :func:`snapshot` runs on the request thread when a value is added. It only makes sure
  later mutation of the caller's object cannot change the event (arrays and containers
  are copied; immutable scalars pass through untouched).
- :class:`Normalizer` runs on the pipeline's worker. A fast pass checks every value; only
  events holding something unusual go through the slow path, which applies the value
  rules of docs/schema.md ("Values"): numpy scalars become numbers; arrays of up to 128
  elements lists, longer ones a summary; NaN/Inf ``null``; nested mappings dotted keys;
  datetimes RFC 3339; bytes their length and SHA-256 prefix; anything else a bounded
  ``repr`` that cannot raise.

Both apply the redaction rules of :mod:`.redact` wherever a value's structure is about to
be lost (docs/reliability.md, "Secrets and redaction"): a container under a secret key
becomes ``"[REDACTED]"`` as one field (``{"password": {"value": ...}}`` gives
``password``, never ``password.value``); containers written as JSON text (inside lists,
deeper than five levels) and reprs are scrubbed first; dataclasses and named tuples
flatten like mappings; pandas objects keep their labels until the worker redacts their
secret columns, rows and names. Flat scalars under secret keys are left to the redaction
step after the user's processors.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as _dt
import decimal
import enum
import hashlib
import math
import pathlib
import sys
import uuid
from collections.abc import Mapping
from typing import Any

from .redact import MAX_KEY_BYTES, REDACTED, Redactor, default_redactor, key_too_long
from .timefmt import rfc3339

__all__ = ["FieldReport", "Normalizer", "key_too_long", "safe_repr", "snapshot"]

MAX_ARRAY_ITEMS = 128
MAX_DEPTH = 5
MAX_REPR = 1024
_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1
_SNAPSHOT_DEPTH = 8

_PASS_THROUGH: frozenset[type] = frozenset(
    {str, int, float, bool, type(None), bytes, _dt.datetime, _dt.date, _dt.time,
     _dt.timedelta, decimal.Decimal, uuid.UUID, complex}
)
_SCALAR_TYPES = frozenset({str, int, float, bool, type(None)})


def _enum(value: enum.Enum) -> str:
    """Enums are strings: the value when it is one, else the member name."""
    inner = value.value
    return inner if isinstance(inner, str) else value.name


def safe_repr(value: object, limit: int = MAX_REPR) -> str:
    """A bounded ``repr`` that never raises."""
    try:
        text = repr(value)
    except BaseException:  # noqa: BLE001 - a raising __repr__ must not escape
        try:
            name = type(value).__qualname__
        except BaseException:  # noqa: BLE001 - a raising type name must not escape either
            name = "object"
        return f"<unrepresentable {name}>"
    if type(text) is not str:
        return "<unrepresentable>"
    if len(text) > limit:
        return text[: limit - 3] + "..."
    return text


def _is_numpy(value: object) -> bool:
    return type(value).__module__ == "numpy"


def _is_pandas(t: type) -> bool:
    """A pandas DataFrame or Series (by name and module: pandas is never imported here)."""
    if t.__name__ not in ("DataFrame", "Series"):
        return False
    module = t.__module__
    return type(module) is str and module.startswith("pandas")


def _fields_of(value: Any) -> dict[str, Any] | None:
    """A dataclass instance's or named tuple's fields as a mapping, else None."""
    t = type(value)
    if isinstance(value, tuple):
        names = getattr(t, "_fields", None)
        return dict(zip(names, value)) if type(names) is tuple else None
    if dataclasses.is_dataclass(t):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    return None


def _withheld(value: Any) -> str:
    """The text of a value that could not be copied or converted, secrets redacted."""
    clean = default_redactor().scrub(value)
    return clean if type(clean) is str else safe_repr(clean)


def snapshot(value: Any, depth: int = 0) -> Any:
    """A copy of ``value`` that later mutation of the caller's objects cannot change."""
    t = type(value)
    if t in _PASS_THROUGH:
        return value
    try:
        if t is list or t is tuple:
            if _SCALAR_TYPES.issuperset(map(type, value)):
                return list(value)  # the common case: a flat list of scalars
            if depth >= _SNAPSHOT_DEPTH:
                return default_redactor().scrub(value)  # a copy, bounded, secrets out
            return [snapshot(v, depth + 1) for v in value]
        if t is dict:
            if depth >= _SNAPSHOT_DEPTH:
                return default_redactor().scrub(value)
            return {k: snapshot(v, depth + 1) for k, v in value.items()}
        if t.__module__ == "numpy":
            # ndarray: copy; numpy scalars are immutable.
            copy = getattr(value, "copy", None)
            return copy() if t.__name__ == "ndarray" and copy is not None else value
        if _is_pandas(t):
            # Keep the labels (column, index and Series names count as keys for redaction).
            return value.copy(deep=True) if hasattr(value, "copy") else _to_numpy(value)
        if isinstance(value, tuple) and type(getattr(t, "_fields", None)) is tuple:
            value = _fields_of(value)  # a named tuple: its field names are keys
        if isinstance(value, (list, tuple, collections.deque)):
            if depth >= _SNAPSHOT_DEPTH:
                return default_redactor().scrub(value)
            return [snapshot(v, depth + 1) for v in value]
        if isinstance(value, (set, frozenset, bytearray, memoryview)):
            return bytes(value) if not isinstance(value, (set, frozenset)) else list(value)
        if isinstance(value, enum.Enum):
            return _enum(value)
        if isinstance(value, Mapping):
            if depth >= _SNAPSHOT_DEPTH:
                return default_redactor().scrub(value)
            return {k: snapshot(v, depth + 1) for k, v in value.items()}
        if hasattr(value, "__array__") or hasattr(value, "numpy"):
            return _to_numpy(value)
    except BaseException:  # noqa: BLE001 - user objects may raise anywhere
        return _withheld(value)
    return value


def _to_numpy(value: Any) -> Any:
    """An array-like (torch, jax, ...) as a numpy copy, without importing its library."""
    import numpy as np

    if hasattr(value, "__array__"):
        try:
            arr = np.array(value, copy=True)
            if not (arr.dtype == object and arr.ndim == 0):
                return arr
        except Exception:  # noqa: BLE001 - fall back to .numpy()
            pass
    to_numpy = getattr(value, "numpy", None)
    if not callable(to_numpy):
        raise TypeError(f"{type(value).__name__} is not array-like")
    detach = getattr(value, "detach", None)
    src = detach().cpu() if callable(detach) else value
    return np.array(src.numpy(), copy=True)


class FieldReport:
    """What normalisation and limits did to one event's fields (names kept in order)."""

    __slots__ = ("nonfinite", "truncated", "dropped")

    def __init__(self) -> None:
        self.nonfinite: list[str] = []
        self.truncated: list[tuple[str, str]] = []  # (field, reason)
        self.dropped: list[tuple[str, str]] = []  # (field, reason)

    def __bool__(self) -> bool:
        return bool(self.nonfinite or self.truncated or self.dropped)


def _utf8_prefix(text: str, max_bytes: int) -> str:
    raw = text.encode("utf-8", "surrogatepass")
    if len(raw) <= max_bytes:
        return text
    return raw[:max_bytes].decode("utf-8", "ignore")


def fix_surrogates(text: str) -> str:
    """Replace lone surrogates (not encodable as UTF-8) with U+FFFD."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


class Normalizer:
    """Flatten and make JSON-safe one event's fields (worker thread)."""

    def __init__(self, *, max_string_bytes: int = 65_536, redactor: Redactor | None = None
                 ) -> None:
        self.max_string_bytes = max_string_bytes
        self._redactor = redactor if redactor is not None else default_redactor()
        # A str of n chars is at most 4n UTF-8 bytes: shorter ones never need measuring.
        self._short = max_string_bytes // 4

    def __call__(self, fields: dict[str, Any], report: FieldReport) -> dict[str, Any]:
        """Return ``fields`` itself when already clean, else a normalised copy."""
        short = self._short
        for k, v in fields.items():
            t = type(v)
            if t is str:
                if len(v) > short:
                    break
            elif t is float:
                if v - v != 0.0:
                    break
            elif t is int:
                if v < _INT_MIN or v > _INT_MAX:
                    break
            elif t is not bool and v is not None:
                break
            if type(k) is not str or (len(k) > MAX_KEY_BYTES // 4 and key_too_long(k)):
                break
        else:
            return fields
        out: dict[str, Any] = {}
        secret_key = self._redactor.is_secret_key
        for k, v in fields.items():
            if type(k) is str and not (len(k) > MAX_KEY_BYTES // 4 and key_too_long(k)):
                key = k
            else:
                key = self._key(k)
                if type(k) is str and key != k:
                    report.truncated.append((key, "key_too_long"))
                if secret_key(k):  # judged before the cut (or conversion) hides its name
                    out[key] = REDACTED
                    continue
            self._value(key, v, out, report, 0)
        return out

    @staticmethod
    def _key(key: object) -> str:
        try:
            text = fix_surrogates(str(key))
        except BaseException:  # noqa: BLE001 - a user key's __str__ may raise anything
            text = safe_repr(key)
        return _utf8_prefix(text, MAX_KEY_BYTES)

    def _value(self, key: str, v: Any, out: dict[str, Any], report: FieldReport, depth: int) -> None:
        try:
            out[key] = self._scalar(key, v, out, report, depth)
        except _Expanded:
            pass
        except BaseException:  # noqa: BLE001 - never let a user value escape as an exception
            clean = self._redactor.scrub(v)  # its repr must not show what it holds
            out[key] = clean if type(clean) is str else safe_repr(clean)
            report.truncated.append((key, "unrepresentable"))

    def _string(self, key: str, v: str, report: FieldReport) -> str:
        if len(v) > self._short:
            cut = _utf8_prefix(v, self.max_string_bytes)
            if cut is not v:
                report.truncated.append((key, "string_too_long"))
                v = cut
        return v

    def _scalar(self, key: str, v: Any, out: dict[str, Any], report: FieldReport, depth: int) -> Any:
        t = type(v)
        if t is str:
            return self._string(key, v, report)
        if t is bool or v is None:
            return v
        if t is int:
            return v if _INT_MIN <= v <= _INT_MAX else str(v)
        if t is float:
            if math.isfinite(v):
                return v
            report.nonfinite.append(key)
            return None
        if self._redactor.is_secret(key):
            # A container (or any non-scalar) under a secret key: the whole value, one field
            # (flat scalars are left to the redaction step after the processors).
            return REDACTED
        if t.__module__ == "numpy":
            if t.__name__ == "ndarray":
                return self._array(key, v, out, report)
            name = t.__name__
            if name == "datetime64":
                import numpy as np

                if np.isnat(v):
                    return None
                return str(np.datetime_as_string(v, unit="us", timezone="UTC"))
            if name == "timedelta64":
                import numpy as np

                return None if np.isnat(v) else float(v / np.timedelta64(1, "s"))
            if hasattr(v, "item"):
                item = v.item()
                if type(item) is type(v):  # e.g. datetime64 without a Python equivalent
                    return str(v)
                return self._scalar(key, item, out, report, depth)
        if isinstance(v, Mapping):
            self._mapping(key, v, out, report, depth + 1)
            raise _Expanded
        as_fields = _fields_of(v)
        if as_fields is not None:  # a dataclass or named tuple: flattened like a mapping
            self._mapping(key, as_fields, out, report, depth + 1)
            raise _Expanded
        if isinstance(v, (list, tuple, set, frozenset, collections.deque)):
            return self._list(key, list(v), out, report, depth)
        if isinstance(v, (bytes, bytearray, memoryview)):
            raw = bytes(v)
            return f"<{len(raw)} bytes sha256:{hashlib.sha256(raw).hexdigest()[:16]}>"
        if isinstance(v, bool):
            return bool(v)
        if isinstance(v, enum.Enum):
            return _enum(v)
        if isinstance(v, int):
            return self._scalar(key, int(v), out, report, depth)
        if isinstance(v, float):
            return self._scalar(key, float(v), out, report, depth)
        if isinstance(v, str):
            return self._string(key, str(v), report)
        if isinstance(v, _dt.datetime):
            return rfc3339(v)
        if isinstance(v, (_dt.date, _dt.time)):
            return v.isoformat()
        if isinstance(v, _dt.timedelta):
            return v.total_seconds()
        if isinstance(v, decimal.Decimal):
            if not v.is_finite():
                report.nonfinite.append(key)
                return None
            if v == v.to_integral_value() and abs(v) < 2**63:
                return int(v)
            as_float = float(v)
            return as_float if math.isfinite(as_float) else str(v)  # beyond float: exact text
        if isinstance(v, (uuid.UUID, pathlib.PurePath)):
            return str(v)
        if isinstance(v, complex):
            return str(v)
        if _is_pandas(t):
            v = self._redactor.scrub(v)  # secret columns, rows and names, before any array
            if type(v) is str:
                return v
        if hasattr(v, "__array__") or (hasattr(v, "numpy") and callable(v.numpy)):
            return self._array(key, _to_numpy(v), out, report)
        text = safe_repr(v)
        return self._string(key, text, report)

    def _mapping(self, prefix: str, mapping: Mapping[Any, Any], out: dict[str, Any],
                 report: FieldReport, depth: int) -> None:
        if depth > MAX_DEPTH:
            out[prefix] = self._string(prefix, self._as_json_string(mapping), report)
            report.truncated.append((prefix, "depth"))
            return
        secret_key = self._redactor.is_secret_key
        for k, v in mapping.items():
            key = f"{prefix}.{k if type(k) is str else self._key(k)}"
            secret = type(k) is not str and secret_key(k)  # b"password", an enum member
            if len(key) > MAX_KEY_BYTES // 4 and key_too_long(key):
                secret = secret or self._redactor.is_secret(key)  # before the cut hides it
                key = _utf8_prefix(key, MAX_KEY_BYTES)
                report.truncated.append((key, "key_too_long"))
            if secret:
                out[key] = REDACTED
                continue
            self._value(key, v, out, report, depth)

    def _as_json_string(self, value: Any, scrubbed: bool = False) -> str:
        """A container as JSON text, its secrets redacted first (the text cannot be)."""
        import orjson

        if not scrubbed:
            value = self._redactor.scrub(value)
        try:
            return orjson.dumps(value, default=_json_default, option=orjson.OPT_NON_STR_KEYS |
                                orjson.OPT_SERIALIZE_NUMPY).decode()
        except orjson.JSONEncodeError:
            return safe_repr(value)

    def _element(self, key: str, v: Any, report: FieldReport) -> Any:
        """One list element: scalars only (lists are flat); containers become JSON strings.

        Callers scrub the whole list first (where ``(name, value)`` pairs are recognised).
        """
        t = type(v)
        if t is str:
            return self._string(key, v, report)
        if t is int or t is bool or v is None:
            return v if t is not int or _INT_MIN <= v <= _INT_MAX else str(v)
        if t is float:
            if math.isfinite(v):
                return v
            if key not in report.nonfinite:
                report.nonfinite.append(key)
            return None
        if (isinstance(v, (Mapping, list, tuple, set, frozenset, collections.deque))
                or type(v).__name__ == "ndarray" or _is_pandas(type(v))
                or _fields_of(v) is not None):
            return self._string(key, self._as_json_string(v, scrubbed=True), report)
        try:
            return self._scalar(key, v, {}, report, MAX_DEPTH)
        except _Expanded:  # an array-like inside a list: keep it whole, as a string
            return self._string(key, self._as_json_string(_to_numpy(v)), report)

    def _list(self, key: str, items: list[Any], out: dict[str, Any], report: FieldReport,
              depth: int) -> Any:
        if len(items) > MAX_ARRAY_ITEMS:
            if all(type(x) in (int, float) for x in items):
                import numpy as np

                return self._array(key, np.asarray(items, dtype=float), out, report)
            items = items[:MAX_ARRAY_ITEMS]
            report.truncated.append((key, "list_too_long"))
        if not _SCALAR_TYPES.issuperset(map(type, items)):
            items = self._redactor.scrub(items)  # (name, value) pairs are read as headers
        return [self._element(key, x, report) for x in items]

    def _array(self, key: str, arr: Any, out: dict[str, Any], report: FieldReport) -> Any:
        import numpy as np

        arr = np.asarray(arr)
        if arr.size <= MAX_ARRAY_ITEMS:
            items = arr.ravel().tolist()
            if arr.dtype.kind == "O":
                items = self._redactor.scrub(items)
            return [self._element(key, x, report) for x in items]
        report.truncated.append((key, "array_summarised"))
        out[f"{key}.len"] = int(arr.size)
        if arr.dtype.kind in "biuf":
            flat = arr.astype(float, copy=False).ravel()
            finite = flat[np.isfinite(flat)]
            if finite.size:
                out[f"{key}.min"] = float(finite.min())
                out[f"{key}.max"] = float(finite.max())
                # Dividing first: the sum of values near 1e308 must not overflow to inf.
                out[f"{key}.mean"] = float(np.sum(finite / finite.size))
            if finite.size != flat.size:
                out[f"{key}.nonfinite_count"] = int(flat.size - finite.size)
        raise _Expanded


def _json_default(value: Any) -> Any:
    """What orjson cannot write inside JSON text: bytes as their summary (never their
    content), pandas objects and array-likes as lists, anything else its bounded repr."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        return f"<{len(raw)} bytes sha256:{hashlib.sha256(raw).hexdigest()[:16]}>"
    if _is_pandas(type(value)) and hasattr(value, "to_numpy"):
        return default_redactor().scrub(value.to_numpy().tolist())
    return safe_repr(value)


class _Expanded(Exception):
    """Raised internally when a value was written as several dotted keys."""


# Keep the recursion of deeply nested user containers well inside the interpreter's limit.
assert MAX_DEPTH * 2 < sys.getrecursionlimit()
