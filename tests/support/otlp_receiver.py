"""A loopback OTLP/HTTP receiver for tests and benchmarks (a real HTTP/1.1 server).

``POST /v1/logs`` and ``POST /v1/traces`` (any path ending that way), bodies optionally
gzip or zstd. ``application/x-protobuf`` requests are decoded with ``opentelemetry-proto``'s
message classes; ``application/json`` requests are checked against the OTLP/JSON rules
(lowerCamelCase keys, hex trace and span ids, 64-bit integers as strings or numbers) and
then parsed into the same classes. Replies are export responses in the request's
encoding, with ``partial_success`` when the "partial" fault is active. Faults can be
injected: HTTP 400/401/413/429/500/503, slow replies, connection resets, malformed
reply bodies, replies that never come, partial success.

Every accepted record is kept as a :class:`Received` (its resource attributes, scope,
the decoded message and the flat attributes as Python values) unless ``store=False``.

As a script (the benchmarks run it in its own process)::

    python -m tests.support.otlp_receiver [--delay-min 0.1 --delay-max 0.5] [--no-store]

prints ``PORT <n>`` and serves until stdin closes; ``GET /_receiver/stats`` returns the
record counts per ``service.name`` and per signal.
"""

from __future__ import annotations

import argparse
import base64
import random
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2

from .loopback_http import LoopbackHandler, LoopbackReceiver, decode_body, slow_reply

FAULTS = ("400", "401", "413", "429", "500", "503", "slow", "reset", "malformed", "hang",
          "partial")
_CAMEL = re.compile(r"[a-z][A-Za-z0-9]*\Z")
_HEX = {"traceId": 32, "spanId": 16, "parentSpanId": 16}


@dataclass
class Received:
    """One accepted log record or span."""

    signal: str
    resource: dict[str, Any]
    scope: dict[str, Any]
    message: Any  # LogRecord or Span (opentelemetry.proto)
    attributes: dict[str, Any] = field(default_factory=dict)
    encoding: str = "protobuf"


@dataclass
class RequestInfo:
    path: str
    encoding: str
    content_type: str
    records: int
    status: int
    fault: str
    headers: dict[str, str]


def any_value(value: common_pb2.AnyValue) -> Any:
    """An ``AnyValue`` as the Python value of the field that is set (None when unset)."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind)


def attributes(kvs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in kvs:
        if kv.key in out:
            raise ValueError(f"duplicate attribute {kv.key!r}")
        out[kv.key] = any_value(kv.value)
    return out


def check_otlp_json(node: Any, path: str = "") -> None:
    """Raise ValueError where ``node`` breaks the OTLP/JSON rules this receiver enforces."""
    if isinstance(node, dict):
        for key, value in node.items():
            if not _CAMEL.match(key):
                raise ValueError(f"{path}.{key}: OTLP/JSON keys are lowerCamelCase")
            if key in _HEX and value != "":
                if not (isinstance(value, str) and len(value) == _HEX[key]
                        and re.fullmatch(r"[0-9a-f]+", value)):
                    raise ValueError(f"{path}.{key}: ids are lowercase hex in OTLP/JSON")
            if key in ("intValue", "timeUnixNano", "observedTimeUnixNano", "startTimeUnixNano",
                       "endTimeUnixNano") and not isinstance(value, (str, int)):
                raise ValueError(f"{path}.{key}: a 64-bit integer is a string or a number")
            check_otlp_json(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            check_otlp_json(value, f"{path}[{i}]")


def _hex_to_base64(node: Any) -> Any:
    """json_format reads bytes as base64: turn OTLP/JSON's hex ids into that."""
    if isinstance(node, dict):
        return {k: (base64.b64encode(bytes.fromhex(v)).decode() if k in _HEX and v else
                    _hex_to_base64(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [_hex_to_base64(v) for v in node]
    return node


class _Handler(LoopbackHandler):
    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        receiver = cast(OTLPReceiver, self.server.receiver)
        raw = self.read_body()
        path = self.path.split("?")[0]
        if not (path.endswith("/v1/logs") or path.endswith("/v1/traces")):
            self.not_found("unknown endpoint")
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        status, body, ctype, fault = receiver.handle_export(path, headers, raw)
        if not self.ended_by_fault(fault):
            self.send_body(status, body, ctype)


class OTLPReceiver(LoopbackReceiver):
    """The server; use as a context manager. ``url`` is the base endpoint for the exporter."""

    handler = _Handler
    faults = FAULTS
    thread_name = "otlp-receiver"
    stats_key = "records"

    def __init__(self, *, store: bool = True, required_headers: dict[str, str] | None = None,
                 delay: tuple[float, float] = (0.0, 0.0), seed: int = 0) -> None:
        super().__init__()
        self.store = store
        self.required_headers = {k.lower(): v for k, v in (required_headers or {}).items()}
        self.delay = delay
        self.records: list[Received] = []
        self.requests: list[RequestInfo] = []
        self.partial_rejects = 0
        self.partial_message = "some records were rejected"
        self._random = random.Random(seed)

    # -- faults ------------------------------------------------------------------------------
    def inject(self, fault: str, times: int = 1, *, rejects: int = 0, message: str = "") -> None:
        """Apply ``fault`` to the next ``times`` export requests ("partial": reject ``rejects``)."""
        with self.lock:
            if fault == "partial":
                self.partial_rejects = rejects
                self.partial_message = message
        super().inject(fault, times)
        self._release.clear()

    # -- assertions --------------------------------------------------------------------------
    def received(self, signal: str | None = None) -> list[Received]:
        with self.lock:
            return [r for r in self.records if signal is None or r.signal == signal]

    # -- OTLP/HTTP ---------------------------------------------------------------------------
    def handle_export(self, path: str, headers: dict[str, str], raw: bytes
                      ) -> tuple[int, bytes, str, str]:
        """``(status, body, content type, fault)`` for one export request."""
        signal = "traces" if path.endswith("/v1/traces") else "logs"
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        as_json = ctype == "application/json"
        reply_type = "application/json" if as_json else "application/x-protobuf"
        for name, value in self.required_headers.items():
            if headers.get(name) != value:
                return 401, _status(16, "missing or wrong API key", as_json), reply_type, ""
        fault = self._next_fault()
        if fault in ("400", "401", "413", "429", "500", "503"):
            self._note(path, headers, ctype, 0, int(fault), fault)
            return int(fault), _status(3, f"injected {fault}", as_json), reply_type, fault
        if fault in ("reset", "hang"):
            self._note(path, headers, ctype, 0, 0, fault)
            return 0, b"", reply_type, fault
        if ctype not in ("application/json", "application/x-protobuf"):
            return 415, _status(3, f"unsupported content type {ctype!r}", as_json), reply_type, ""
        try:
            body = decode_body(headers.get("content-encoding", "").strip().lower(), raw)
            records = (self._parse(signal, body, as_json) if self.store
                       else _count(signal, body, as_json))
        except (ValueError, DecodeError, json_format.ParseError) as exc:
            return 400, _status(3, f"bad request: {exc}", as_json), reply_type, fault
        rejected = 0
        if fault == "partial":
            rejected = min(self.partial_rejects, len(records))
        accepted = records[rejected:]
        low, high = self.delay
        pause = 0.0
        if high > 0:
            with self.lock:
                pause = self._random.uniform(low, high)
        slow_reply(fault, pause)
        with self.lock:
            if self.store:
                self.records.extend(accepted)
            for r in accepted:
                service = str(r.resource.get("service.name", ""))
                self.counts[service] = self.counts.get(service, 0) + 1
            self._note_locked(path, headers, ctype, len(records), 200, fault)
        if fault == "malformed":
            return 200, b"<html>proxy says hi", "text/html", fault
        return 200, _response(signal, rejected, self.partial_message if rejected else "",
                              as_json), reply_type, fault

    def _note(self, path: str, headers: dict[str, str], ctype: str, records: int, status: int,
              fault: str) -> None:
        with self.lock:
            self._note_locked(path, headers, ctype, records, status, fault)

    def _note_locked(self, path: str, headers: dict[str, str], ctype: str, records: int,
                     status: int, fault: str) -> None:
        self.requests.append(RequestInfo(path, headers.get("content-encoding", ""), ctype,
                                         records, status, fault, dict(headers)))

    def accepted_requests(self) -> list[RequestInfo]:
        with self.lock:
            return [r for r in self.requests if r.status == 200]

    def _parse(self, signal: str, body: bytes, as_json: bool) -> list[Received]:
        encoding = "json" if as_json else "protobuf"
        return [Received(signal, resource, scope, rec, attributes(rec.attributes), encoding)
                for resource, scope, rec in request_records(
                    signal, decode_request(signal, body, as_json))]


def decode_request(signal: str, body: bytes, as_json: bool) -> Any:
    """The export request as opentelemetry-proto sees it (OTLP/JSON checked against its
    rules first)."""
    request: Any = (trace_service_pb2.ExportTraceServiceRequest() if signal == "traces"
                    else logs_service_pb2.ExportLogsServiceRequest())
    if as_json:
        parsed = orjson.loads(body)
        check_otlp_json(parsed)
        json_format.ParseDict(_hex_to_base64(parsed), request)
    else:
        request.ParseFromString(body)
    return request


def request_records(signal: str, request: Any) -> list[tuple[dict[str, Any], dict[str, str], Any]]:
    """(resource attributes, scope, span or log record) for every record of a request."""
    traces = signal == "traces"
    out = []
    for group in (request.resource_spans if traces else request.resource_logs):
        resource = attributes(group.resource.attributes)
        for scoped in (group.scope_spans if traces else group.scope_logs):
            scope = {"name": scoped.scope.name, "version": scoped.scope.version}
            for rec in (scoped.spans if traces else scoped.log_records):
                out.append((resource, scope, rec))
    return out


def _count(signal: str, body: bytes, as_json: bool) -> list[Received]:
    """Records with their resource only: the cheap path when nothing is stored (benchmarks)."""
    out: list[Received] = []
    if as_json:
        parsed = orjson.loads(body)
        outer, inner, leaf = (("resourceSpans", "scopeSpans", "spans") if signal == "traces"
                              else ("resourceLogs", "scopeLogs", "logRecords"))
        for group in parsed.get(outer, []):
            resource = {a["key"]: next(iter(a["value"].values()), None)
                        for a in group.get("resource", {}).get("attributes", [])}
            for scope in group.get(inner, []):
                out.extend(Received(signal, resource, {}, None) for _ in scope.get(leaf, []))
        return out
    request: Any = (trace_service_pb2.ExportTraceServiceRequest() if signal == "traces"
                    else logs_service_pb2.ExportLogsServiceRequest())
    request.ParseFromString(body)
    groups = request.resource_spans if signal == "traces" else request.resource_logs
    for group in groups:
        resource = attributes(group.resource.attributes)
        for scope in (group.scope_spans if signal == "traces" else group.scope_logs):
            n = len(scope.spans) if signal == "traces" else len(scope.log_records)
            out.extend(Received(signal, resource, {}, None) for _ in range(n))
    return out


def _response(signal: str, rejected: int, message: str, as_json: bool) -> bytes:
    if signal == "traces":
        resp: Any = trace_service_pb2.ExportTraceServiceResponse()
        if rejected or message:
            resp.partial_success.rejected_spans = rejected
            resp.partial_success.error_message = message
    else:
        resp = logs_service_pb2.ExportLogsServiceResponse()
        if rejected or message:
            resp.partial_success.rejected_log_records = rejected
            resp.partial_success.error_message = message
    if as_json:
        return json_format.MessageToJson(resp).encode()
    return bytes(resp.SerializeToString())


def _status(code: int, message: str, as_json: bool) -> bytes:
    if as_json:
        return orjson.dumps({"code": code, "message": message})
    return bytes(status_pb2.Status(code=code, message=message).SerializeToString())


@contextmanager
def running(**kwargs: Any) -> Iterator[OTLPReceiver]:
    """``with running() as receiver:`` a started receiver, stopped at exit."""
    with OTLPReceiver(**kwargs) as receiver:
        yield receiver


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay-min", type=float, default=0.0, help="least seconds per request")
    parser.add_argument("--delay-max", type=float, default=0.0, help="seconds per request, at most")
    parser.add_argument("--no-store", action="store_true", help="count records, do not keep them")
    args = parser.parse_args(argv)
    receiver = OTLPReceiver(store=not args.no_store, delay=(args.delay_min, args.delay_max))
    receiver.serve_until_stdin_closes(args.port)


if __name__ == "__main__":
    main()
