"""Events to OTLP: a hand-written protobuf encoder and an OTLP/JSON encoder, logs and traces.

No dependency: the protobuf wire format is written directly (the tests decode every
shape with ``opentelemetry-proto``). The mapping, shared with :mod:`wideevents.sinks._otel`:

========================================  =================================================
event field                               OTLP
========================================  =================================================
``name``                                  span name / log ``event_name`` (+ attribute)
``timestamp``, ``duration_ms``            span start, end / log time (+ ``duration_ms``)
``trace.trace_id``, ``trace.span_id``     ids (``trace.parent_id``: span parent / attribute)
``service.*``, ``host.name``,             resource attributes (with ``OTEL_RESOURCE_ATTRIBUTES``)
``process.pid``,
``deployment.environment.name``
``error``                                 span status ERROR + ``exception`` event / severity
``samplerate``                            integer attribute ``SampleRate``
``None`` values                           omitted (counted)
everything else                           attributes, types kept (int, double, bool, string,
                                          arrays); integers beyond int64 become strings
========================================  =================================================

Each event is encoded once, on the pipeline's worker, into one *item*: a byte naming its
resource (an index into :class:`Encoder`'s resource table) followed by the encoded record.
:meth:`Encoder.body` (on a sender thread) groups a batch's items by resource into one
export request, so a batch costs a join, whatever the encoding.
"""

from __future__ import annotations

import operator
import struct
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson

from ..._core.normalize import safe_repr
from ..._core.samplerate import sample_rate
from ._wire import (
    INT64_MAX,
    INT64_MIN,
    KEY_CACHE_MAX,
    ROLE_ATTR,
    ROLE_RATE,
    ROLE_RESOURCE,
    Key,
    Keys,
    attr_json,
    attr_pb,
    attrs_json,
    attrs_pb,
    duration_ns,
    field,
    hex_bytes,
    is_resource_key,
    json_double,
    pack_d,
    parse_export_response,
    parse_status_message,
    timestamp_ns,
    uvarint,
)

__all__ = [
    "ENCODINGS", "INT64_MAX", "INT64_MIN", "SIGNALS", "Encoder", "duration_ns", "is_resource_key",
    "parse_export_response", "parse_status_message", "timestamp_ns",
]

SIGNALS = ("logs", "traces")
ENCODINGS = ("protobuf", "json")
SCOPE_NAME = "wideevents"
MAX_RESOURCES = 255  # one byte names an item's resource (0: the base resource)
_VALUES_PER_KEY = 1024  # cached encoded values per key ...
_VALUES_MAX = 50_000  # ... and in all (bounded memory whatever the cardinality)
_VALUE_MAX_LEN = 64  # longer strings are rarely repeated
_PACKERS_MAX = 256  # compiled layouts of a record's doubles
_PLANS_MAX = 256  # compiled field layouts (keys and value types) of records
_CHUNK_BYTES = 256 * 1024  # request bodies go to the compressor in pieces of this size

# Fields that become part of the record itself rather than attributes (per signal).
_SKIP_TRACES = frozenset({"name", "timestamp", "duration_ms", "trace.trace_id", "trace.span_id",
                          "trace.parent_id"})
_SKIP_LOGS = frozenset({"timestamp", "trace.trace_id", "trace.span_id"})

SEVERITY_INFO, SEVERITY_ERROR = 9, 17
SPAN_KIND_INTERNAL, SPAN_KIND_SERVER = 1, 2
STATUS_ERROR = 2

_pack_q = struct.Struct("<Q").pack
_BYTE = [bytes([i]) for i in range(256)]


# -- the encoder -----------------------------------------------------------------------------
class Encoder:
    """Encodes events of one signal in one encoding; builds request bodies from items.

    ``resource`` holds the resource attributes every event starts from (for example
    ``OTEL_RESOURCE_ATTRIBUTES``); an event's own ``service.*``, ``host.name``, ``process.pid``,
    ``deployment.environment.name`` and keys of ``resource`` override them. ``null_fields``
    counts the ``None`` values left out. Thread-safety: :meth:`encode` runs on one thread
    (the pipeline's worker); :meth:`body` may run on any number of sender threads.
    """

    def __init__(self, signal: str, encoding: str, resource: Mapping[str, Any],
                 scope_version: str = "") -> None:
        if signal not in SIGNALS:
            raise ValueError(f"unknown signal {signal!r}")
        if encoding not in ENCODINGS:
            raise ValueError(f"unknown encoding {encoding!r}")
        self.signal = signal
        self.encoding = encoding
        self.json = encoding == "json"
        self.null_fields = 0
        self._base_resource = dict(resource)
        self._traces = traces = signal == "traces"
        # Span.attributes is field 9, LogRecord.attributes field 6.
        self._keys = Keys(b"\x4a" if traces else b"\x32", _SKIP_TRACES if traces else _SKIP_LOGS,
                           resource=True, extra=frozenset(resource))
        self._resource_keys = Keys(b"\x0a", frozenset(), resource=False)
        self._event_keys = Keys(b"\x1a", frozenset(), resource=False)  # Span.Event.attributes
        self._attr: dict[str, Key] = {}  # keys that are plain attributes
        self._special: dict[str, int] = {}  # the others, with their role
        self._cached_values = 0
        self._packers: dict[tuple[Key, ...], tuple[Callable[..., bytes], list[Any]]] = {}
        self._last_layout: tuple[list[Key], Any] = ([], None)
        self._plans: dict[tuple[tuple[Any, ...], tuple[type, ...]], _Plan | None] = {}
        self._last_plan: _Plan | None = None
        self._ids: dict[object, int] = {}
        self._resources: list[bytes] = []  # encoded Resource per id (protobuf or JSON)
        self._ids[()] = self._add_resource(None)  # 0: the base resource (also past MAX_RESOURCES)
        if self.json:
            self._scope = orjson.dumps({"name": SCOPE_NAME, "version": scope_version}
                                       if scope_version else {"name": SCOPE_NAME})
        else:
            scope = field(b"\x0a", SCOPE_NAME.encode())
            if scope_version:
                scope += field(b"\x12", scope_version.encode())
            self._scope = field(b"\x0a", scope)  # ScopeLogs/ScopeSpans.scope
        self.content_type = "application/json" if self.json else "application/x-protobuf"

    # -- per event (worker thread) ----------------------------------------------------------
    def encode(self, fields: Mapping[str, Any]) -> bytes:
        """One item: the resource byte, then the encoded LogRecord or Span."""
        if self.json:
            attrs: list[bytes] = []
            res, rate, nulls = self._attributes(fields, attrs)
            if rate is not None:
                attr_json(self._keys.get("samplerate"), sample_rate(rate), attrs)
            rid = self._resource_id(res, attrs)
            if attrs:
                attrs[0] = attrs[0][1:]
            record = (self._span_json if self._traces else self._log_json)(fields, attrs)
            if nulls:
                self.null_fields += nulls
            return _BYTE[rid] + record
        # Protobuf fields may come in any order: the attributes go first, straight into
        # the record's parts, after three slots for the item's prefix.
        parts: list[bytes] = [b"", b"", b""]
        res, rate, nulls = self._attributes(fields, parts)
        if rate is not None:
            attr_pb(self._keys.get("samplerate"), sample_rate(rate), parts)
        if nulls:
            self.null_fields += nulls
        rid = self._resource_id(res, parts)
        (self._span_pb if self._traces else self._log_pb)(fields, parts)
        parts[0] = _BYTE[rid]
        parts[1] = b"\x12"  # ScopeLogs.log_records / ScopeSpans.spans are both field 2
        parts[2] = uvarint(sum(map(len, parts)) - 2)
        return b"".join(parts)

    def _key(self, key: str) -> Key:
        """Classify a key seen for the first time (its role is the ``Key``'s)."""
        info = self._keys.make(key if type(key) is str else str(key))  # a processor's int key
        if len(self._attr) + len(self._special) >= KEY_CACHE_MAX:
            self._attr, self._special, self._packers = {}, {}, {}
            self._last_layout = ([], None)
            self._plans, self._last_plan = {}, None
            self._cached_values = 0
        if info.role == ROLE_ATTR:
            self._attr[key] = info
        else:
            self._special[key] = info.role
        return info

    def _attributes(self, fields: Mapping[str, Any], out: list[bytes]
                    ) -> tuple[list[tuple[str, Any]] | None, Any, int]:
        """Append the encoded attributes; return (resource fields, samplerate, None count).

        Records of one code path repeat their keys and value types. For such a layout a
        :class:`_Plan` (built once) lets C-level calls do the per-field work: itemgetters
        pick the values by position, ``map(dict.get, ...)`` finds each string's or
        integer's cached encoding, and one ``struct`` call (protobuf) or one
        ``orjson.dumps`` (JSON) writes the doubles. The output is the same as the
        field-by-field loop's (:meth:`_attributes_loop`), which takes the layouts a plan
        does not cover (booleans, arrays, other types).
        """
        keys = tuple(fields)
        vals = tuple(fields.values())
        types = tuple(map(type, vals))
        plan = self._last_plan
        if plan is None or plan.keys != keys or plan.types != types:
            layout = (keys, types)
            try:
                plan = self._plans[layout]
            except KeyError:
                plan = self._make_plan(keys, types)
                if len(self._plans) >= _PLANS_MAX:
                    self._plans = {}
                self._plans[layout] = plan
            if plan is None:
                return self._attributes_loop(fields, out)
            self._last_plan = plan
        if plan.si_caches:
            picked = plan.get_si(vals)
            encoded: list[Any] = list(map(_dict_get, plan.si_caches, picked))
            if not all(encoded):  # a value not seen (cached) yet
                encode = attr_json if self.json else attr_pb
                for j, data in enumerate(encoded):
                    if data is None:
                        encoded[j] = self._miss(plan.si_infos[j], picked[j], encode)
            out += encoded
        if plan.f_infos:
            (self._json_doubles if self.json else self._pack_doubles)(
                plan.f_infos, list(plan.get_f(vals)), out)
        res = list(zip(plan.res_keys, plan.get_res(vals))) if plan.res_keys else None
        return res, (vals[plan.rate_pos] if plan.rate_pos >= 0 else None), plan.nulls

    def _make_plan(self, keys: tuple[Any, ...], types: tuple[type, ...]) -> _Plan | None:
        """Classify a layout's fields once; None when a value type needs the loop."""
        plan = _Plan(keys, types)
        si_pos: list[int] = []
        f_pos: list[int] = []
        res_pos: list[int] = []
        for i, (k, t) in enumerate(zip(keys, types)):
            info, role = self._classify(k)
            if info is None:
                if role == ROLE_RESOURCE:
                    if t is not _NONE:
                        res_pos.append(i)
                        plan.res_keys.append(k)
                elif role == ROLE_RATE:
                    plan.rate_pos = i
                continue
            if t is float:
                f_pos.append(i)
                plan.f_infos.append(info)
            elif t is str or t is int:
                si_pos.append(i)
                plan.si_infos.append(info)
                plan.si_caches.append(info.vals)
            elif t is _NONE:
                plan.nulls += 1
            else:
                return None
        plan.get_si, plan.get_f, plan.get_res = _getter(si_pos), _getter(f_pos), _getter(res_pos)
        return plan

    def _classify(self, key: Any) -> tuple[Key | None, int]:
        """``(Key, ROLE_ATTR)`` for a plain attribute, else ``(None, role)``."""
        info = self._attr.get(key)
        if info is not None:
            return info, ROLE_ATTR
        role = self._special.get(key)
        if role is not None:
            return None, role
        info = self._key(key)
        return (info, ROLE_ATTR) if info.role == ROLE_ATTR else (None, info.role)

    def _attributes_loop(self, fields: Mapping[str, Any], out: list[bytes]
                         ) -> tuple[list[tuple[str, Any]] | None, Any, int]:
        """The attributes field by field (either encoding): one dict lookup per field, a
        cached encoding for repeated strings and integers, the doubles in one call."""
        json = self.json
        encode = attr_json if json else attr_pb
        attr = self._attr
        append = out.append
        finfo: list[Key] = []
        fvals: list[float] = []
        res: list[tuple[str, Any]] | None = None
        rate = None
        nulls = 0
        for k, v in fields.items():
            info = attr.get(k)
            if info is None:
                info, role = self._classify(k)
                if info is None:
                    if role == ROLE_RESOURCE:
                        if v is not None:
                            if res is None:
                                res = [(k, v)]
                            else:
                                res.append((k, v))
                    elif role == ROLE_RATE:
                        rate = v
                    continue
            t = type(v)
            if t is float:
                finfo.append(info)
                fvals.append(v)
            elif t is str or t is int:
                b = info.vals.get(v)
                append(b if b is not None else self._miss(info, v, encode))
            elif t is bool and not json:
                append(info.bool_t if v else info.bool_f)
            elif v is None:
                nulls += 1
            else:
                encode(info, v, out)
        if fvals:
            (self._json_doubles if json else self._pack_doubles)(finfo, fvals, out)
        return res, rate, nulls

    def _miss(self, info: Key, v: Any, encode: Callable[[Key, Any, list[bytes]], None]
              ) -> bytes:
        """Encode a string or integer attribute; remember it while the bounds allow."""
        parts: list[bytes] = []
        encode(info, v, parts)
        data = parts[0] if len(parts) == 1 else b"".join(parts)
        vals = info.vals
        if (len(vals) < _VALUES_PER_KEY and self._cached_values < _VALUES_MAX
                and (type(v) is int or len(v) <= _VALUE_MAX_LEN)):
            vals[v] = data
            self._cached_values += 1
        return data

    def _pack_doubles(self, finfo: list[Key], fvals: list[float], out: list[bytes]) -> None:
        """All double attributes of a record in one ``struct`` call (per key layout, cached)."""
        last = self._last_layout
        if finfo == last[0]:  # the usual case: the same double fields as the last record
            packer: tuple[Callable[..., bytes], list[Any]] | None = last[1]
        else:
            layout = tuple(finfo)
            packer = self._packers.get(layout)
        if packer is None:
            if len(self._packers) >= _PACKERS_MAX or len(layout) < 4:
                out.extend([info.dbl + pack_d(v) for info, v in zip(finfo, fvals, strict=True)])
                return
            fmt = "<" + "".join(f"{len(info.dbl)}sd" for info in layout)
            template: list[Any] = []
            for info in layout:
                template += (info.dbl, 0.0)
            packer = self._packers[layout] = (struct.Struct(fmt).pack, template)
        self._last_layout = (finfo, packer)
        pack, template = packer
        args = template.copy()
        args[1::2] = fvals
        out.append(pack(*args))

    def _json_doubles(self, finfo: list[Key], fvals: list[float], out: list[bytes]) -> None:
        """All double attributes of a record formatted by one ``orjson.dumps`` call."""
        data = orjson.dumps(fvals)
        last = self._last_layout
        if finfo == last[0]:
            packer: tuple[Callable[..., bytes], list[Any]] | None = last[1]
        else:
            layout = tuple(finfo)
            packer = self._packers.get(layout)
        if packer is None or b"null" in data:  # NaN and infinities are strings in OTLP/JSON
            if packer is None and len(self._packers) < _PACKERS_MAX and b"null" not in data:
                template: list[Any] = []
                for info in layout:
                    template += (info.json_dbl, b"", b"}}")
                packer = self._packers[layout] = (bytes, template)
            else:
                for info, v in zip(finfo, fvals, strict=True):
                    out.extend((info.json_dbl, json_double(v), b"}}"))
                return
        self._last_layout = (finfo, packer)
        args = packer[1].copy()
        args[1::3] = data[1:-1].split(b",")
        out.extend(args)

    def _resource_id(self, res: list[tuple[str, Any]] | None, attrs: list[bytes]) -> int:
        key: object = tuple(res) if res else ()
        try:
            rid = self._ids.get(key)
        except TypeError:  # an unhashable (list) value
            key = orjson.dumps(res, default=safe_repr)
            rid = self._ids.get(key)
        if rid is not None:
            return rid
        if len(self._resources) > MAX_RESOURCES:
            # Too many distinct resources: these fields travel as attributes of the record,
            # under the base resource.
            for k, v in res or ():
                info = Key(k, ROLE_ATTR, self._keys.tag)
                (attr_json if self.json else attr_pb)(info, v, attrs)
            return 0
        rid = self._add_resource(res)
        self._ids[key] = rid
        return rid

    def _add_resource(self, res: list[tuple[str, Any]] | None) -> int:
        merged = dict(self._base_resource)
        merged.update(res or ())
        if not merged.get("service.name"):
            merged["service.name"] = "unknown_service"
        if self.json:
            encoded = b'{"attributes":' + attrs_json(self._resource_keys, merged.items()) + b"}"
        else:
            encoded = attrs_pb(self._resource_keys, merged.items())
        self._resources.append(encoded)
        return len(self._resources) - 1

    def _log_pb(self, f: Mapping[str, Any], parts: list[bytes]) -> None:
        """Append a LogRecord's own fields (its attributes are already in ``parts``)."""
        append = parts.append
        append(b"\x09" + _pack_q(timestamp_ns(f)))
        append(b"\x10\x11\x1a\x05ERROR" if f.get("error") is True else b"\x10\x09\x1a\x04INFO")
        trace_id = hex_bytes(f.get("trace.trace_id"), 16)
        if trace_id is not None:
            append(b"\x45\x01\x00\x00\x00\x4a\x10" + trace_id)  # flags=1 (sampled)
            span_id = hex_bytes(f.get("trace.span_id"), 8)
            if span_id is not None:
                append(b"\x52\x08" + span_id)
        append(b"\x59" + _pack_q(time.time_ns()))
        name = f.get("name")
        if type(name) is str and name:
            append(field(b"\x62", name.encode("utf-8", "replace")))

    def _span_pb(self, f: Mapping[str, Any], parts: list[bytes]) -> None:
        """Append a Span's own fields (its attributes are already in ``parts``)."""
        append = parts.append
        start = timestamp_ns(f)
        end = start + duration_ns(f)
        trace_id = hex_bytes(f.get("trace.trace_id"), 16) or _random_id(16)
        span_id = hex_bytes(f.get("trace.span_id"), 8) or _random_id(8)
        append(b"\x0a\x10" + trace_id + b"\x12\x08" + span_id)
        parent = hex_bytes(f.get("trace.parent_id"), 8)
        if parent is not None:
            append(b"\x22\x08" + parent)
        name = f.get("name")
        append(field(b"\x2a", (name if type(name) is str and name else "event").encode(
            "utf-8", "replace")))
        append(b"\x30\x02" if "http.request.method" in f else b"\x30\x01")
        append(b"\x39" + _pack_q(start) + b"\x41" + _pack_q(end))
        if f.get("error") is True:
            exc = attrs_pb(self._event_keys, _exception_attrs(f))
            append(field(b"\x5a", b"\x09" + _pack_q(end) + b"\x12\x09exception" + exc))
            message = f.get("error.message")
            status = b"\x18\x02"
            if type(message) is str and message:
                status = field(b"\x12", message.encode("utf-8", "replace")) + status
            append(field(b"\x7a", status))
        append(b"\x85\x01\x01\x01\x00\x00")  # flags: sampled; has-is-remote, not remote

    def _log_json(self, f: Mapping[str, Any], attrs: list[bytes]) -> bytes:
        error = f.get("error") is True
        out = [b'{"timeUnixNano":"%d","observedTimeUnixNano":"%d"' % (timestamp_ns(f),
                                                                         time.time_ns()),
               b',"severityNumber":17,"severityText":"ERROR"' if error
               else b',"severityNumber":9,"severityText":"INFO"']
        name = f.get("name")
        if type(name) is str and name:
            out.append(b',"eventName":' + orjson.dumps(name))
        trace_id = hex_bytes(f.get("trace.trace_id"), 16)
        if trace_id is not None:
            out.append(b',"traceId":"%s","flags":1' % trace_id.hex().encode())
            span_id = hex_bytes(f.get("trace.span_id"), 8)
            if span_id is not None:
                out.append(b',"spanId":"%s"' % span_id.hex().encode())
        out.append(b',"attributes":[')
        out += attrs
        out.append(b"]}")
        return b"".join(out)

    def _span_json(self, f: Mapping[str, Any], attrs: list[bytes]) -> bytes:
        start = timestamp_ns(f)
        end = start + duration_ns(f)
        trace_id = hex_bytes(f.get("trace.trace_id"), 16) or _random_id(16)
        span_id = hex_bytes(f.get("trace.span_id"), 8) or _random_id(8)
        name = f.get("name")
        out = [b'{"traceId":"%s","spanId":"%s"' % (trace_id.hex().encode(), span_id.hex().encode())]
        parent = hex_bytes(f.get("trace.parent_id"), 8)
        if parent is not None:
            out.append(b',"parentSpanId":"%s"' % parent.hex().encode())
        out.append(b',"name":' + orjson.dumps(name if type(name) is str and name else "event"))
        out.append(b',"kind":%d,"startTimeUnixNano":"%d","endTimeUnixNano":"%d","flags":257' % (
            SPAN_KIND_SERVER if "http.request.method" in f else SPAN_KIND_INTERNAL, start, end))
        out.append(b',"attributes":[')
        out += attrs
        out.append(b"]")
        if f.get("error") is True:
            exc = attrs_json(self._event_keys, _exception_attrs(f))
            out.append(b',"events":[{"timeUnixNano":"%d","name":"exception","attributes":%b}]'
                       % (end, exc))
            message = f.get("error.message")
            status: dict[str, Any] = {"code": STATUS_ERROR}
            if type(message) is str and message:
                status["message"] = message
            out.append(b',"status":' + orjson.dumps(status))
        out.append(b"}")
        return b"".join(out)

    # -- per request (sender threads) -------------------------------------------------------
    def body(self, items: Sequence[bytes]) -> list[bytes]:
        """The export request for a batch of items (grouped by resource), in ~256 KB chunks.

        Chunks rather than one body: a batch's uncompressed request never exists whole.
        Not one chunk per item either: zlib releases the GIL on every call, and a thousand
        calls per batch cost more in thread switches than the compression itself.
        """
        groups: dict[int, list[memoryview]] = {}
        for item in items:
            rid = item[0]
            group = groups.get(rid)
            if group is None:
                groups[rid] = group = []
            group.append(memoryview(item)[1:])
        resources = self._resources
        chunks: list[Any] = []
        if self.json:
            traces = self._traces
            chunks.append(b'{"resourceSpans":[' if traces else b'{"resourceLogs":[')
            head = b'"scopeSpans":[{"scope":%b,"spans":[' if traces else (
                b'"scopeLogs":[{"scope":%b,"logRecords":[')
            head %= self._scope
            for rid, group in groups.items():
                if len(chunks) > 1:
                    chunks.append(b",")
                chunks += (b'{"resource":', resources[rid], b",", head)
                for view in group:
                    chunks += (view, b",")
                chunks[-1] = b"]}]}"
            chunks.append(b"]}")
            return _coalesce(chunks)
        for rid, group in groups.items():
            res = field(b"\x0a", resources[rid])
            scoped = len(self._scope) + sum(map(len, group))
            scoped_head = b"\x12" + uvarint(scoped)
            chunks += (b"\x0a", uvarint(len(res) + len(scoped_head) + scoped), res, scoped_head,
                       self._scope)
            chunks += group
        return _coalesce(chunks)


_NONE = type(None)
_dict_get = dict.get


class _Plan:
    """How to encode the attributes of records with one layout (keys and value types)."""

    __slots__ = ("keys", "types", "si_infos", "si_caches", "f_infos", "res_keys", "rate_pos",
                 "nulls", "get_si", "get_f", "get_res")

    def __init__(self, keys: tuple[Any, ...], types: tuple[type, ...]) -> None:
        self.keys = keys
        self.types = types
        self.si_infos: list[Key] = []  # string and integer attributes, in field order
        self.si_caches: list[dict[object, bytes]] = []  # their Key.vals
        self.f_infos: list[Key] = []  # double attributes, in field order
        self.res_keys: list[Any] = []  # resource fields with a value
        self.rate_pos = -1
        self.nulls = 0
        self.get_si: Callable[[tuple[Any, ...]], tuple[Any, ...]] = _getter([])
        self.get_f = self.get_si
        self.get_res = self.get_si


def _getter(positions: list[int]) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    """The values at ``positions`` as a tuple (itemgetter, also for zero or one position)."""
    if not positions:
        return lambda values: ()
    if len(positions) == 1:
        i = positions[0]
        return lambda values: (values[i],)
    return operator.itemgetter(*positions)


def _coalesce(chunks: list[Any], size: int = _CHUNK_BYTES) -> list[bytes]:
    """Join consecutive small chunks (bytes and memoryviews) into pieces of about ``size``."""
    out: list[bytes] = []
    start = total = 0
    for i, chunk in enumerate(chunks):
        total += len(chunk)
        if total >= size:
            out.append(b"".join(chunks[start:i + 1]))
            start, total = i + 1, 0
    if start < len(chunks):
        out.append(b"".join(chunks[start:]))
    return out


def _exception_attrs(f: Mapping[str, Any]) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for src, dst in (("error.type", "exception.type"), ("error.message", "exception.message"),
                     ("exception.stacktrace", "exception.stacktrace")):
        v = f.get(src)
        if v is not None:
            out.append((dst, v if type(v) is str else safe_repr(v)))
    return out


def _random_id(size: int) -> bytes:
    import os

    return os.urandom(size)
