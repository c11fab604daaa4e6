"""Monitoring the SDK itself: the opt-in ``wideevents.stats`` self-report event, and the
settings that guard it and the signal handlers."""

from __future__ import annotations

import datetime
import math
import threading
import time
from typing import Any

import pytest

import wideevents
from tests.support.reliability import wait_until
from wideevents.sinks import MemorySink


def stats_events(sink: MemorySink) -> list[dict[str, Any]]:
    return [e for e in list(sink.events) if e["name"] == "wideevents.stats"]


def test_self_report_carries_the_counters_as_dotted_fields() -> None:
    """Every interval the worker emits wideevents.stats with stats() flattened under stats.*."""
    sink = MemorySink()
    wideevents.configure(service_name="self-report", sinks=[sink], self_report_interval=0.3)
    for i in range(10):
        with wideevents.event("work", i=i):
            pass
    assert wait_until(lambda: len(stats_events(sink)) >= 2, 10)
    first, second = stats_events(sink)[:2]
    # At the first report the 10 events were processed and delivered; the report itself is
    # counted from the next one on.
    assert {k: v for k, v in first.items() if k.startswith("stats.")} == {
        "stats.emitted": 10, "stats.sinks.memory.sent": 10, "stats.sinks.memory.pending": 0,
        "stats.queue.size": 0, "stats.queue.capacity": 10_000, "stats.queue.bytes": 0,
        "stats.queue.max_bytes": 64 * 1024 * 1024, "stats.queue.starved_waits": 0,
        "stats.queue.starved_wait_s": 0.0}
    assert (second["stats.emitted"], second["stats.sinks.memory.sent"]) == (11, 11)
    assert first["service.name"] == "self-report" and first["duration_ms"] == 0.0
    assert len({first["trace.trace_id"], second["trace.trace_id"]}) == 2
    gap = (datetime.datetime.fromisoformat(second["timestamp"])
           - datetime.datetime.fromisoformat(first["timestamp"])).total_seconds()
    assert 0.25 <= gap < 2.0


def test_self_report_shows_losses_by_reason() -> None:
    """Drops appear as stats.dropped.<reason> and stats.sinks.<name>.dropped.<reason>, and the
    flattened counters satisfy the accounting equation."""
    class SlowFirstExport:
        """Blocks the worker in its first export for 0.3 s: the queue of 20 overflows."""

        name = "slow"

        def __init__(self) -> None:
            self.calls = 0
            self.entered = threading.Event()

        def export(self, batch: Any) -> None:
            self.calls += 1
            if self.calls == 1:
                self.entered.set()
                time.sleep(0.3)

    reports, full, slow = MemorySink(), MemorySink(max_events=5), SlowFirstExport()
    wideevents.configure(service_name="self-report", sinks=[reports, full, slow],
                         queue_size=20, self_report_interval=0.3)
    with wideevents.event("work", i=-1):
        pass
    assert slow.entered.wait(10)
    for i in range(50):  # the worker is blocked in a sink, not starved: drops, no wait
        with wideevents.event("work", i=i):
            pass
    assert wait_until(lambda: any(e.get("stats.emitted", 0) >= 51
                                  for e in stats_events(reports)), 10)
    report = next(e for e in stats_events(reports) if e["stats.emitted"] >= 51)
    assert report["stats.dropped.queue_full"] > 0
    assert report["stats.sinks.memory#2.dropped.memory_full"] > 0
    pipeline_dropped = sum(v for k, v in report.items() if k.startswith("stats.dropped."))
    for name in ("memory", "memory#2", "slow"):
        prefix = f"stats.sinks.{name}."
        outcomes = sum(v for k, v in report.items() if k.startswith(prefix) and (
            k.startswith((prefix + "dropped.", prefix + "rejected.")) or
            k in (prefix + "sent", prefix + "pending")))
        assert outcomes + pipeline_dropped == report["stats.emitted"], name


@pytest.mark.parametrize("value", [0, -1, "60", math.inf, math.nan, True])
def test_self_report_interval_is_validated(value: Any) -> None:
    """configure() rejects an interval that is not a positive number of seconds."""
    with pytest.raises(wideevents.ConfigurationError, match="self_report_interval"):
        wideevents.configure(sinks=[MemorySink()], self_report_interval=value)


def test_no_self_report_by_default() -> None:
    """Without self_report_interval no wideevents.stats event is ever emitted."""
    sink = MemorySink()
    wideevents.configure(sinks=[sink])
    with wideevents.event("work"):
        pass
    time.sleep(0.5)  # the worker has woken several times
    assert wideevents.flush(5)
    assert [e["name"] for e in sink.events] == ["work"]


def test_install_signal_handlers_validates_its_arguments() -> None:
    """A negative timeout, or a call from another thread, is a configuration error."""
    with pytest.raises(wideevents.ConfigurationError, match="timeout"):
        wideevents.install_signal_handlers(timeout=-1)
    errors: list[BaseException] = []

    def other_thread() -> None:
        try:
            wideevents.install_signal_handlers()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    t = threading.Thread(target=other_thread)
    t.start()
    t.join()
    assert [type(e) for e in errors] == [wideevents.ConfigurationError]
