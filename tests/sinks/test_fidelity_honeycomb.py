"""HoneycombSink as Honeycomb's API reference has it: markers need a configuration key, a
batch 403 is throttling, dataset names without '/' (issue 17)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import orjson
import pytest

import wideevents
from tests.sinks.recording_server import RecordingServer, Reply, Seen, honeycomb_ok
from tests.support.honeycomb_receiver import ExactLedger
from tests.support.otel import make_records
from wideevents import ConfigurationError
from wideevents._core import log as _log
from wideevents.sinks import HoneycombSink, MemorySink

INGEST_KEY = "hcaik_01jfidelityingestkeyq8w7e6r5t4y3u2i1o0pasdfghjklzxcvbnm12"
CONFIG_KEY = "cfg7Key2ManageMarkers9x"  # configuration keys: 22 characters
FAST = {"backoff_initial": 0.01, "backoff_max": 0.02, "send_interval": 0.01}


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("HONEYCOMB_API_KEY", "HONEYCOMB_CONFIG_KEY", "HONEYCOMB_DATASET",
                 "HONEYCOMB_API_HOST", "OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"):
        monkeypatch.delenv(name, raising=False)
    _log.reset()
    yield


def honeycomb_api(request: Seen) -> Reply:
    """Honeycomb's key rules (API reference, "Permissions"): events with the ingest key (or
    a configuration key allowed to send events), markers only with a configuration key that
    has Manage Markers; anything else 401."""
    key = request.header("X-Honeycomb-Team")
    if request.path.startswith("/1/markers/"):
        if key != CONFIG_KEY:
            return 401, {}, orjson.dumps({"error": "unknown API key - check your credentials"})
        return honeycomb_ok(request)
    if key not in (INGEST_KEY, CONFIG_KEY):
        return 401, {}, orjson.dumps({"error": "unknown API key - check your credentials"})
    return honeycomb_ok(request)


def sink_for(url: str, **options: Any) -> tuple[HoneycombSink, ExactLedger]:
    options = {"api_key": INGEST_KEY, "dataset": "ds", "api_host": url, **FAST, **options}
    sink = HoneycombSink(**options)
    ledger = ExactLedger()
    sink.bind(ledger)
    return sink, ledger


def logged(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() for r in caplog.records)


# -- markers ----------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["argument", "environment"])
def test_markers_go_with_the_configuration_key_events_with_the_ingest_key(
        how: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``marker_key=`` / ``HONEYCOMB_CONFIG_KEY``: markers (Honeycomb's Markers API needs
    the Manage Markers permission, which ingest keys never have) carry the configuration
    key; events keep the ingest key."""
    options: dict[str, Any] = {}
    if how == "argument":
        options["marker_key"] = CONFIG_KEY
    else:
        monkeypatch.setenv("HONEYCOMB_CONFIG_KEY", CONFIG_KEY)
    with RecordingServer(honeycomb_api) as server:
        sink, ledger = sink_for(server.url, **options)
        created = sink.marker("ranker v2 deployed")
        ledger.expect(3)
        sink.export(make_records(3))
        assert ledger.wait_reported(10.0)
        sink.close(2.0)
        keys = {(r.path.split("/")[2], r.header("X-Honeycomb-Team")) for r in server.seen()}
    assert ("ranker v2 deployed", (3, {}, {})) == (
        created["message"] if created else None, ledger.outcome())
    assert {("markers", CONFIG_KEY), ("batch", INGEST_KEY)} == keys


def test_a_marker_refused_for_an_ingest_key_says_a_configuration_key_is_needed(
        caplog: pytest.LogCaptureFixture) -> None:
    """Without a configuration key the marker goes with the ingest key, Honeycomb says 401,
    and the one log line says what to set (HONEYCOMB_CONFIG_KEY, Manage Markers), not to
    check the ingest key; the key itself is never shown."""
    caplog.set_level(logging.WARNING, logger="wideevents")
    with RecordingServer(honeycomb_api) as server:
        sink, _ = sink_for(server.url)
        assert sink.marker("deploy") is None
        sink.close(1.0)
    text = logged(caplog)
    assert (True, True, False) == (
        "HONEYCOMB_CONFIG_KEY" in text, "Manage Markers" in text, INGEST_KEY[6:30] in text)


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_an_ingest_key_given_for_markers_is_a_configuration_error(
        how: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """An ingest key (hc?ik_/hc?ic_, as libhoney-go's classicIngestKeyRegex reads them)
    can never create markers: refused when the sink is built, naming where it came from."""
    kwargs: dict[str, Any] = {"api_key": INGEST_KEY, "dataset": "ds",
                              "api_host": "http://127.0.0.1:9"}
    if how == "argument":
        kwargs["marker_key"] = INGEST_KEY
        where = "marker_key"
    else:
        monkeypatch.setenv("HONEYCOMB_CONFIG_KEY", INGEST_KEY)
        where = "HONEYCOMB_CONFIG_KEY"
    with pytest.raises(ConfigurationError) as info:
        HoneycombSink(**kwargs)
    message = str(info.value)
    assert (True, True, False) == (where in message, "Manage Markers" in message,
                                   INGEST_KEY[6:30] in message)


def test_the_configuration_key_is_never_shown(caplog: pytest.LogCaptureFixture) -> None:
    """The marker key appears in no repr, log line (DEBUG included) or error."""
    caplog.set_level(logging.DEBUG)

    def refuse(request: Seen) -> Reply:
        return 403, {}, orjson.dumps({"error": "forbidden"})

    with RecordingServer(refuse) as server:
        sink, _ = sink_for(server.url, marker_key=CONFIG_KEY)
        assert sink.marker("deploy") is None
        sink.close(1.0)
    with pytest.raises(ConfigurationError) as info:
        HoneycombSink(INGEST_KEY, "ds", "http://127.0.0.1:9", marker_key=CONFIG_KEY + " x")
    text = "\n".join([logged(caplog), repr(sink), repr(sink.client.xmit), str(info.value)])
    assert (False, True) == (CONFIG_KEY in text, "HONEYCOMB_CONFIG_KEY" in text)


# -- a 403 on the batch endpoint ----------------------------------------------------------------
def test_a_batch_403_is_reported_as_throttling_not_as_a_bad_key(
        caplog: pytest.LogCaptureFixture) -> None:
    """Honeycomb's Events API reference, "Create Events" (batch): 403 is "Dropped due to
    administrative throttling". Counted rejected "403", not retried; the log line says
    throttling and does not send the user to check a key that was accepted."""
    caplog.set_level(logging.WARNING, logger="wideevents")

    def throttle(request: Seen) -> Reply:
        return 403, {}, orjson.dumps({"error": "event dropped due to administrative throttling"})

    with RecordingServer(throttle) as server:
        sink, ledger = sink_for(server.url)
        ledger.expect(4)
        sink.export(make_records(4))
        assert ledger.wait_reported(10.0)
        sink.close(1.0)
        requests = len(server.seen())
    text = logged(caplog)
    assert ((0, {"403": 4}, {}), 1) == (ledger.outcome(), requests)
    assert (True, False, False) == ("throttling" in text, "refused the API key" in text,
                                    "HONEYCOMB_API_KEY" in text)


# -- dataset names --------------------------------------------------------------------------------
@pytest.mark.parametrize(("where", "value"), [
    ("dataset=", "team/search"), ("HONEYCOMB_DATASET", "team/search"),
    ("OTEL_SERVICE_NAME", "team/search"),
])
def test_a_dataset_name_with_a_slash_is_refused_at_configuration(
        where: str, value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Honeycomb's Events API reference: dataset names "may contain URL-encoded spaces or
    other special characters, but not URL-encoded slashes". Sent as %2F, every batch would
    fail; refused when the sink is built, with the fix."""
    kwargs: dict[str, Any] = {"api_key": INGEST_KEY, "api_host": "http://127.0.0.1:9"}
    if where == "dataset=":
        kwargs["dataset"] = value
    else:
        monkeypatch.setenv(where, value)
    with pytest.raises(ConfigurationError) as info:
        HoneycombSink(**kwargs)
    message = str(info.value)
    assert (True, True) == ("'/'" in message, "HONEYCOMB_DATASET" in message)


def test_a_service_name_with_a_slash_does_not_become_the_dataset(
        caplog: pytest.LogCaptureFixture) -> None:
    """Without a dataset setting, the events' service.name names the dataset; one with '/'
    does not (logged once): events go to the default dataset, not to a path Honeycomb
    refuses."""
    caplog.set_level(logging.WARNING, logger="wideevents")
    with RecordingServer(honeycomb_ok) as server:
        sink = HoneycombSink(INGEST_KEY, api_host=server.url, **FAST)
        default = sink.dataset
        memory = MemorySink()
        wideevents.configure(service_name="team/search", sinks=[sink, memory])
        for _ in range(2):
            with wideevents.event("request"):
                pass
            assert wideevents.flush(10.0)
        paths = {r.path for r in server.seen()}
    lines = [r.getMessage() for r in caplog.records if "contains '/'" in r.getMessage()]
    assert ({"/1/batch/" + quote(default, safe="")}, 1) == (paths, len(lines))


# -- examples/honeycomb.md ------------------------------------------------------------------------
def test_the_honeycomb_example_asks_every_question_the_demo_asks() -> None:
    """examples/honeycomb.md lists each of the demo's questions (wideevents/_demo/report.py)
    with the command the demo runs plus --link, and sets a configuration key before its
    marker() call (an ingest key cannot create markers)."""
    from tests.support.otel import ROOT
    from wideevents._demo.report import QUESTIONS, command_line

    text = (ROOT / "examples" / "honeycomb.md").read_text()
    link = " --link --team TEAM --environment ENV --dataset search-mixer"
    missing = [q.title for q in QUESTIONS
               if f"**{q.title}**" not in text
               or f"`{command_line(q.spec, 'events.jsonl')}{link}`" not in text]
    assert ([], True) == (missing, text.index("HONEYCOMB_CONFIG_KEY") < text.index(".marker("))
