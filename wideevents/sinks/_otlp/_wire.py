"""The OTLP wire format's building blocks: varints, times, ids, attributes, replies.

An attribute is a length-delimited ``KeyValue`` under its message's attribute field:
``tag, len(kv), key field, 0x12, len(AnyValue), AnyValue``. :class:`Key` precomputes
everything that depends on the key alone, so that encoding a double, a boolean or a
small integer is a concatenation, and remembers the encoded attributes of repeated
strings and integers. Used by :mod:`._encode` (the per-event hot path).
"""

from __future__ import annotations

import calendar
import datetime as _dt
import struct
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from ..._core.normalize import safe_repr
from ..._core.resource import RESOURCE_PREFIXES

__all__ = [
    "INT64_MAX", "INT64_MIN", "ROLE_ATTR", "ROLE_RATE", "ROLE_RESOURCE", "ROLE_SKIP", "Key",
    "Keys", "attr_json", "attr_pb", "attrs_json", "attrs_pb", "duration_ns", "field", "hex_bytes",
    "is_resource_key", "json_double",
    "pack_d", "parse_export_response", "parse_status_message", "timestamp_ns",
    "uvarint",
]

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
KEY_CACHE_MAX = 50_000
RESOURCE_KEYS = frozenset({"host.name", "process.pid", "deployment.environment.name"})
# What a field becomes: an attribute, a resource attribute, part of the record, SampleRate.
ROLE_ATTR, ROLE_RESOURCE, ROLE_SKIP, ROLE_RATE = 0, 1, 2, 3

pack_d = struct.Struct("<d").pack
SMALL = [bytes([i]) for i in range(128)]


def is_resource_key(key: str) -> bool:
    """True for the fields that describe who emitted the event (OTLP resource attributes):
    with the detected container, Kubernetes, cloud and runtime fields (issue 22)."""
    return key in RESOURCE_KEYS or key.startswith("service.") or key.startswith(RESOURCE_PREFIXES)


def uvarint(n: int) -> bytes:
    """A non-negative integer as a protobuf varint (the common short forms without a loop)."""
    if n < 0x80:
        return SMALL[n]
    if n < 0x4000:
        return bytes((n & 0x7F | 0x80, n >> 7))
    if n < 0x200000:
        return bytes((n & 0x7F | 0x80, (n >> 7) & 0x7F | 0x80, n >> 14))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def varint(n: int) -> bytes:
    """int64 varint: negative numbers take ten bytes (two's complement), as protobuf does."""
    return uvarint(n if n >= 0 else n + (1 << 64))


def field(tag: bytes, data: bytes) -> bytes:
    """A length-delimited field: ``tag``, the length, ``data``."""
    return tag + uvarint(len(data)) + data


# -- timestamps ------------------------------------------------------------------------------
_second_cache: dict[str, int] = {}


def timestamp_ns(fields: Mapping[str, Any]) -> int:
    """The event's ``timestamp`` (RFC 3339) in Unix nanoseconds; now when it is unreadable.

    The pipeline writes ``YYYY-MM-DDTHH:MM:SS.ffffffZ``: the per-second prefix is cached,
    so the usual cost is a slice and an ``int()``.
    """
    stamp = fields.get("timestamp")
    if type(stamp) is str:
        if len(stamp) == 27 and stamp[19] == "." and stamp[26] == "Z":
            prefix = stamp[:19]
            sec = _second_cache.get(prefix)
            if sec is None:
                try:
                    sec = calendar.timegm(time.strptime(prefix, "%Y-%m-%dT%H:%M:%S"))
                except ValueError:
                    sec = -1
                if len(_second_cache) > 4096:
                    _second_cache.clear()
                _second_cache[prefix] = sec
            micros = stamp[20:26]
            if sec >= 0 and micros.isascii() and micros.isdigit():
                return sec * 1_000_000_000 + int(micros) * 1000
        try:
            when = _dt.datetime.fromisoformat(stamp)
            if when.tzinfo is None:
                when = when.replace(tzinfo=_dt.UTC)
            delta = when - _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
            ns = (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
            if ns > 0:
                return ns
        except ValueError:
            pass
    elif isinstance(stamp, (int, float)) and not isinstance(stamp, bool) and 0 < stamp < 1e11:
        return int(stamp * 1e9)  # Unix seconds, as set by a processor
    return time.time_ns()


def duration_ns(fields: Mapping[str, Any]) -> int:
    """``duration_ms`` in nanoseconds (0 when missing or not a sane number)."""
    d = fields.get("duration_ms")
    if isinstance(d, (int, float)) and not isinstance(d, bool) and 0 <= d < 1e15:
        return int(d * 1e6)
    return 0


def hex_bytes(value: Any, size: int) -> bytes | None:
    if type(value) is not str or len(value) != 2 * size:
        return None
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        return None
    return raw if any(raw) else None


# -- attribute values ------------------------------------------------------------------------
class Key:
    """Per-key precomputation: role, and the constant parts of its encoded attributes.

    An attribute is a length-delimited ``KeyValue`` under the message's attribute field
    ``tag``: ``tag, len(kv), kp, 0x12, len(av), av`` with ``kp`` the encoded key. For
    doubles, booleans and small integers the whole prefix is constant, so it is built once.
    """

    __slots__ = ("role", "tag", "kp12", "kpl", "dbl", "bool_t", "bool_f", "int_small",
                 "json", "json_dbl", "json_str", "json_int", "vals")

    def __init__(self, key: str, role: int, tag: bytes) -> None:
        self.role = role
        self.tag = tag
        # Encoded attributes of recent string and integer values (labels, routes, status
        # codes repeat): a dict lookup instead of an encoding.
        self.vals: dict[object, bytes] = {}
        kb = key.encode("utf-8", "replace")
        kp = b"\x0a" + uvarint(len(kb)) + kb  # KeyValue.key
        self.kp12 = kp + b"\x12"  # ... then KeyValue.value
        self.kpl = kpl = len(kp)
        self.dbl = tag + uvarint(kpl + 11) + kp + b"\x12\x09\x21"  # AnyValue: 0x21 + 8 bytes
        self.bool_t = tag + uvarint(kpl + 4) + kp + b"\x12\x02\x10\x01"
        self.bool_f = tag + uvarint(kpl + 4) + kp + b"\x12\x02\x10\x00"
        self.int_small = tag + uvarint(kpl + 4) + kp + b"\x12\x02\x18"  # 0 <= value < 128
        # JSON: a leading comma; the first attribute of a record drops it.
        self.json = b',{"key":' + orjson.dumps(key) + b',"value":'
        self.json_dbl = self.json + b'{"doubleValue":'
        self.json_str = self.json + b'{"stringValue":'
        self.json_int = self.json + b'{"intValue":"'


def _any_value_pb(v: Any) -> bytes:
    """An encoded ``AnyValue`` message body for any value (the general path)."""
    t = type(v)
    if t is str:
        return field(b"\x0a", v.encode("utf-8", "replace"))
    if t is bool:
        return b"\x10\x01" if v else b"\x10\x00"
    if t is int:
        if INT64_MIN <= v <= INT64_MAX:
            return b"\x18" + varint(v)
        return field(b"\x0a", str(v).encode())
    if t is float:
        return b"\x21" + pack_d(v)
    if v is None:
        return b""  # an empty AnyValue: null inside an array
    if t in (list, tuple):
        return field(b"\x2a", b"".join([field(b"\x0a", _any_value_pb(x)) for x in v]))
    return field(b"\x0a", _fallback_string(v).encode("utf-8", "replace"))


def _fallback_string(v: Any) -> str:
    if isinstance(v, Mapping):
        try:
            return orjson.dumps(v, default=safe_repr, option=orjson.OPT_NON_STR_KEYS).decode()
        except Exception:  # noqa: BLE001 - an unencodable mapping falls back to its repr
            pass
    if isinstance(v, bytes):
        return v.hex()
    return str(v) if isinstance(v, (int, float, str)) else safe_repr(v)


def json_double(v: float) -> bytes:
    """A double in OTLP/JSON: a number, or "NaN" / "Infinity" / "-Infinity" as protobuf's JSON."""
    if v == v and v - v == 0:
        return orjson.dumps(v)
    return b'"NaN"' if v != v else (b'"Infinity"' if v > 0 else b'"-Infinity"')


def _any_value_json(v: Any) -> bytes:
    t = type(v)
    if t is str:
        return b'{"stringValue":' + orjson.dumps(v) + b"}"
    if t is bool:
        return b'{"boolValue":true}' if v else b'{"boolValue":false}'
    if t is int:
        if INT64_MIN <= v <= INT64_MAX:
            return b'{"intValue":"%d"}' % v
        return b'{"stringValue":"%d"}' % v
    if t is float:
        return b'{"doubleValue":' + json_double(v) + b"}"
    if v is None:
        return b"{}"
    if t in (list, tuple):
        return b'{"arrayValue":{"values":[' + b",".join(map(_any_value_json, v)) + b"]}}"
    return b'{"stringValue":' + orjson.dumps(_fallback_string(v)) + b"}"


def attr_pb(info: Key, v: Any, out: list[bytes]) -> None:
    """Append one encoded attribute (any value) to ``out``."""
    t = type(v)
    if t is float:
        out.append(info.dbl + pack_d(v))
    elif t is bool:
        out.append(info.bool_t if v else info.bool_f)
    elif t is int and 0 <= v < 0x80:
        out.append(info.int_small + SMALL[v])
    elif t is int and 0 <= v < 0x10000000 and info.kpl < 120:  # one-byte lengths throughout
        iv = uvarint(v)
        n = len(iv) + 1
        out.append(b"".join((info.tag, SMALL[info.kpl + 2 + n], info.kp12, SMALL[n], b"\x18",
                             iv)))
    else:
        if t is str:
            sb = v.encode("utf-8", "replace")
            av = b"\x0a" + uvarint(len(sb)) + sb
        else:
            av = _any_value_pb(v)
        size = info.kpl + 1 + len(av)
        al = uvarint(len(av))
        out.extend((info.tag, uvarint(size + len(al)), info.kp12, al, av))


def attr_json(info: Key, v: Any, out: list[bytes]) -> None:
    t = type(v)
    if t is float:
        out.extend((info.json_dbl, json_double(v), b"}}"))
    elif t is str:
        out.extend((info.json_str, orjson.dumps(v), b"}}"))
    elif t is int and INT64_MIN <= v <= INT64_MAX:
        out.extend((info.json_int, b"%d" % v, b'"}}'))
    else:
        out.extend((info.json, _any_value_json(v), b"}"))


class Keys:
    """The ``Key`` cache of one attribute field (its protobuf tag) and one signal."""

    def __init__(self, tag: bytes, skip: frozenset[str], resource: bool,
                 extra: frozenset[str] = frozenset()) -> None:
        self.tag = tag
        self._skip = skip
        self._resource = resource
        self._extra = extra  # more resource keys: those of the base resource
        self.cache: dict[str, Key] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> Key:
        info = self.cache.get(key)
        if info is None:
            info = self.make(key)
        return info

    def make(self, key: str) -> Key:
        if key in self._skip:
            role = ROLE_SKIP
        elif key == "samplerate":
            role = ROLE_RATE
        elif self._resource and (is_resource_key(key) or key in self._extra):
            role = ROLE_RESOURCE
        else:
            role = ROLE_ATTR
        info = Key(key if role != ROLE_RATE else "SampleRate", role, self.tag)
        with self._lock:
            if len(self.cache) >= KEY_CACHE_MAX:  # bounded: high-cardinality keys
                self.cache = {}
            self.cache[key] = info
        return info


def attrs_pb(keys: Keys, items: Iterable[tuple[str, Any]]) -> bytes:
    out: list[bytes] = []
    for k, v in items:
        if v is not None:
            attr_pb(keys.get(k), v, out)
    return b"".join(out)


def attrs_json(keys: Keys, items: Iterable[tuple[str, Any]]) -> bytes:
    out: list[bytes] = []
    for k, v in items:
        if v is not None:
            attr_json(keys.get(k), v, out)
    if out:
        out[0] = out[0][1:]
    return b"[" + b"".join(out) + b"]"


# -- replies ---------------------------------------------------------------------------------
def _read_varint(data: bytes, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = data[i]
        i += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, i
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _pb_fields(data: bytes) -> dict[int, Any]:
    """The last value of each top-level field of a protobuf message (varints and bytes)."""
    out: dict[int, Any] = {}
    i, n = 0, len(data)
    while i < n:
        key, i = _read_varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            out[number], i = _read_varint(data, i)
        elif wire == 2:
            size, i = _read_varint(data, i)
            out[number] = data[i:i + size]
            i += size
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if i > n:
            raise ValueError("truncated message")
    return out


def parse_export_response(body: bytes, signal: str, json: bool) -> tuple[int, str]:
    """``(rejected, error_message)`` from an export response's ``partial_success``.

    Raises ValueError when the body cannot be read. An empty body is a full success.
    """
    if not body.strip():
        return 0, ""
    if json or body[:1] == b"{":
        parsed = orjson.loads(body)
        if not isinstance(parsed, dict):
            raise ValueError("an export response is a JSON object")
        partial = parsed.get("partialSuccess") or parsed.get("partial_success") or {}
        if not isinstance(partial, dict):
            raise ValueError("partialSuccess is not an object")
        name = "rejectedSpans" if signal == "traces" else "rejectedLogRecords"
        snake = "rejected_spans" if signal == "traces" else "rejected_log_records"
        raw = partial.get(name, partial.get(snake, 0))
        rejected = int(raw) if raw not in (None, "") else 0
        message = partial.get("errorMessage", partial.get("error_message", ""))
        return max(rejected, 0), str(message or "")
    partial_pb = _pb_fields(body).get(1)
    if not isinstance(partial_pb, bytes):
        return 0, ""
    fields = _pb_fields(partial_pb)
    rejected = fields.get(1, 0)
    if rejected >= 1 << 63:
        rejected -= 1 << 64
    message = fields.get(2, b"")
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else ""
    return max(int(rejected), 0), text


def parse_status_message(body: bytes) -> str:
    """The ``message`` of a ``google.rpc.Status`` error body (protobuf or JSON), else its text."""
    try:
        if body[:1] == b"{":
            parsed = orjson.loads(body)
            if isinstance(parsed, dict) and isinstance(parsed.get("message"), str):
                return str(parsed["message"])[:200]
        else:
            message = _pb_fields(body).get(2)
            if isinstance(message, bytes):
                return message.decode("utf-8", "replace")[:200]
    except (ValueError, IndexError, orjson.JSONDecodeError):
        pass
    return body[:200].decode("utf-8", "replace")
