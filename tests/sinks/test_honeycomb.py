"""HoneycombSink against a real loopback Events API: shape, faults, accounting, secrets."""

from __future__ import annotations

import datetime
import logging
import math
import os
import queue
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson
import pytest

import wideevents
from tests.support.honeycomb_receiver import ExactLedger, HoneycombReceiver, running
from wideevents import ConfigurationError
from wideevents._core import log as _log
from wideevents._transport.sender import SenderConfig
from wideevents.integrations.libhoney import HoneycombTransmission
from wideevents.sinks import HoneycombSink, Record

KEY = "hcaik_01testkeyDONOTLEAK0123456789abcdefghijklmnopqrstuvwxyz0123"
WRONG_KEY = "hcaik_01wrongkeyALSOSECRET987654321zyxwvutsrqponmlkjihgfedcba99"
FAST = {"backoff_initial": 0.02, "backoff_max": 0.2}


@pytest.fixture(autouse=True)
def _fresh_log_once() -> None:
    """Each test sees its own first occurrences of log_once messages."""
    _log.reset()


@pytest.fixture
def receiver() -> Iterator[HoneycombReceiver]:
    with running(api_key=KEY) as rx:
        yield rx


def make_records(n: int, start: int = 0, fields: int = 10) -> list[Record]:
    """Records as the pipeline hands them over: final flat dict plus its JSON."""
    out = []
    for i in range(start, start + n):
        f: dict[str, Any] = {
            "timestamp": f"2024-11-03T12:{i // 60 % 60:02d}:{i % 60:02d}.{i % 1_000_000:06d}Z",
            "name": "predict", "i": i, "score": i / 7, "ok": i % 2 == 0, "tags": ["a", "b"],
            "none": None,
        }
        f.update({f"extra.{k}": k for k in range(fields - len(f))})
        if i % 3 == 0:
            f["samplerate"] = 3
        out.append(Record(f, orjson.dumps(f)))
    return out


def sink_for(rx: HoneycombReceiver, key: str = KEY, **options: Any) -> tuple[HoneycombSink,
                                                                           ExactLedger]:
    sink = HoneycombSink(key, "test-ds", rx.url, **{**FAST, **options})
    ledger = ExactLedger()
    sink.bind(ledger)
    return sink, ledger


def export(sink: HoneycombSink, ledger: ExactLedger, records: list[Record],
           chunk: int = 512) -> None:
    for i in range(0, len(records), chunk):
        ledger.expect(len(records[i:i + chunk]))
        sink.export(records[i:i + chunk])


def ids(rx: HoneycombReceiver) -> list[int]:
    return sorted(e["data"]["i"] for e in rx.received())


def test_20000_events_arrive_exactly_once_in_the_right_shape(receiver: HoneycombReceiver
                                                              ) -> None:
    """Every event arrives once: data, time and samplerate exactly as the record had them."""
    sink, ledger = sink_for(receiver)
    records = make_records(20_000)
    export(sink, ledger, records)
    assert sink.flush(30.0) is True
    got = {e["data"]["i"]: e for e in receiver.received("test-ds")}
    assert len(receiver.received()) == 20_000 and sorted(got) == list(range(20_000))
    for r in records:
        e = got[r.fields["i"]]
        assert e["data"] == r.fields
        assert e["time"] == r.fields["timestamp"]
        assert e["samplerate"] == r.fields.get("samplerate", 1)
    assert (ledger.sent_count, ledger.rejected_by, ledger.dropped_by) == (20_000, {}, {})
    assert not ledger.overcounted
    assert {q.encoding for q in receiver.requests} == {"zstd"}
    assert max(q.events for q in receiver.requests) <= 1000
    assert sink.close(5.0) is True


# fault -> (times injected, expected ledger given 3 requests of 100 events each)
FAULTS: dict[str, tuple[int, dict[str, Any]]] = {
    "500": (2, {"sent": 300}),
    "503": (3, {"sent": 300}),
    "429": (2, {"sent": 300}),
    "slow": (1, {"sent": 300}),
    "reset": (2, {"sent": 300}),
    "malformed": (1, {"sent": 300}),
    "413": (2, {"sent": 300}),
    "401": (1, {"sent": 200, "rejected": {"401": 100}}),
    "partial": (2, {"sent": 300}),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_each_fault_is_contained_and_accounted_exactly(receiver: HoneycombReceiver,
                                                       fault: str) -> None:
    """No exception reaches the caller; every event is reported once as expected."""
    times, expected = FAULTS[fault]
    sink, ledger = sink_for(receiver, max_batch_events=100, send_interval=60.0)
    receiver.inject(fault, times)
    export(sink, ledger, make_records(300), chunk=100)
    # flush() is False when something was rejected (docs/architecture.md, "Sinks").
    assert sink.flush(15.0) is (not expected.get("rejected"))
    assert ledger.sent_count == expected["sent"]
    assert ledger.rejected_by == expected.get("rejected", {})
    assert ledger.dropped_by == {}
    assert ledger.reported == 300 and not ledger.overcounted
    accepted = ids(receiver)
    assert len(accepted) == expected["sent"] and len(set(accepted)) == expected["sent"]
    assert sink.close(2.0) is True


@pytest.mark.parametrize("outage", ["503", "refused"])
def test_a_3_second_outage_loses_nothing(receiver: HoneycombReceiver, outage: str) -> None:
    """While Honeycomb is down for 3 s the buffer holds the backlog; all arrive once after."""
    sink, ledger = sink_for(receiver, max_attempts=100, send_interval=0.05)
    if outage == "503":
        receiver.fault_for("503", 3.0)
    else:
        receiver.refuse_for(3.0)
    started = time.monotonic()
    for i in range(20):  # events keep coming during the outage
        export(sink, ledger, make_records(100, start=i * 100))
        time.sleep(0.05)
    assert sink.flush(20.0) is True
    assert time.monotonic() - started >= 3.0
    assert (ledger.sent_count, ledger.rejected_by, ledger.dropped_by) == (2000, {}, {})
    assert ids(receiver) == list(range(2000))
    sink.close(2.0)


def test_close_is_bounded_when_honeycomb_never_answers(receiver: HoneycombReceiver) -> None:
    """close(timeout=2) returns within ~2 s; undelivered events are dropped "shutdown"."""
    sink, ledger = sink_for(receiver, request_timeout=30.0, max_batch_events=100)
    receiver.inject("hang", 1000)
    export(sink, ledger, make_records(500))
    time.sleep(0.3)  # requests are now waiting for replies that never come
    started = time.monotonic()
    assert sink.close(timeout=2.0) is False
    assert time.monotonic() - started < 2.75  # ~2 s, with room for a busy machine
    assert ledger.dropped_by == {"shutdown": 500} and ledger.sent_count == 0
    receiver.release()
    time.sleep(0.2)
    assert ledger.reported == 500 and not ledger.overcounted


def test_pipeline_shutdown_is_bounded_when_honeycomb_never_answers(
        receiver: HoneycombReceiver) -> None:
    """End to end: shutdown(timeout=2) within ~2 s, and stats() still adds up."""
    sink = HoneycombSink(KEY, "e2e", receiver.url, request_timeout=30.0, **FAST)
    wideevents.configure(service_name="svc", sinks=[sink])
    receiver.inject("hang", 1000)
    for i in range(300):
        with wideevents.event("predict", i=i):
            pass
    time.sleep(0.5)
    started = time.monotonic()
    assert wideevents.shutdown(timeout=2.0) is False
    assert time.monotonic() - started < 2.75
    stats = wideevents.stats()
    s = stats["sinks"]["honeycomb"]
    assert s["sent"] + sum(s["dropped"].values()) + sum(stats["dropped"].values()) == 300
    assert s["pending"] == 0 and s["sent"] == 0


def test_end_to_end_through_the_pipeline(receiver: HoneycombReceiver) -> None:
    """configure(sinks=[HoneycombSink()]): events arrive, stats() counts them as sent."""
    sink = HoneycombSink(KEY, None, receiver.url, **FAST)
    wideevents.configure(service_name="ranker", sinks=[sink])
    for i in range(1000):
        with wideevents.event("predict", i=i) as ev:
            ev.add({"score.top1": np.float32(0.25), "bad": float("nan")})
    assert wideevents.flush(10.0) is True
    stats = wideevents.stats()
    assert stats["emitted"] == 1000
    assert stats["sinks"]["honeycomb"] == {"sent": 1000, "rejected": {}, "dropped": {},
                                           "pending": 0}
    got = receiver.received()
    assert sorted(e["data"]["i"] for e in got) == list(range(1000))
    assert {e["dataset"] for e in got} == {"ranker"}  # dataset = the events' service.name
    first = got[0]
    assert first["data"]["score.top1"] == 0.25 and first["data"]["bad"] is None
    assert first["time"] == first["data"]["timestamp"]


def test_per_event_rejections_are_counted_and_logged_once(
        receiver: HoneycombReceiver, caplog: pytest.LogCaptureFixture) -> None:
    """Events past 2,000 fields are rejected with Honeycomb's text, logged once; others sent."""
    sink, ledger = sink_for(receiver)
    wide = {f"f{k}": k for k in range(2001)}
    records = [Record(dict(wide, i=i), orjson.dumps(dict(wide, i=i))) for i in (0, 1)]
    records += make_records(3, start=2)
    caplog.set_level(logging.WARNING, logger="wideevents")
    export(sink, ledger, records)
    assert sink.flush(5.0) is False  # events were rejected since the last flush
    export(sink, ledger, [records[0]])
    assert sink.flush(5.0) is False
    assert ledger.rejected_by == {"Event has too many columns.": 3}
    assert ledger.sent_count == 3 and ledger.dropped_by == {}
    assert sum("too many columns" in r.getMessage() for r in caplog.records) == 1
    sink.close(1.0)


def test_a_bad_key_is_rejected_logged_once_with_a_hint_and_never_shown(
        receiver: HoneycombReceiver, caplog: pytest.LogCaptureFixture,
        capfd: pytest.CaptureFixture[str]) -> None:
    """A 401 counts as rejected "401", logs one hint naming HONEYCOMB_API_KEY, never the key."""
    caplog.set_level(logging.DEBUG)
    sink, ledger = sink_for(receiver, key=WRONG_KEY)
    for start in (0, 100):
        export(sink, ledger, make_records(100, start=start))
        assert sink.flush(5.0) is False  # rejected: a loss since the previous flush
    assert ledger.rejected_by == {"401": 200}
    hints = [r.getMessage() for r in caplog.records if "HONEYCOMB_API_KEY" in r.getMessage()]
    assert len(hints) == 1
    assert sink.marker("deploy v2") is None  # refused, logged, not raised
    sink.close(1.0)
    out, err = capfd.readouterr()
    shown = [r.getMessage() for r in caplog.records] + [out, err, repr(sink),
                                                        repr(sink.client.xmit), str(sink.__dict__)]
    assert not any(WRONG_KEY in text for text in shown[:-1])
    assert not any(WRONG_KEY[6:] in text for text in shown[:-1])


def test_the_key_never_appears_in_output_logs_or_errors(
        receiver: HoneycombReceiver, caplog: pytest.LogCaptureFixture,
        capfd: pytest.CaptureFixture[str]) -> None:
    """Through faults, logs at DEBUG, reprs and configuration errors, the key is never shown."""
    caplog.set_level(logging.DEBUG)
    sink, ledger = sink_for(receiver, max_attempts=2)
    for fault in ("500", "reset", "malformed", "413"):
        receiver.inject(fault, 1)
        export(sink, ledger, make_records(50))
        sink.flush(5.0)
    sink.marker("model v3 deployed", url="https://example.test/v3")
    sink.close(1.0)
    texts = [r.getMessage() for r in caplog.records] + [repr(sink), repr(sink.client.xmit)]
    for bad in (KEY + " extra", f'"{KEY}"', "key with\nnewline"):
        with pytest.raises(ConfigurationError) as info:
            HoneycombSink(bad, "d", receiver.url)
        texts.append(str(info.value))
    out, err = capfd.readouterr()
    texts += [out, err]
    assert not any(KEY in t or KEY[6:30] in t for t in texts)
    assert not any("newline" in t for t in texts)


def test_markers(receiver: HoneycombReceiver) -> None:
    """marker() posts message, type, start_time and url to /1/markers/{dataset}."""
    sink, _ = sink_for(receiver)
    before = int(time.time())
    created = sink.marker("ranker 2024-11-03 deployed", url="https://ci.example/123")
    after = int(time.time())
    assert created is not None and created["id"] == "m1"
    [marker] = receiver.markers
    assert marker["dataset"] == "test-ds"
    assert marker["message"] == "ranker 2024-11-03 deployed"
    assert marker["type"] == "model-deploy" and marker["url"] == "https://ci.example/123"
    assert before <= marker["start_time"] <= after
    sink.close(1.0)


def test_gzip_bodies(receiver: HoneycombReceiver) -> None:
    """compression="gzip" sends gzip bodies the receiver decodes to the same events."""
    sink, ledger = sink_for(receiver, compression="gzip")
    records = make_records(200)
    export(sink, ledger, records)
    assert sink.flush(5.0) is True
    assert {q.encoding for q in receiver.requests} == {"gzip"}
    assert sorted((e["data"] for e in receiver.received()), key=lambda d: d["i"]) == [
        r.fields for r in records]
    sink.close(1.0)


def test_a_plain_libhoney_client_can_use_the_transmission(receiver: HoneycombReceiver) -> None:
    """libhoney's own API over HoneycombTransmission: events, numpy, NaN, responses, close."""
    import libhoney

    xmit = HoneycombTransmission(config=SenderConfig(send_interval=0.05))
    client = libhoney.Client(writekey=KEY, dataset="plain", api_host=receiver.url,
                             transmission_impl=xmit)
    client.add_field("service", "legacy")
    for i in range(10):
        ev = client.new_event()
        ev.add({"i": i, "np": np.float64(1.5) * i, "n": np.int64(i), "nan": float("nan")})
        ev.add_metadata({"id": i})
        ev.send()
    builder = client.new_builder({"from": "builder"})
    presampled = builder.new_event()
    presampled.add_field("i", 10)
    presampled.sample_rate = 5
    presampled.add_metadata({"id": 10})
    presampled.send_presampled()
    client.close()
    responses = []
    while True:
        item = client.responses().get(timeout=5)
        if item is None:
            break
        responses.append(item)
    assert sorted(r["metadata"]["id"] for r in responses) == list(range(11))
    assert {r["status_code"] for r in responses} == {202}
    got = {e["data"]["i"]: e for e in receiver.received("plain")}
    assert sorted(got) == list(range(11))
    assert got[3]["data"] == {"service": "legacy", "i": 3, "np": 4.5, "n": 3, "nan": None}
    assert got[10]["samplerate"] == 5 and got[10]["data"]["from"] == "builder"
    assert got[3]["samplerate"] == 1 and got[3]["time"].endswith("Z")
    assert xmit.stats() == {"sent": 11, "rejected": {}, "dropped": {}, "pending": 0}


def test_configuration_from_the_environment(receiver: HoneycombReceiver,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """HONEYCOMB_API_KEY / _DATASET / _API_HOST are read; events go there."""
    monkeypatch.setenv("HONEYCOMB_API_KEY", KEY)
    monkeypatch.setenv("HONEYCOMB_DATASET", "from-env")
    monkeypatch.setenv("HONEYCOMB_API_HOST", receiver.url + "/")
    sink = HoneycombSink(**FAST)  # type: ignore[arg-type]
    assert (sink.dataset, sink.api_host) == ("from-env", receiver.url)
    ledger = ExactLedger()
    sink.bind(ledger)
    export(sink, ledger, make_records(5))
    assert sink.flush(5.0) is True
    assert {e["dataset"] for e in receiver.received()} == {"from-env"}
    sink.close(1.0)


def test_dataset_defaults_to_the_service_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a dataset, OTEL_SERVICE_NAME names it; HONEYCOMB_DATASET wins over it."""
    monkeypatch.delenv("HONEYCOMB_DATASET", raising=False)
    monkeypatch.setenv("OTEL_SERVICE_NAME", "ranker-svc")
    assert HoneycombSink(KEY, api_host="http://127.0.0.1:1").dataset == "ranker-svc"
    monkeypatch.setenv("HONEYCOMB_DATASET", "explicit")
    assert HoneycombSink(KEY, api_host="http://127.0.0.1:1").dataset == "explicit"


@pytest.mark.parametrize(("kwargs", "needle"), [
    ({"api_key": ""}, "HONEYCOMB_API_KEY"),
    ({"api_host": "ftp://example.com"}, "HONEYCOMB_API_HOST"),
    ({"api_host": "https://"}, "HONEYCOMB_API_HOST"),
    ({"compression": "brotli"}, "zstd"),
    ({"max_batch_events": 0}, "max_batch_events"),
    ({"send_interval": math.inf}, "send_interval"),
])
def test_bad_configuration_raises_a_fix_it_error(monkeypatch: pytest.MonkeyPatch,
                                                 kwargs: dict[str, Any], needle: str) -> None:
    """Each bad setting raises ConfigurationError naming what to change."""
    monkeypatch.delenv("HONEYCOMB_API_KEY", raising=False)
    args: dict[str, Any] = {"api_key": KEY, "dataset": "d", **kwargs}
    with pytest.raises(ConfigurationError, match=needle):
        HoneycombSink(**args)


def test_unsendable_records_are_counted_not_lost(receiver: HoneycombReceiver) -> None:
    """libhoney skips empty events: the sink counts them as dropped "unsendable"."""
    sink, ledger = sink_for(receiver)
    records = [Record({}, b"{}")] + make_records(4)
    export(sink, ledger, records)
    assert sink.flush(5.0) is False  # one event dropped since the last flush
    assert (ledger.sent_count, ledger.dropped_by) == (4, {"unsendable": 1})
    sink.close(1.0)


def test_export_after_close_is_dropped_as_shutdown(receiver: HoneycombReceiver) -> None:
    """Records exported after close() are reported dropped "shutdown" at once."""
    sink, ledger = sink_for(receiver)
    assert sink.close(1.0) is True
    export(sink, ledger, make_records(7))
    assert ledger.dropped_by == {"shutdown": 7}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_discards_the_parents_buffer(receiver: HoneycombReceiver) -> None:
    """The child's sink starts empty and reports nothing; the parent delivers once."""
    sink, ledger = sink_for(receiver, send_interval=60.0)
    export(sink, ledger, make_records(10))
    pid = os.fork()
    if pid == 0:
        sink.reset_after_fork()
        ok = sink.pending == 0 and ledger.reported == 0
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert sink.flush(5.0) is True
    assert ids(receiver) == list(range(10)) and ledger.sent_count == 10
    sink.close(1.0)


def test_transmission_response_queue_reports_rejections(receiver: HoneycombReceiver) -> None:
    """With responses on, a 401 puts each event's error on libhoney's response queue."""
    import libhoney

    xmit = HoneycombTransmission(config=SenderConfig(send_interval=0.05), close_timeout=2.0)
    client = libhoney.Client(writekey=WRONG_KEY, dataset="plain", api_host=receiver.url,
                             transmission_impl=xmit)
    for i in range(3):
        ev = client.new_event({"i": i})
        ev.add_metadata(i)
        ev.send_presampled()
    client.close()
    got: list[dict[str, Any]] = []
    try:
        while (item := client.responses().get(timeout=5)) is not None:
            got.append(item)
    except queue.Empty:
        pass
    assert sorted(r["metadata"] for r in got) == [0, 1, 2]
    assert {(r["status_code"], r["error"]) for r in got} == {(401, "401")}


def test_the_sink_sends_what_libhoney_send_presampled_sends(receiver: HoneycombReceiver
                                                            ) -> None:
    """Records sent by the sink arrive as libhoney events with the same fields, rate and time do."""
    import libhoney

    records = make_records(30)
    sink, ledger = sink_for(receiver)
    export(sink, ledger, records)
    client = libhoney.Client(writekey=KEY, dataset="reference", api_host=receiver.url,
                             transmission_impl=HoneycombTransmission())
    for r in records:
        ev = client.new_event(r.fields)
        ev.sample_rate = r.fields.get("samplerate", 1)
        ev.created_at = datetime.datetime.fromisoformat(r.fields["timestamp"])
        ev.send_presampled()
    client.close()
    assert sink.flush(5.0) is True
    ours = sorted(receiver.received("test-ds"), key=lambda e: e["data"]["i"])
    reference = sorted(receiver.received("reference"), key=lambda e: e["data"]["i"])
    assert [e["data"] for e in ours] == [e["data"] for e in reference]
    assert [e["samplerate"] for e in ours] == [e["samplerate"] for e in reference]
    assert [datetime.datetime.fromisoformat(e["time"]) for e in ours] == [
        datetime.datetime.fromisoformat(e["time"]) for e in reference]
    sink.close(1.0)


def test_fields_added_to_the_libhoney_client_are_sent_like_libhoney(
        receiver: HoneycombReceiver) -> None:
    """sink.client.add_field() applies to every event; the pipeline's dicts stay untouched."""
    sink, ledger = sink_for(receiver)
    sink.client.add_field("team", "ml-platform")
    records = make_records(20)
    originals = [dict(r.fields) for r in records]
    export(sink, ledger, records)
    assert sink.flush(5.0) is True
    got = sorted(receiver.received(), key=lambda e: e["data"]["i"])
    assert [e["data"] for e in got] == [dict(o, team="ml-platform") for o in originals]
    assert [e["samplerate"] for e in got] == [o.get("samplerate", 1) for o in originals]
    assert [e["time"] for e in got] == [o["timestamp"] for o in originals]
    assert [r.fields for r in records] == originals
    assert ledger.sent_count == 20
    sink.close(1.0)


def test_wideevents_sink_honeycomb_spec_uses_the_environment(
        receiver: HoneycombReceiver, monkeypatch: pytest.MonkeyPatch) -> None:
    """configure(sinks="honeycomb") builds the sink from HONEYCOMB_*; dataset = service.name."""
    monkeypatch.setenv("HONEYCOMB_API_KEY", KEY)
    monkeypatch.setenv("HONEYCOMB_API_HOST", receiver.url)
    monkeypatch.delenv("HONEYCOMB_DATASET", raising=False)
    wideevents.configure(service_name="ranker", sinks="honeycomb")
    for i in range(50):
        with wideevents.event("predict", i=i):
            pass
    assert wideevents.flush(5.0) is True
    assert wideevents.stats()["sinks"]["honeycomb"]["sent"] == 50
    assert {e["dataset"] for e in receiver.received()} == {"ranker"}
    assert sorted(e["data"]["i"] for e in receiver.received()) == list(range(50))


@pytest.mark.slow
def test_soak_with_mixed_faults_accounts_for_every_event(receiver: HoneycombReceiver) -> None:
    """100,000 events at full speed while faults come and go: every event counted once."""
    import random

    rng = random.Random(7)
    sink = HoneycombSink(KEY, "soak", receiver.url, max_attempts=30, **FAST)
    wideevents.configure(service_name="soak", sinks=[sink], queue_size=200_000)
    faults = ["500", "503", "429", "reset", "malformed", "413", "partial", "slow"]
    for i in range(100_000):
        if i % 5_000 == 0:
            receiver.inject(rng.choice(faults), rng.randint(1, 3))
        with wideevents.event("predict", i=i):
            pass
    assert wideevents.flush(60.0) is True
    stats = wideevents.stats()
    s = stats["sinks"]["honeycomb"]
    assert stats["emitted"] == 100_000 and stats["dropped"] == {}
    # Faster than a faulty Honeycomb drains, the bounded buffer may overflow: counted.
    assert set(s["dropped"]) <= {"buffer_full"} and s["rejected"] == {} and s["pending"] == 0
    assert s["sent"] + sum(s["dropped"].values()) == 100_000
    got = [e["data"]["i"] for e in receiver.received()]
    assert len(got) == len(set(got)) == s["sent"]
