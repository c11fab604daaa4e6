"""The pipeline: exact accounting, bounded queue, deadlines, processors, sampler, redaction."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import orjson
import pytest

import wideevents
from wideevents.sinks import MemorySink, Record


class GateSink:
    """A synchronous sink whose export blocks until the test opens the gate."""

    name = "gate"

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.exported: list[dict[str, Any]] = []

    def export(self, batch: Sequence[Record]) -> None:
        self.entered.set()
        self.gate.wait()
        self.exported.extend(r.fields for r in batch)


def _check_equation(stats: dict[str, Any]) -> None:
    pipeline_dropped = sum(stats["dropped"].values())
    for name, s in stats["sinks"].items():
        total = (s["sent"] + sum(s["rejected"].values()) + sum(s["dropped"].values())
                 + s["pending"] + pipeline_dropped)
        assert total == stats["emitted"], (name, stats)


def test_stats_equation_exact_with_a_blocked_sink() -> None:
    """With a blocked sink, every event is pending or dropped; the equation holds throughout."""
    gate = GateSink()
    memory = MemorySink()
    wideevents.configure(sinks=[gate, memory], queue_size=100)
    with wideevents.event("first"):
        pass
    assert wideevents.flush(0.5) is False  # the gate is closed: not delivered
    assert gate.entered.wait(5.0)
    for i in range(300):
        with wideevents.event("e", i=i):
            pass
        if i % 50 == 0:
            _check_equation(wideevents.stats())
    stats = wideevents.stats()
    _check_equation(stats)
    assert stats["emitted"] == 301
    assert stats["dropped"] == {"queue_full": 200}  # 100 fit in the queue
    assert stats["sinks"]["gate"]["pending"] == 101  # 1 in the blocked export + 100 queued
    gate.gate.set()
    # Everything left is delivered, but 200 were lost since the last flush(): False, once
    # (docs/reliability.md, "Guarantees": flush() is True only when nothing was lost).
    assert wideevents.flush(5.0) is False
    assert wideevents.flush(5.0) is True
    stats = wideevents.stats()
    _check_equation(stats)
    assert stats["sinks"]["gate"] == {"sent": 101, "rejected": {}, "dropped": {}, "pending": 0}
    assert stats["sinks"]["memory"]["sent"] == 101
    assert len(gate.exported) == 101 and len(memory.events) == 101


def test_finish_never_waits_for_a_busy_worker() -> None:
    """Handing the GIL to the worker (every 256th event) never waits for a drain to end:
    with the worker stuck in a sink, 3,000 more events each finish promptly."""
    gate = GateSink()
    wideevents.configure(sinks=[gate], queue_size=5_000)
    with wideevents.event("first"):
        pass
    wideevents.flush(0.3)  # wakes the worker, which enters the blocked export
    assert gate.entered.wait(5.0)
    slowest = 0.0
    for i in range(3_000):
        ev = wideevents.event("e", i=i)
        t0 = time.perf_counter()
        ev.finish()
        slowest = max(slowest, time.perf_counter() - t0)
    assert slowest < 0.05, slowest  # generous: a hand-over waits 2 ms at most
    gate.gate.set()
    assert wideevents.flush(10.0) is True
    assert wideevents.stats()["sinks"]["gate"]["sent"] == 3_001


def test_shutdown_honours_timeout_with_a_hanging_sink() -> None:
    """shutdown(timeout) returns in time when a sink hangs, counting the loss as shutdown."""
    gate = GateSink()
    wideevents.configure(sinks=[gate])
    for i in range(10):
        with wideevents.event("e", i=i):
            pass
    assert gate.entered.wait(5.0) or True
    t0 = time.monotonic()
    ok = wideevents.shutdown(timeout=1.0)
    elapsed = time.monotonic() - t0
    assert ok is False
    assert elapsed < 2.5
    stats = wideevents.stats()
    _check_equation(stats)
    lost = stats["sinks"]["gate"]["dropped"].get("shutdown", 0) + stats["dropped"].get(
        "shutdown", 0)
    assert lost == 10
    with wideevents.event("after"):
        pass
    assert wideevents.stats()["dropped"]["shutdown"] >= 1
    gate.gate.set()


def test_enqueue_timeout_waits_for_room() -> None:
    """With enqueue_timeout > 0 a full queue waits for the worker instead of dropping."""
    memory = MemorySink()
    wideevents.configure(sinks=[memory], queue_size=2, enqueue_timeout=5.0)
    for i in range(200):
        with wideevents.event("e", i=i):
            pass
    assert wideevents.flush(5.0)
    assert wideevents.stats()["dropped"] == {}
    assert sorted(e["i"] for e in memory.events) == list(range(200))


def test_processors_run_in_order_and_may_drop() -> None:
    """Processors see the normalised event, run in order, and None drops (counted)."""
    seen: list[Any] = []

    def tag(e: dict[str, Any]) -> dict[str, Any]:
        seen.append(e["x"])
        e["tagged"] = True
        return e

    def drop_odd(e: dict[str, Any]) -> dict[str, Any] | None:
        return None if e["i"] % 2 else e

    def broken(e: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("processor bug")

    memory = MemorySink()
    wideevents.configure(sinks=[memory], processors=[tag, broken, drop_odd])
    import numpy as np

    for i in range(4):
        with wideevents.event("e", i=i, x=np.float32(1.5)):
            pass
    assert wideevents.flush(5.0)
    assert [e["i"] for e in memory.events] == [0, 2]
    assert all(e["tagged"] for e in memory.events)
    assert seen == [1.5] * 4 and all(type(v) is float for v in seen)
    stats = wideevents.stats()
    assert stats["dropped"] == {"processor": 2}
    assert stats["errors"] == {"processor_error": 4}
    _check_equation(stats)


def test_sampler_hook_sets_and_multiplies_samplerate() -> None:
    """A sampler's N >= 1 keeps with samplerate N (multiplied into an existing one); 0 drops."""

    def sampler(e: dict[str, Any]) -> int:
        return {0: 0, 1: 1, 2: 5, 3: 4}[e["i"]]

    memory = MemorySink()
    wideevents.configure(sinks=[memory], sampler=sampler)
    for i in range(4):
        with wideevents.event("e", i=i) as ev:
            if i == 3:
                ev["samplerate"] = 10
    assert wideevents.flush(5.0)
    assert [(e["i"], e["samplerate"]) for e in memory.events] == [(1, 1), (2, 5), (3, 40)]
    stats = wideevents.stats()
    assert stats["dropped"] == {"sampled": 1}
    _check_equation(stats)


def test_sampled_events_json_is_their_fields() -> None:
    """With a sampler, each record's JSON (what the file, stdout and Honeycomb sinks send)
    says exactly what its fields say, samplerate included, whether it was set or not."""
    records: list[Record] = []

    class Keep:
        def export(self, batch: Sequence[Record]) -> None:
            records.extend(batch)

    wideevents.configure(sinks=[Keep()], sampler=lambda e: 3)
    for i in range(4):
        with wideevents.event("e", i=i, score=i / 3) as ev:
            if i % 2:
                ev["samplerate"] = 7
    assert wideevents.flush(5.0)
    assert [r.fields["samplerate"] for r in records] == [3, 21, 3, 21]
    for r in records:
        assert orjson.loads(r.json) == r.fields


def test_raising_sampler_keeps_the_event() -> None:
    """A sampler that raises keeps the event (rate 1) and counts the error."""

    def sampler(e: dict[str, Any]) -> int:
        raise ZeroDivisionError

    memory = MemorySink()
    wideevents.configure(sinks=[memory], sampler=sampler)
    with wideevents.event("e"):
        pass
    assert wideevents.flush(5.0)
    assert memory.events[0]["samplerate"] == 1
    assert wideevents.stats()["errors"] == {"sampler_error": 1}


@pytest.mark.parametrize("key", [
    "authorization", "http.request.header.Authorization", "Cookie", "set-cookie", "password",
    "db.passwd", "client_secret.secret", "API_KEY", "apikey", "oauth.access_token",
    "refresh_token", "tls.private_key", "http.request.header.x-honeycomb-team",
    "http.request.header.X-Api-Key", "http.request.header.proxy-authorization",
    "oauth.client_secret", "oidc.id_token",
])
def test_default_redaction(key: str) -> None:
    """Default names are redacted by the last dotted segment, any case."""
    memory = MemorySink()
    wideevents.configure(sinks=[memory])
    with wideevents.event("e") as ev:
        ev.add({key: "s3cr3t-value"})
    assert wideevents.flush(5.0)
    assert memory.events[0][key] == "[REDACTED]"
    assert b"s3cr3t-value" not in memory.lines[0]


def test_redaction_spares_lookalikes_and_accepts_globs() -> None:
    """user_session_id and input_tokens survive; extra names and globs are honoured."""
    memory = MemorySink()
    wideevents.configure(sinks=[memory], redact=["*_token_hash", "ssn"])
    with wideevents.event("e") as ev:
        ev.add({"user_session_id": "u1", "input_tokens": 12, "password_hint_shown": True,
                "user.ssn": "123", "a.refresh_token_hash": "h", "secretary": "pam"})
    assert wideevents.flush(5.0)
    e = memory.events[0]
    assert (e["user_session_id"], e["input_tokens"], e["password_hint_shown"], e["secretary"]) \
        == ("u1", 12, True, "pam")
    assert (e["user.ssn"], e["a.refresh_token_hash"]) == ("[REDACTED]", "[REDACTED]")


def test_static_fields_and_service_name_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """service.name comes from OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES; static fields added."""
    import os
    import socket

    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES",
                       "service.name=from-attrs,service.version=1.2.3,"
                       "deployment.environment.name=prod")
    memory = MemorySink()
    wideevents.configure(sinks=[memory], static_fields={"team": "search"})
    with wideevents.event("e"):
        pass
    monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
    wideevents.configure(sinks=[memory])
    with wideevents.event("e"):
        pass
    wideevents.configure(service_name="explicit", sinks=[memory])
    with wideevents.event("e"):
        pass
    assert wideevents.flush(5.0)
    first = memory.events[0]
    assert (first["service.name"], first["service.version"], first["deployment.environment.name"],
            first["team"], first["host.name"], first["process.pid"]) == (
        "from-attrs", "1.2.3", "prod", "search", socket.gethostname(), os.getpid())
    assert [e["service.name"] for e in memory.events] == ["from-attrs", "from-env", "explicit"]


def test_unknown_service_name_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without any setting, service.name is unknown_service:<process name>."""
    import os
    import sys

    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    memory = MemorySink()
    wideevents.configure(sinks=[memory])
    with wideevents.event("e"):
        pass
    assert wideevents.flush(5.0)
    assert memory.events[0]["service.name"] == f"unknown_service:{os.path.basename(sys.executable)}"


@pytest.mark.parametrize("kwargs, message", [
    ({"sinks": ["kafka"]}, "unknown sink 'kafka'"),
    ({"sinks": ["file:"]}, "has no path"),
    ({"sinks": [object()]}, "is not a sink"),
    ({"queue_size": -1}, "queue_size=-1"),
    ({"queue_size": 0}, "positive integer"),
    ({"enqueue_timeout": -0.5}, "enqueue_timeout=-0.5"),
    ({"sampler": 10}, "sampler=10 is not callable"),
    ({"processors": ["upper"]}, "is not callable"),
    ({"sinks": ["file:/nonexistent-dir/x/events.jsonl"]}, "cannot open"),
    ({"service_name": ""}, "non-empty string"),
])
def test_configure_rejects_bad_settings(kwargs: dict[str, Any], message: str) -> None:
    """configure() fails early with a ConfigurationError that says what to fix."""
    with pytest.raises(wideevents.ConfigurationError) as caught:
        wideevents.configure(**kwargs)
    assert message in str(caught.value)


def test_configure_validates_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad WIDEEVENTS_SINK or OTEL_RESOURCE_ATTRIBUTES fails configure() loudly."""
    monkeypatch.setenv("WIDEEVENTS_SINK", "carrier-pigeon")
    with pytest.raises(wideevents.ConfigurationError, match="unknown sink 'carrier-pigeon'"):
        wideevents.configure()
    monkeypatch.setenv("WIDEEVENTS_SINK", "none")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name")
    with pytest.raises(wideevents.ConfigurationError, match="OTEL_RESOURCE_ATTRIBUTES"):
        wideevents.configure()


def test_failing_sink_is_contained_and_counted() -> None:
    """A sink whose export raises never reaches the caller; its loss is counted."""

    class Broken:
        name = "broken"

        def export(self, batch: Sequence[Record]) -> None:
            raise OSError("disk on fire")

    memory = MemorySink()
    wideevents.configure(sinks=[Broken(), memory])
    for i in range(5):
        with wideevents.event("e", i=i):
            pass
    assert wideevents.flush(5.0) is False  # 5 lost in "broken" (docs/reliability.md)
    stats = wideevents.stats()
    assert stats["sinks"]["broken"]["dropped"] == {"export_error": 5}
    assert stats["sinks"]["memory"]["sent"] == 5
    _check_equation(stats)


def test_events_are_processed_off_the_request_thread() -> None:
    """Normalisation, processors and sinks run on the worker thread, not the caller's."""
    threads: set[str] = set()

    def record_thread(e: dict[str, Any]) -> dict[str, Any]:
        threads.add(threading.current_thread().name)
        return e

    wideevents.configure(sinks=[MemorySink()], processors=[record_thread])
    with wideevents.event("e"):
        pass
    assert wideevents.flush(5.0)
    assert threads == {"wideevents-worker"}


def test_predictions_are_cached_for_feedback_on_the_worker_even_when_sampled_away() -> None:
    """The worker caches predictions before sampling: feedback for a dropped one still matches."""

    def drop_predictions(e: dict[str, Any]) -> int:
        return 0 if e["name"] == "predict" else 1

    memory = MemorySink()
    wideevents.configure(sinks=[memory], sampler=drop_predictions)
    with wideevents.event("predict") as ev:
        ev.add({"model.version": "v7", "slice.tenant": "acme"})
        pid = ev.prediction_id
    assert wideevents.flush(5.0)
    wideevents.feedback(pid, label="click")
    assert wideevents.flush(5.0)
    assert [e["name"] for e in memory.events] == ["feedback"]
    fb = memory.events[0]
    assert (fb["feedback.matched"], fb["model.version"], fb["slice.tenant"]) == (True, "v7", "acme")
