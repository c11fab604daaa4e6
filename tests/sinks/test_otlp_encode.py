"""The hand-written OTLP encoders, checked by decoding with opentelemetry-proto."""

from __future__ import annotations

import random
from typing import Any

import pytest

from tests.support.otel import expected_otlp, rfc3339_to_ns, typed
from tests.support.otlp_receiver import _response, attributes, decode_request, request_records
from wideevents.sinks._otlp._encode import (
    Encoder,
    parse_export_response,
    parse_status_message,
    timestamp_ns,
)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"
PARENT_ID = "b7ad6b7169203331"
COMBOS = [(s, e) for s in ("logs", "traces") for e in ("protobuf", "json")]


def decode(signal: str, encoding: str, body: bytes) -> Any:
    """The request as opentelemetry-proto sees it (OTLP/JSON checked against its rules)."""
    return decode_request(signal, body, encoding == "json")


def records(signal: str, request: Any) -> list[tuple[dict[str, Any], Any]]:
    """(resource attributes, record) for every record of a decoded request."""
    out = []
    for resource, scope, rec in request_records(signal, request):
        assert scope["name"] == "wideevents"
        out.append((resource, rec))
    return out


def sample_event(**extra: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "timestamp": "2024-11-03T12:34:56.789012Z", "name": "predict",
        "service.name": "ranker", "service.version": "1.2.3", "host.name": "web-1",
        "process.pid": 4242, "deployment.environment.name": "prod",
        "trace.trace_id": TRACE_ID, "trace.span_id": SPAN_ID, "trace.parent_id": PARENT_ID,
        "duration_ms": 12.5, "samplerate": 8, "request.id": "req-1", "user.id": 7,
        "score.top1": 0.875, "cache_hit": False, "ok": True, "label": "class_0042",
        "ids": ["a", "b"], "scores": [0.5, 0.25], "counts": [1, -2, 3],
        "negative": -(2**63), "largest": 2**63 - 1, "beyond": 2**63, "zero": 0, "small": 127,
        "bigger": 128, "unicode": "héllo ✓ 你好", "empty": "", "long": "x" * 20_000,
        "nothing": None, "mixed": [1, "a", None, 2.5, True],
    }
    event.update(extra)
    return event


@pytest.mark.parametrize(("signal", "encoding"), COMBOS)
def test_every_value_type_round_trips(signal: str, encoding: str) -> None:
    """Each field arrives with its value and type; resource fields in the resource."""
    event = sample_event()
    enc = Encoder(signal, encoding, {"k8s.pod.name": "pod-7"}, "9.9")
    body = b"".join(enc.body([enc.encode(event)]))
    [(resource, rec)] = records(signal, decode(signal, encoding, body))
    want_resource, want_attrs = expected_otlp(event, signal)
    assert {"k8s.pod.name": "pod-7", **want_resource} == resource
    assert typed(want_attrs) == typed(attributes(rec.attributes))
    assert enc.null_fields == 1


@pytest.mark.parametrize(("signal", "encoding"), COMBOS)
def test_record_fields_times_and_ids(signal: str, encoding: str) -> None:
    """Name, start/end times, ids, severity or kind are where OTLP puts them."""
    event = sample_event()
    enc = Encoder(signal, encoding, {})
    [(_, rec)] = records(signal, decode(signal, encoding, b"".join(enc.body([enc.encode(event)]))))
    start = rfc3339_to_ns(event["timestamp"])
    assert bytes.fromhex(TRACE_ID) == rec.trace_id
    assert bytes.fromhex(SPAN_ID) == rec.span_id
    if signal == "traces":
        assert ("predict", start, start + 12_500_000) == (
            rec.name, rec.start_time_unix_nano, rec.end_time_unix_nano)
        assert bytes.fromhex(PARENT_ID) == rec.parent_span_id
        assert 1 == rec.kind  # INTERNAL: no HTTP method
        assert 0 == rec.status.code
    else:
        assert ("predict", start, 9, "INFO", 1) == (
            rec.event_name, rec.time_unix_nano, rec.severity_number, rec.severity_text, rec.flags)
        assert rec.observed_time_unix_nano > start


@pytest.mark.parametrize(("signal", "encoding"), COMBOS)
def test_failed_event(signal: str, encoding: str) -> None:
    """error: span status ERROR with the message and an exception event; log severity ERROR."""
    event = sample_event(**{"error": True, "error.type": "ValueError", "error.message": "bad x",
                            "exception.stacktrace": "Traceback ...", "http.request.method": "GET"})
    enc = Encoder(signal, encoding, {})
    [(_, rec)] = records(signal, decode(signal, encoding, b"".join(enc.body([enc.encode(event)]))))
    if signal == "traces":
        assert (2, "bad x", 2) == (rec.status.code, rec.status.message, rec.kind)
        [exc] = rec.events
        end = rfc3339_to_ns(event["timestamp"]) + 12_500_000
        assert ("exception", end) == (exc.name, exc.time_unix_nano)
        assert {"exception.type": "ValueError", "exception.message": "bad x",
                "exception.stacktrace": "Traceback ..."} == attributes(exc.attributes)
    else:
        assert (17, "ERROR") == (rec.severity_number, rec.severity_text)
    assert (True, "ValueError") == (attributes(rec.attributes)["error"],
                                    attributes(rec.attributes)["error.type"])


@pytest.mark.parametrize(("signal", "encoding"), COMBOS)
def test_batches_group_records_by_resource(signal: str, encoding: str) -> None:
    """A batch holds one ResourceLogs/ResourceSpans per distinct resource, order kept within."""
    enc = Encoder(signal, encoding, {})
    events = [sample_event(**{"service.name": svc, "request.id": f"r{i}"})
              for i, svc in enumerate(["a", "b", "a", "c", "b", "a"])]
    request = decode(signal, encoding, b"".join(enc.body([enc.encode(e) for e in events])))
    groups = request.resource_spans if signal == "traces" else request.resource_logs
    assert 3 == len(groups)
    got = [(resource["service.name"], attributes(rec.attributes)["request.id"])
           for resource, rec in records(signal, request)]
    assert [("a", "r0"), ("a", "r2"), ("a", "r5"), ("b", "r1"), ("b", "r4"), ("c", "r3")] == got


def test_too_many_resources_become_attributes() -> None:
    """Past 255 distinct resources, the extra resource fields travel as record attributes."""
    enc = Encoder("logs", "protobuf", {"service.name": "base"})
    items = [enc.encode(sample_event(**{"service.name": f"svc-{i}", "request.id": i}))
             for i in range(300)]
    decoded = records("logs", decode("logs", "protobuf", b"".join(enc.body(items))))
    got = {attributes(rec.attributes)["request.id"]: (
        res["service.name"], attributes(rec.attributes).get("service.name"))
        for res, rec in decoded}
    want = {i: (f"svc-{i}", None) if i < 255 else ("base", f"svc-{i}") for i in range(300)}
    assert want == got


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
def test_randomised_values_round_trip(encoding: str) -> None:
    """Random ints (all sizes), doubles, strings of every length class and unicode survive."""
    rng = random.Random(7)
    enc = Encoder("logs", encoding, {})
    events = []
    for i in range(40):
        event: dict[str, Any] = {"timestamp": "2024-01-01T00:00:00.000001Z", "name": f"e{i}"}
        for j in range(30):
            kind = rng.randrange(4)
            key = "k" * rng.choice([1, 50, 130, 300]) + str(j)
            if kind == 0:
                event[key] = rng.randint(-(2**63), 2**63 - 1) >> rng.randrange(64)
            elif kind == 1:
                event[key] = rng.uniform(-1e300, 1e300) * rng.random()
            elif kind == 2:
                event[key] = "".join(chr(rng.choice([rng.randrange(32, 127), 0xE9, 0x4F60]))
                                     for _ in range(rng.choice([0, 5, 120, 200, 17_000])))
            else:
                event[key] = [rng.random() for _ in range(rng.randrange(5))]
        events.append(event)
    body = b"".join(enc.body([enc.encode(e) for e in events]))
    decoded = records("logs", decode("logs", encoding, body))
    for event, (_, rec) in zip(events, decoded, strict=True):
        _, want = expected_otlp(event, "logs")
        assert typed(want) == typed(attributes(rec.attributes))


def test_timestamp_parsing_matches_datetime() -> None:
    """The cached fast path and the general path agree with datetime for many instants."""
    rng = random.Random(3)
    for _ in range(500):
        ns = rng.randrange(0, 4_000_000_000) * 10**9 + rng.randrange(10**6) * 1000
        import datetime as dt

        when = dt.datetime.fromtimestamp(ns // 10**9, tz=dt.UTC)
        fast = when.strftime("%Y-%m-%dT%H:%M:%S") + f".{ns % 10**9 // 1000:06d}Z"
        offset = when.isoformat().replace("+00:00", f".{ns % 10**9 // 1000:06d}+00:00")
        assert (rfc3339_to_ns(fast), rfc3339_to_ns(fast)) == (
            timestamp_ns({"timestamp": fast}), timestamp_ns({"timestamp": offset}))


@pytest.mark.parametrize("signal", ["logs", "traces"])
@pytest.mark.parametrize("as_json", [False, True])
def test_partial_success_responses_parse(signal: str, as_json: bool) -> None:
    """Responses built by opentelemetry-proto read back as (rejected, message)."""
    for rejected, message in ((0, ""), (3, "bad attribute"), (0, "a warning")):
        body = _response(signal, rejected, message, as_json)
        assert (rejected, message) == parse_export_response(body, signal, as_json)
    assert (0, "") == parse_export_response(b"", signal, as_json)


def test_status_messages_parse() -> None:
    """google.rpc.Status bodies (protobuf or JSON) yield their message; other text as is."""
    from google.rpc import status_pb2

    body = status_pb2.Status(code=3, message="invalid span").SerializeToString()
    assert "invalid span" == parse_status_message(body)
    assert "quota" == parse_status_message(b'{"code": 8, "message": "quota"}')
    assert "<html>oops" == parse_status_message(b"<html>oops")


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
def test_non_finite_doubles_survive(encoding: str) -> None:
    """NaN and infinities (a processor may add them after normalisation) stay doubles."""
    import math

    enc = Encoder("logs", encoding, {})
    event = {"timestamp": "2024-01-01T00:00:00.000001Z", "name": "e", "a": 1.5,
             "nan": float("nan"), "inf": float("inf"), "ninf": float("-inf"), "b": 2.5, "c": 3.5,
             "d": 4.5}
    finite = {**event, "nan": 0.5, "inf": 0.25, "ninf": 0.125}
    for _ in range(2):  # with the layout of these doubles cached, then not
        enc.encode(finite)
        body = b"".join(enc.body([enc.encode(event)]))
        [(_, rec)] = records("logs", decode("logs", encoding, body))
        got = attributes(rec.attributes)
        assert (1.5, float("inf"), float("-inf"), 2.5, 3.5, 4.5, True) == (
            got["a"], got["inf"], got["ninf"], got["b"], got["c"], got["d"], math.isnan(got["nan"]))


def layout_events(n: int, seed: int) -> list[dict[str, Any]]:
    """Events of a few layouts (keys and value types), as a service's code paths produce:
    repeated and new string/integer values, None, samplerate, resource fields, types that
    change under the same keys, and layouts with booleans or arrays."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        layout = rng.randrange(5)
        event: dict[str, Any] = {
            "timestamp": "2024-01-01T00:00:00.000001Z", "name": "predict",
            "service.name": rng.choice(["ranker", "scorer"]), "host.name": "web-1",
            "trace.trace_id": TRACE_ID, "trace.span_id": SPAN_ID, "duration_ms": rng.random(),
            "http.route": rng.choice(["/a", "/b", "/c"]), "user.id": rng.randrange(10**6),
            "status": rng.choice([200, 404, 500]), "label": f"class_{rng.randrange(50):04d}",
            "seq": i,
        }
        for j in range(12):
            event[f"feature.f{j:02d}"] = rng.gauss(0, 1)
        if layout == 1:
            event["samplerate"] = rng.choice([1, 10])
            event["maybe"] = None
        elif layout == 2:
            event["user.id"] = f"u-{rng.randrange(100)}"  # same key, another type
            event["feature.f03"] = rng.randrange(-5, 5)
        elif layout == 3:
            event["cache_hit"] = rng.random() < 0.5  # a boolean: the field loop
        elif layout == 4:
            event["scores"] = [rng.random() for _ in range(3)]  # an array: the field loop
            event["big"] = 2**63 + rng.randrange(10)  # beyond int64: a string
        out.append(event)
    return out


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
@pytest.mark.parametrize("signal", ["logs", "traces"])
def test_layout_plans_encode_like_the_field_loop(signal: str, encoding: str) -> None:
    """The per-layout plans give byte for byte the attributes of the field-by-field loop,
    and every record decodes to its event's attributes."""
    planned = Encoder(signal, encoding, {"deployment.environment.name": "prod"})
    looped = Encoder(signal, encoding, {"deployment.environment.name": "prod"})
    events = layout_events(600, seed=11)
    for event in events:
        a: list[bytes] = []
        b: list[bytes] = []
        got = planned._attributes(event, a)
        want = looped._attributes_loop(event, b)
        assert (b"".join(a), got) == (b"".join(b), want)
    assert len(planned._plans) >= 3  # the plans were used, not only the loop
    body = b"".join(planned.body([planned.encode(e) for e in events]))
    decoded = records(signal, decode(signal, encoding, body))
    assert len(decoded) == len(events)
    for resource, rec in decoded:  # grouped by resource: matched by "seq"
        got_attrs = attributes(rec.attributes)
        event = events[got_attrs["seq"]]
        _, want = expected_otlp(event, signal)
        assert typed(want) == typed(got_attrs)
        assert resource["service.name"] == event["service.name"]
