"""OpenTelemetry's configuration as its specifications have it: OTLP timeouts, endpoint
paths, the resource, OTEL_RESOURCE_ATTRIBUTES / OTEL_SERVICE_NAME on every sink,
OTEL_SDK_DISABLED; and WIDEEVENTS_SINK as configure(sinks=...) takes it (issue 17)."""

from __future__ import annotations

import importlib.metadata
import logging
import math
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

import wideevents
from tests.sinks.recording_server import RecordingServer, Reply, Seen
from tests.support.honeycomb_receiver import ExactLedger
from tests.support.honeycomb_receiver import running as honeycomb_running
from tests.support.otel import make_records, otel_clean, tracing  # noqa: F401 - fixture
from tests.support.otlp_receiver import running as otlp_running
from wideevents import ConfigurationError
from wideevents import _correlation as _otel
from wideevents._core import log as _log
from wideevents.sinks import FileSink, HoneycombSink, MemorySink, OTelSink, OTLPSink, StdoutSink
from wideevents.testing import capture_events

OTEL_VARS = [
    "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES", "OTEL_SDK_DISABLED", "HONEYCOMB_API_KEY", "HONEYCOMB_DATASET",
    "WIDEEVENTS_SINK", "SERVICE_VERSION",
]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in OTEL_VARS:
        monkeypatch.delenv(name, raising=False)
    _log.reset()
    yield


def messages(caplog: pytest.LogCaptureFixture, needle: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if needle in r.getMessage()]


# -- OTEL_EXPORTER_OTLP_TIMEOUT -----------------------------------------------------------------
@pytest.mark.parametrize("variable", ["OTEL_EXPORTER_OTLP_TIMEOUT",
                                      "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT"])
def test_timeout_zero_means_no_limit_on_one_request(variable: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """OpenTelemetry "Common Configuration Specification", Timeout: 0 means no limit. A
    request then waits on a silent endpoint until the batch's retry_deadline (1 s here),
    which still bounds it: the batch is dropped, counted."""
    monkeypatch.setenv(variable, "0")

    def silent(request: Seen) -> Reply:
        time.sleep(3.0)
        return 200, {}, b""

    with RecordingServer(silent) as server:
        sink = OTLPSink(server.url, retry_deadline=1.0, send_interval=0.01)
        ledger = ExactLedger()
        sink.bind(ledger)
        ledger.expect(3)
        started = time.monotonic()
        sink.export(make_records(3))
        assert ledger.wait_reported(10.0)
        elapsed = time.monotonic() - started
        sink.close(0.5)
    assert (math.inf, (0, {}, {"retries_exhausted": 3}), 1) == (
        sink.sender._config.request_timeout, ledger.outcome(), len(server.seen()))
    assert 0.9 <= elapsed < 2.9  # ended by retry_deadline, not by the reply after 3 s


def test_a_negative_timeout_warns_and_uses_the_default(monkeypatch: pytest.MonkeyPatch,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    """Common Configuration Specification, Timeout: a negative value MUST generate a
    warning and be ignored (the default, 10 s, applies)."""
    caplog.set_level(logging.WARNING, logger="wideevents")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "-500")
    sink = OTLPSink("http://127.0.0.1:9")
    assert (10.0, 1) == (sink.sender._config.request_timeout,
                         len(messages(caplog, "OTEL_EXPORTER_OTLP_TIMEOUT='-500' is negative")))


# -- endpoints ------------------------------------------------------------------------------------
def test_a_generic_endpoint_ending_in_the_signal_path_is_kept_and_said_once(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """The exporter specification ("Endpoint URLs for OTLP/HTTP") appends /v1/logs to
    OTEL_EXPORTER_OTLP_ENDPOINT whatever it ends with; wideevents keeps a URL that already
    ends so (documented in docs/backends.md), and logs that once."""
    caplog.set_level(logging.WARNING, logger="wideevents")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/v1/logs")
    urls = [OTLPSink().endpoint, OTLPSink().endpoint, OTLPSink(signal="traces").endpoint]
    assert (["http://collector:4318/v1/logs"] * 2 + ["http://collector:4318/v1/logs/v1/traces"],
            1) == (urls, len(messages(caplog, "already ends in /v1/logs")))


@pytest.mark.parametrize("value", ["not-a-url", "collector:4318",
                                   "not-a-url-hcaik01jsecretsecret9secret8secret7"])
def test_a_bad_endpoint_variable_is_quoted_as_written(value: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """OTEL_EXPORTER_OTLP_ENDPOINT=not-a-url: the error quotes what the user wrote (masked
    as wideevents/_core/secrets.py masks), not a URL made from it ('://not-a-url/v1/logs')."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", value)
    with pytest.raises(ConfigurationError) as info:
        OTLPSink()
    message = str(info.value)
    shown = repr(value) if "secret" not in value else "'not-***(45 chars)'"  # one token
    assert (True, False, False) == (shown in message, "/v1/logs" in message,
                                    "secret" in message)


@pytest.mark.parametrize("name", ["Content-Type", "content-encoding"])
def test_headers_that_describe_the_body_are_refused(name: str) -> None:
    """The sink writes the body and its headers; a header naming another encoding would
    make every request unreadable: refused at configuration."""
    with pytest.raises(ConfigurationError, match="describes the request body"):
        OTLPSink("http://127.0.0.1:9", headers={name: "text/plain"})


# -- the resource -----------------------------------------------------------------------------------
def test_the_resource_has_the_required_telemetry_sdk_attributes() -> None:
    """OpenTelemetry semantic conventions, telemetry.sdk.*: name, language and version are
    required on every resource (Resource SDK, "SDK-provided resource attributes")."""
    with otlp_running() as rx:
        sink = OTLPSink(rx.url)
        sink.export(make_records(2))
        assert sink.flush(10.0)
        sink.close(1.0)
        resources = [r.resource for r in rx.received()]
    want = {"telemetry.sdk.name": "wideevents", "telemetry.sdk.language": "python",
            "telemetry.sdk.version": importlib.metadata.version("wideevents")}
    assert [want] * 2 == [{k: v for k, v in r.items() if k.startswith("telemetry.sdk.")}
                          for r in resources]


RESOURCE = "k8s.pod.name=pod%201,team=search,host.name=env-host,service.version=2.0"


def test_resource_attributes_are_fields_of_every_event(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    """OTEL_RESOURCE_ATTRIBUTES (values percent-decoded, as the Resource SDK specification
    says) and OTEL_SERVICE_NAME reach the events of every sink; configure(service_name=,
    static_fields=) win over them, and they win over detected values (host.name)."""
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", RESOURCE + ",service.name=from-attrs")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
    memory = MemorySink()
    path = tmp_path / "events.jsonl"
    wideevents.configure(sinks=[memory, FileSink(str(path))], static_fields={"team": "ranking"})
    with wideevents.event("request"):
        pass
    assert wideevents.flush(10.0)
    [event] = memory.events
    [line] = [orjson.loads(x) for x in path.read_bytes().splitlines()]
    picked = {k: event[k] for k in ("service.name", "service.version", "k8s.pod.name", "team",
                                    "host.name")}
    assert {"service.name": "from-env", "service.version": "2.0", "k8s.pod.name": "pod 1",
            "team": "ranking", "host.name": "env-host"} == picked
    assert picked == {k: line[k] for k in picked}
    wideevents.configure(service_name="from-arg", sinks=[memory])
    with wideevents.event("request"):
        pass
    assert wideevents.flush(10.0)
    assert ("from-arg", socket.gethostname() != "env-host") == (
        memory.events[-1]["service.name"], True)


def test_without_resource_attributes_host_name_is_detected() -> None:
    """No OTEL_RESOURCE_ATTRIBUTES: host.name is this host's, process.pid this process's."""
    with capture_events() as events:
        with wideevents.event("e"):
            pass
    assert (socket.gethostname(), True) == (events[0]["host.name"],
                                            isinstance(events[0]["process.pid"], int))


def test_resource_attributes_reach_honeycomb(monkeypatch: pytest.MonkeyPatch) -> None:
    """HoneycombSink: each event's data carries the resource attributes as fields (as
    Honeycomb's own OTLP ingest turns a resource into fields of every event)."""
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", RESOURCE)
    with honeycomb_running(api_key="k") as rx:
        wideevents.configure(service_name="svc", sinks=[HoneycombSink("k", "ds", rx.url)])
        with wideevents.event("request"):
            pass
        assert wideevents.flush(10.0)
        [event] = rx.received()
    assert ("pod 1", "search") == (event["data"]["k8s.pod.name"], event["data"]["team"])


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
def test_resource_attributes_stay_in_the_otlp_resource(encoding: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """OTLPSink: the fields that came from OTEL_RESOURCE_ATTRIBUTES are resource attributes,
    not repeated as attributes of each log record."""
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", RESOURCE)
    with otlp_running() as rx:
        wideevents.configure(service_name="svc", sinks=[OTLPSink(rx.url, encoding=encoding)])
        with wideevents.event("request", route="/a"):
            pass
        assert wideevents.flush(10.0)
        [record] = rx.received()
    assert ({"k8s.pod.name": "pod 1", "team": "search", "service.name": "svc"},
            set()) == ({k: record.resource[k] for k in ("k8s.pod.name", "team", "service.name")},
                       {"k8s.pod.name", "team", "host.name"} & set(record.attributes))


# -- OTEL_SDK_DISABLED ---------------------------------------------------------------------------------
@pytest.mark.usefixtures("otel_clean")
def test_sdk_disabled_turns_off_the_opentelemetry_parts_only(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """OTEL_SDK_DISABLED=true (Environment Variable Specification: "Disable the SDK for all
    signals"): OTLPSink sends nothing, OTelSink starts no span, correlation stays off, each
    counted as dropped "sdk_disabled" (a decision: flush() stays True) and logged once;
    a MemorySink beside them gets every event."""
    caplog.set_level(logging.INFO, logger="wideevents")
    monkeypatch.setenv("OTEL_SDK_DISABLED", "TRUE")  # the Boolean rule: any case
    provider, exporter = tracing()
    with otlp_running() as rx:
        memory = MemorySink()
        wideevents.configure(sinks=[OTLPSink(rx.url), OTelSink(tracer_provider=provider),
                                    memory], otel=True)
        with provider.get_tracer("t").start_as_current_span("outer") as span:
            for i in range(3):
                with wideevents.event("request", i=i):
                    pass
        flushed = wideevents.flush(10.0)
        stats = wideevents.stats()
        requests = len(rx.requests)
    outer = format(span.get_span_context().trace_id, "032x")
    assert (True, 0, [], 3, False) == (flushed, requests, list(exporter.get_finished_spans()),
                                       len(memory.events), _otel.is_enabled())
    assert {"otlp": {"sdk_disabled": 3}, "otel": {"sdk_disabled": 3}, "memory": {}} == {
        name: s["dropped"] for name, s in stats["sinks"].items()}
    assert (outer not in {e["trace.trace_id"] for e in memory.events},
            1) == (True, len(messages(caplog, "OTEL_SDK_DISABLED=true")))


def test_sdk_disabled_leaves_capture_events_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """capture_events() (no OpenTelemetry in it) records as usual."""
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    with capture_events() as events:
        with wideevents.event("e", x=1):
            pass
    assert [("e", 1)] == [(e["name"], e["x"]) for e in events]


@pytest.mark.parametrize(("value", "disabled", "warned"), [
    ("true", True, False), ("True", True, False), ("false", False, False), ("", False, False),
    ("1", False, True), ("yes", False, True),
])
def test_sdk_disabled_reads_a_boolean_as_the_specification_says(
        value: str, disabled: bool, warned: bool, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """Environment Variable Specification, Boolean: only "true" (any case) is true; any
    other value but "false" or empty is false, with a warning."""
    caplog.set_level(logging.WARNING, logger="wideevents")
    monkeypatch.setenv("OTEL_SDK_DISABLED", value)
    assert (disabled, warned) == (_otel.sdk_disabled(),
                                  bool(messages(caplog, "neither 'true' nor 'false'")))


# -- WIDEEVENTS_SINK ----------------------------------------------------------------------------------
def test_wideevents_sink_takes_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    """WIDEEVENTS_SINK=stdout,file:PATH builds the sinks configure(sinks="stdout,file:PATH")
    builds, and the events reach the file."""
    path = tmp_path / "events.jsonl"
    monkeypatch.setenv("WIDEEVENTS_SINK", f"stdout,file:{path}")
    pipeline = wideevents.configure()
    with wideevents.event("e"):
        pass
    assert wideevents.flush(10.0)
    kinds = [type(s) for s in pipeline.sinks]
    assert ([StdoutSink, FileSink], ["e"]) == (
        kinds, [orjson.loads(line)["name"] for line in path.read_bytes().splitlines()])


def test_a_bad_item_in_wideevents_sink_names_the_variable(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An unknown sink in the list fails configure() naming WIDEEVENTS_SINK."""
    monkeypatch.setenv("WIDEEVENTS_SINK", "stdout,kafka")
    with pytest.raises(ConfigurationError, match="WIDEEVENTS_SINK.*unknown sink 'kafka'"):
        wideevents.configure()



# -- OTelSink's attribute limit variables --------------------------------------------------------------
@pytest.mark.parametrize(("span", "generic", "want", "warned"), [
    ("", "-1", 128, True),  # negative: ignored, the default
    ("-5", "64", 64, True),  # the per-signal one ignored: the generic one applies
    ("many", "", 128, True),  # unreadable: ignored, the default
    ("0", "64", 0, False),  # 0 is a limit (no attributes), not "unset"
    ("", "32", 32, False),
])
def test_attribute_limit_variables_out_of_range_are_ignored_with_a_warning(
        span: str, generic: str, want: int, warned: bool, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """OTelSink reads OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT / OTEL_ATTRIBUTE_COUNT_LIMIT when the
    SDK's own limits cannot be read. Common Configuration Specification, Numeric: a value
    outside the valid range is ignored with a warning (treated as not set), never given a
    meaning of its own (a negative limit is not "0 attributes")."""
    from wideevents.sinks._otel import _env_limit

    caplog.set_level(logging.WARNING, logger="wideevents")
    for name, value in (("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", span),
                        ("OTEL_ATTRIBUTE_COUNT_LIMIT", generic)):
        if value:
            monkeypatch.setenv(name, value)
        else:
            monkeypatch.delenv(name, raising=False)
    got = _env_limit("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "OTEL_ATTRIBUTE_COUNT_LIMIT")
    assert (want, warned) == (got, bool(messages(caplog, "is ignored")))
