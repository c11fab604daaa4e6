"""The pipeline under hostile conditions (issue 16): threads that cannot start, shutdown
deadlines, BaseExceptions, reused sinks, concurrent configure(), byte-bounded queues,
flush() that tells the truth, and loss summaries."""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest

import wideevents
from tests.support.honeycomb_receiver import running as honeycomb_running
from wideevents._core import runtime
from wideevents._core.pipeline import Pipeline
from wideevents._core.service import static_fields
from wideevents.sinks import FileSink, HoneycombSink, MemorySink, Record


def equation(stats: dict[str, Any]) -> dict[str, int]:
    """The accounting equation of docs/reliability.md ("stats()"), per sink: its error."""
    pipeline_dropped = sum(stats["dropped"].values())
    out = {}
    for name, s in stats["sinks"].items():
        total = (s["sent"] + sum(s["rejected"].values()) + sum(s["dropped"].values())
                 + s["pending"] + pipeline_dropped)
        if total != stats["emitted"] or s["pending"] < 0:
            out[name] = total - stats["emitted"]
    return out


class Gate:
    """A sink whose export blocks until the gate opens."""

    name = "gate"

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.count = 0

    def export(self, batch: Sequence[Record]) -> None:
        self.entered.set()
        self.gate.wait(30)
        self.count += len(batch)


@pytest.fixture
def refuse_worker_threads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """threading.Thread.start raises for wideevents' worker, as under a pids limit
    ("RuntimeError: can't start new thread", CPython's _thread.start_new_thread)."""
    refused: list[str] = []
    real_start = threading.Thread.start

    def start(self: threading.Thread) -> None:
        if self.name == "wideevents-worker":
            refused.append(self.name)
            raise RuntimeError("can't start new thread")
        real_start(self)

    monkeypatch.setattr(threading.Thread, "start", start)
    yield refused


def test_a_worker_thread_that_cannot_start_never_reaches_the_caller(
        refuse_worker_threads: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """Events wait in the queue, flush() delivers them on its own thread, the failure is
    counted, and shutdown() has no thread to join (no "cannot join thread" error)."""
    memory = MemorySink()
    wideevents.configure(sinks=[memory])
    for i in range(10):
        with wideevents.event("e", i=i):
            pass
    assert refuse_worker_threads  # the start was really attempted and refused
    assert [] == memory.events
    assert wideevents.flush(5.0) is True
    assert list(range(10)) == [e["i"] for e in memory.events]
    stats = wideevents.stats()
    assert stats["errors"]["thread_start"] >= 1 and {} == equation(stats)
    assert wideevents.shutdown(5.0) is True
    assert "cannot join" not in capsys.readouterr().err


def test_the_worker_start_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    """Once threads can start again, the next event after the retry delay starts the worker."""
    refused: list[int] = []
    real_start = threading.Thread.start

    def start(self: threading.Thread) -> None:
        if self.name == "wideevents-worker" and not refused:
            refused.append(1)
            raise RuntimeError("can't start new thread")
        real_start(self)

    monkeypatch.setattr(threading.Thread, "start", start)
    memory = MemorySink()
    wideevents.configure(sinks=[memory])
    with wideevents.event("first"):
        pass
    time.sleep(1.1)  # the retry delay (_THREAD_RETRY_S)
    with wideevents.event("second"):
        pass
    deadline = time.monotonic() + 10
    while len(memory.events) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)  # delivered by the worker, without any flush()
    assert ["first", "second"] == [e["name"] for e in memory.events]


def test_shutdown_timeout_mid_batch_keeps_the_equation_and_stops_processing() -> None:
    """A shutdown deadline that passes mid-batch counts the rest once (pending never
    negative), and no processor runs after shutdown() returned."""
    calls: list[float] = []

    def slow(ev: dict[str, Any]) -> dict[str, Any]:
        calls.append(time.monotonic())
        time.sleep(0.005)
        return ev

    wideevents.configure(sinks=[MemorySink()], processors=[slow])
    for i in range(600):
        with wideevents.event("e", i=i):
            pass
    assert wideevents.shutdown(timeout=0.3) is False
    returned = time.monotonic()
    stats = wideevents.stats()
    assert {} == equation(stats)
    assert 0 == stats["sinks"]["memory"]["pending"]
    assert stats["dropped"]["shutdown"] > 0
    time.sleep(0.3)
    assert [] == [t for t in calls if t > returned + 0.05]  # a call in progress may end
    assert {} == equation(wideevents.stats())


class Exiting(BaseException):
    """Stands for gevent's GreenletExit or a framework's cancellation: not an Exception."""


@pytest.mark.parametrize("exc", [SystemExit(3), Exiting(), KeyboardInterrupt()])
def test_base_exceptions_in_processor_sampler_and_sink_never_kill_the_worker(
        exc: BaseException) -> None:
    """Each is contained and counted, and later events are still delivered."""
    state = {"processor": 0, "sampler": 0}

    def processor(ev: dict[str, Any]) -> dict[str, Any]:
        state["processor"] += 1
        if state["processor"] == 1:
            raise exc
        return ev

    def sampler(ev: dict[str, Any]) -> int:
        state["sampler"] += 1
        if state["sampler"] == 2:
            raise exc
        return 1

    class Raising:
        name = "raising"
        calls = 0

        def export(self, batch: Sequence[Record]) -> None:
            Raising.calls += 1
            if Raising.calls == 1:
                raise exc

    memory = MemorySink()
    wideevents.configure(sinks=[Raising(), memory], processors=[processor], sampler=sampler)
    for batch in range(3):
        with wideevents.event("e", batch=batch):
            pass
        assert wideevents.flush(5.0) is (batch != 0)  # the first batch lost one in "raising"
    stats = wideevents.stats()
    assert [0, 1, 2] == [e["batch"] for e in memory.events]
    assert {"processor_error": 1, "sampler_error": 1} == stats["errors"]
    assert {"export_error": 1} == stats["sinks"]["raising"]["dropped"]
    assert {} == equation(stats)


def test_the_same_sink_in_two_configure_calls_keeps_working(tmp_path: Path) -> None:
    """A FileSink passed to configure() again is flushed, not closed: all lines arrive."""
    path = tmp_path / "events.jsonl"
    sink = FileSink(path)
    wideevents.configure(sinks=[sink])
    for i in range(5):
        with wideevents.event("before", i=i):
            pass
    wideevents.configure(sinks=[sink], static_fields={"phase": 2})
    for i in range(5):
        with wideevents.event("after", i=i):
            pass
    assert wideevents.flush(5.0) is True
    lines = path.read_text().splitlines()
    assert 10 == len(lines)
    stats = wideevents.stats()
    assert {"sent": 5, "rejected": {}, "dropped": {}, "pending": 0} == stats["sinks"]["file"]


def test_a_sink_listed_twice_is_a_configuration_error() -> None:
    """sinks=[s, s] would deliver every event twice: configure() says so."""
    sink = MemorySink()
    with pytest.raises(wideevents.ConfigurationError, match="listed twice"):
        wideevents.configure(sinks=[sink, sink])


def test_a_reused_network_sink_counts_each_event_in_one_pipeline_once() -> None:
    """A HoneycombSink kept across configure(): every event arrives, both ledgers exact."""
    with honeycomb_running() as rx:
        sink = HoneycombSink(rx.api_key, "ds", rx.url, send_interval=0.01)
        first = wideevents.configure(sinks=[sink])
        for i in range(300):
            with wideevents.event("e", i=i):
                pass
        second = wideevents.configure(sinks=[sink])
        for i in range(300, 600):
            with wideevents.event("e", i=i):
                pass
        assert wideevents.flush(10.0) is True
        assert list(range(600)) == sorted(e["data"]["i"] for e in rx.received())
        for pipeline in (first, second):
            stats = pipeline.stats()
            assert {} == equation(stats)
            assert 300 == stats["sinks"]["honeycomb"]["sent"]


def test_an_event_open_across_configure_is_delivered_by_the_new_pipeline() -> None:
    """The old pipeline is gone when the event finishes: the new one delivers and counts it."""
    old, new = MemorySink(), MemorySink()
    wideevents.configure(sinks=[old])
    with wideevents.event("across"):
        wideevents.configure(sinks=[new])
    assert wideevents.flush(5.0) is True
    assert ([], ["across"]) == ([e["name"] for e in old.events], [e["name"] for e in new.events])
    assert 1 == wideevents.stats()["emitted"]


def test_concurrent_configure_never_orphans_a_pipeline() -> None:
    """Threads configuring and emitting at once: one pipeline survives, every event arrives."""
    sinks: list[MemorySink] = []
    pipelines: list[Pipeline] = []
    lock = threading.Lock()
    per_thread, threads = 300, 6
    start = threading.Barrier(threads)

    def work(t: int) -> None:
        start.wait()
        for i in range(per_thread):
            if i % 100 == 0:
                sink = MemorySink()
                pipeline = wideevents.configure(sinks=[sink])
                with lock:
                    sinks.append(sink)
                    pipelines.append(pipeline)
            with wideevents.event("e", t=t, i=i):
                pass

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert wideevents.flush(10.0) is True
    current = runtime.current()
    assert [p for p in pipelines if not p.closed] == [current]
    delivered = sorted((e["t"], e["i"]) for s in sinks for e in s.events)
    assert [(t, i) for t in range(threads) for i in range(per_thread)] == delivered


def test_flush_and_shutdown_say_false_when_events_were_lost(
        caplog: pytest.LogCaptureFixture) -> None:
    """flush() is False after a loss (once), True after a clean period; sampling is not a
    loss; shutdown() logs one summary line with the losses by reason."""
    gate = Gate()
    wideevents.configure(sinks=[gate], queue_size=10,
                         sampler=lambda ev: 0 if ev.get("skip") else 1)
    with wideevents.event("first"):
        pass
    assert gate.entered.wait(10)
    for i in range(30):  # the worker is blocked in the gate: the queue of 10 overflows
        with wideevents.event("e", i=i):
            pass
    gate.gate.set()
    assert wideevents.flush(10.0) is False
    assert wideevents.flush(10.0) is True
    with wideevents.event("sampled away", skip=True):
        pass
    assert wideevents.flush(10.0) is True
    lost = wideevents.stats()["dropped"]["queue_full"]
    with caplog.at_level(logging.WARNING, logger="wideevents"):
        assert wideevents.shutdown(5.0) is True  # nothing lost since the last flush()
    lines = [r.getMessage() for r in caplog.records if "events lost" in r.getMessage()]
    assert 1 == len(lines)
    assert f"dropped queue_full {lost:,}" in lines[0] and "sampled" not in lines[0]


def test_loss_summaries_repeat_while_losses_continue(caplog: pytest.LogCaptureFixture) -> None:
    """One line per interval while events keep being lost, each with the running total."""

    class Broken:
        name = "broken"

        def export(self, batch: Sequence[Record]) -> None:
            raise OSError("disk on fire")

    pipeline = Pipeline(sinks=[Broken()], static_fields=lambda: static_fields("svc"),
                        loss_report_interval=0.2)
    runtime.install(pipeline)
    with caplog.at_level(logging.WARNING, logger="wideevents"):
        for round_ in range(3):
            with wideevents.event("e", round=round_):
                pass
            assert pipeline.flush(5.0) is False
            time.sleep(0.5)
    lines = [r.getMessage() for r in caplog.records if "events lost in the last" in r.getMessage()]
    assert len(lines) >= 2
    assert "sink broken: dropped export_error 1" in lines[0]
    assert "3 lost of 3 emitted" in lines[-1] or "2 lost of 2 emitted" in lines[-1]


def test_the_queue_is_bounded_in_bytes() -> None:
    """Events holding 1 MB arrays behind a blocked sink: the queue keeps to its byte bound
    (RSS grows by far less than the 200 MB they would hold), drops are counted."""
    gate = Gate()
    wideevents.configure(sinks=[gate], queue_bytes=16 * 1024 * 1024)
    with wideevents.event("first"):
        pass
    assert gate.entered.wait(10)
    gc.collect()
    before = psutil.Process().memory_info().rss
    array = np.ones(128 * 1024)  # 1 MiB, copied into each event when added
    for _ in range(200):
        with wideevents.event("big") as ev:
            ev["vector"] = array
    grown = psutil.Process().memory_info().rss - before
    stats = wideevents.stats()
    gate.gate.set()
    assert stats["queue"]["bytes"] <= stats["queue"]["max_bytes"] == 16 * 1024 * 1024
    assert stats["dropped"]["queue_full"] >= 150
    assert grown < 80 * 1024 * 1024
    assert {} == equation(stats)


def test_a_starved_worker_loses_nothing() -> None:
    """A CPU-bound loop that never waits on I/O, and a worker whose processor costs ten
    times what an event costs to emit: with the defaults, nothing is lost."""

    def costly(ev: dict[str, Any]) -> dict[str, Any]:
        total = 0
        for i in range(2_000):  # ~50-100 µs of pure Python: the worker is the slow side
            total += i
        ev["work"] = total
        return ev

    memory = MemorySink()
    wideevents.configure(sinks=[memory], processors=[costly])
    longest = 0.0
    for i in range(30_000):
        ev = wideevents.event("e", i=i)
        with ev:
            pass
    assert wideevents.flush(60.0) is True
    stats = wideevents.stats()
    assert {} == stats["dropped"] and 30_000 == len(memory.events)
    assert {} == equation(stats)
    assert stats["queue"]["starved_waits"] > 0  # the worker really was starved
    del longest


def test_a_blocked_worker_drops_and_counts_without_holding_the_caller() -> None:
    """A sink that sleeps: the emitting thread does not wait for it (at most a few bounded
    waits while the worker is told apart from a starved one); drops are counted."""

    class Sleepy:
        name = "sleepy"
        calls = 0

        def export(self, batch: Sequence[Record]) -> None:
            Sleepy.calls += 1
            time.sleep(0.5)

    wideevents.configure(sinks=[Sleepy()], queue_size=1_000)
    waits = []
    t_start = time.monotonic()
    for i in range(20_000):
        ev = wideevents.event("e", i=i)
        ev.__enter__()
        t0 = time.perf_counter()
        ev.__exit__(None, None, None)
        waits.append(time.perf_counter() - t0)
    elapsed = time.monotonic() - t_start
    stats = wideevents.stats()
    assert stats["dropped"]["queue_full"] > 10_000
    assert {} == equation(stats)
    # Each time the sink blocks again (one export of 0.5 s), the waits that tell "blocked"
    # from "starved" apart: each lasts 10 ms (longer on a loaded machine, never shorter:
    # the blocked worker notifies nobody) until the export has lasted 50 ms, so at most 5.
    assert stats["queue"]["starved_waits"] <= 5 * (Sleepy.calls + 1)
    assert max(waits) < 1.0  # sanity bound on a busy machine; the wait itself is 10 ms
    assert elapsed < 30
