"""OTLPSink settings: arguments, OTEL_EXPORTER_OTLP_* variables, and fix-it errors."""

from __future__ import annotations

import pytest

import wideevents
from tests.support.otel import make_records
from tests.support.otlp_receiver import running
from wideevents import ConfigurationError
from wideevents.sinks import OTLPSink

OTEL_VARS = [
    "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_LOGS_HEADERS", "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL",
    "OTEL_EXPORTER_OTLP_COMPRESSION", "OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES", "HONEYCOMB_API_KEY", "WIDEEVENTS_SINK",
]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in OTEL_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(("endpoint", "signal", "url"), [
    ("http://collector:4318", "logs", "http://collector:4318/v1/logs"),
    ("http://collector:4318/", "traces", "http://collector:4318/v1/traces"),
    ("https://api.honeycomb.io", "traces", "https://api.honeycomb.io:443/v1/traces"),
    ("http://c:4318/v1/logs", "logs", "http://c:4318/v1/logs"),
    ("http://c:4318/otlp", "logs", "http://c:4318/otlp/v1/logs"),
    ("http://c", "logs", "http://c:80/v1/logs"),
])
def test_endpoint_argument_is_a_base_url(endpoint: str, signal: str, url: str,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """/v1/logs or /v1/traces is appended unless the URL already ends with it."""
    monkeypatch.setenv("HONEYCOMB_API_KEY", "k")
    assert url == OTLPSink(endpoint, signal=signal).endpoint


def test_endpoint_variables_follow_the_specification(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argument > per-signal variable (as is) > generic variable (+ path) > localhost:4318."""
    assert "http://localhost:4318/v1/logs" == OTLPSink().endpoint
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://generic:4318/base")
    assert "http://generic:4318/base/v1/traces" == OTLPSink(signal="traces").endpoint
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "http://logs:9000/custom")
    assert "http://logs:9000/custom" == OTLPSink().endpoint
    assert "http://generic:4318/base/v1/traces" == OTLPSink(signal="traces").endpoint
    assert "http://arg:1/v1/logs" == OTLPSink("http://arg:1").endpoint


@pytest.mark.parametrize("endpoint", ["not a url", "ftp://host/x", "http://", "http://h:99999",
                                      "http://user:pw@h:4318", ""])
def test_bad_endpoint_is_a_configuration_error(endpoint: str) -> None:
    """An endpoint that is not an http(s) URL fails at construction with a fix-it message."""
    with pytest.raises(ConfigurationError, match="http"):
        OTLPSink(endpoint)


def test_bad_endpoint_variable_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """The error names the variable the bad endpoint came from."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "collector:4318")
    with pytest.raises(ConfigurationError, match="OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        OTLPSink(signal="traces")


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"signal": "metrics"}, "signal"), ({"encoding": "xml"}, "encoding"),
    ({"compression": "brotli"}, "compression"), ({"timeout": 0}, "timeout"),
    ({"max_batch_events": 0}, "max_batch_events"), ({"headers": 42}, "headers"),
])
def test_bad_arguments_are_configuration_errors(kwargs: dict[str, object], match: str) -> None:
    """Unknown signal, encoding, compression, and bad sending settings fail at construction."""
    with pytest.raises(ConfigurationError, match=match):
        OTLPSink("http://localhost:4318", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("raw", ["novalue", "=value", "a=1,,bad", "x-key=secret-123,oops"])
def test_headers_that_do_not_parse_never_echo_values(raw: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """OTEL_EXPORTER_OTLP_HEADERS without name=value fails, naming the variable, not the value."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", raw)
    with pytest.raises(ConfigurationError, match="OTEL_EXPORTER_OTLP_HEADERS") as info:
        OTLPSink()
    assert "secret-123" not in str(info.value)


@pytest.mark.parametrize("headers", [{"bad name": "v"}, {"x-k": "line\nbreak"}, {"x-k": "é"}])
def test_invalid_header_names_and_values(headers: dict[str, str]) -> None:
    """Header names must be HTTP tokens; values printable ASCII on one line."""
    with pytest.raises(ConfigurationError, match="header"):
        OTLPSink("http://localhost:4318", headers=headers)


def test_headers_reach_the_endpoint_and_stay_out_of_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    """Generic headers are percent-decoded; the per-signal variable replaces them."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-honeycomb-team=wrong")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_LOGS_HEADERS", "x-honeycomb-team=s%3Dcret,x-extra=1")
    with running(required_headers={"x-honeycomb-team": "s=cret"}) as rx:
        sink = OTLPSink(rx.url)
        assert "cret" not in repr(sink)
        sink.export(make_records(3))
        assert sink.flush(10.0)
        assert (3, "1") == (rx.total(), rx.accepted_requests()[0].headers["x-extra"])


def test_honeycomb_endpoint_needs_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """Honeycomb's endpoint without x-honeycomb-team fails, unless HONEYCOMB_API_KEY is set."""
    with pytest.raises(ConfigurationError, match="HONEYCOMB_API_KEY"):
        OTLPSink("https://api.honeycomb.io")
    monkeypatch.setenv("HONEYCOMB_API_KEY", "hc-key-123")
    sink = OTLPSink("https://api.eu1.honeycomb.io", signal="traces")
    assert {"x-honeycomb-team": "hc-key-123"} == dict(sink._dest.headers)
    assert "hc-key-123" not in repr(sink)


@pytest.mark.parametrize(("variable", "value", "want"), [
    ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json", "json"),
    ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "http/protobuf", "protobuf"),
])
def test_protocol_variable_picks_the_encoding(variable: str, value: str, want: str,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """OTEL_EXPORTER_OTLP_PROTOCOL selects JSON or protobuf when encoding= is not given."""
    monkeypatch.setenv(variable, value)
    assert want == OTLPSink("http://c:4318").encoding


def test_grpc_protocol_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """gRPC is not spoken here: a fix-it error rather than silent failures later."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    with pytest.raises(ConfigurationError, match="http/protobuf"):
        OTLPSink("http://c:4317")


def test_compression_and_timeout_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """OTEL_EXPORTER_OTLP_COMPRESSION=none sends plain bodies; the timeout is in ms."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "none")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "2500")
    with running() as rx:
        sink = OTLPSink(rx.url, encoding="json")
        assert ("none", 2.5) == (sink.compression, sink.sender._config.request_timeout)
        sink.export(make_records(2))
        assert sink.flush(10.0)
        assert ("", "application/json") == (rx.requests[0].encoding, rx.requests[0].content_type)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "soon")
    with pytest.raises(ConfigurationError, match="OTEL_EXPORTER_OTLP_TIMEOUT"):
        OTLPSink("http://c:4318")


def test_bad_resource_attributes_fail_at_construction(monkeypatch: pytest.MonkeyPatch) -> None:
    """A malformed OTEL_RESOURCE_ATTRIBUTES is reported when the sink is built."""
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "team=search,broken")
    with pytest.raises(ConfigurationError, match="OTEL_RESOURCE_ATTRIBUTES"):
        OTLPSink("http://c:4318")


def test_wideevents_sink_otlp_uses_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """WIDEEVENTS_SINK=otlp builds OTLPSink() from OTEL_* variables, resource included."""
    with running() as rx:
        monkeypatch.setenv("WIDEEVENTS_SINK", "otlp")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rx.url)
        monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
        monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "k8s.pod.name=pod%201,service.name=x")
        wideevents.configure()
        with wideevents.event("hello"):
            pass
        assert wideevents.flush(10.0)
        [record] = rx.received()
        assert ("from-env", "pod 1", "hello") == (
            record.resource["service.name"], record.resource["k8s.pod.name"],
            record.message.event_name)
