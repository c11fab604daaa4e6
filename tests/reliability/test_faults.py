"""Faults between the SDK and its backends: the service keeps serving, losses are counted
by reason, delivery resumes, and the accounting equation holds exactly throughout.

Delivery is at-least-once within the retry window: a batch the receiver accepted but whose
reply never arrived intact is sent again, so the receivers may hold duplicates. The tests
check every event id arrived (or was counted as dropped) and that duplicates are exactly
the events of accepted-but-unacknowledged batches where the receiver can tell.
"""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import wideevents
from tests.support.otlp_receiver import OTLPReceiver
from tests.support.reliability import (
    FaultyReceiver,
    child_env,
    equation_holds,
    group,
    python,
    read_journal,
    read_port,
    record_figure,
    spawn,
    stop_group,
)
from wideevents._core import log as _log
from wideevents.sinks import FileSink, HoneycombSink, MemorySink, OTLPSink

KEY = "faults-test-key-93c1"
# Backoff capped at 2 s: 8 attempts then span at least 3.5 s (half of 0.1+0.2+...+2+2, the
# jitter's floor), more than the outages below, and a recovered receiver is retried soon.
FAST_RETRY = {"compression": "gzip", "send_interval": 0.05, "backoff_max": 2.0}


def emit_paced(n: int, rate: float, prefix: str,
               at: dict[int, Callable[[], object]] | None = None) -> float:
    """Emit ``n`` events at ``rate`` per second (running ``at[i]`` before event ``i``);
    return the longest ``finish()`` in seconds."""
    at = at or {}
    start = time.monotonic()
    longest = 0
    for i in range(n):
        if i in at:
            at[i]()
        due = start + i / rate
        pause = due - time.monotonic()
        if pause > 0.002:
            time.sleep(pause)
        ev = wideevents.event("fault-work", i=i)
        with ev:
            ev.add({"request.id": f"{prefix}-{i}", "payload.text": "x" * 64})
            t0 = time.perf_counter_ns()
            ev.finish()
            longest = max(longest, time.perf_counter_ns() - t0)
    return longest / 1e9


def delivered(stats: dict[str, Any], sink: str) -> tuple[int, dict[str, int]]:
    s = stats["sinks"][sink]
    return s["sent"], {**s["dropped"], **{f"rejected:{k}": v for k, v in s["rejected"].items()}}


def test_receiver_killed_and_restarted_mid_stream(tmp_path: Path) -> None:
    """SIGKILL the receiver process mid-stream, restart it 0.8 s later: every event arrives."""
    journal = tmp_path / "journal.txt"
    cmd = python("journal_receiver", "--key", KEY, "--journal", str(journal))
    with contextlib.ExitStack() as stack:
        first = stack.enter_context(group(cmd, env=child_env()))
        port = read_port(first)
        restarted: list[subprocess.Popen[bytes]] = []

        def restart() -> None:
            proc = spawn([*cmd, "--port", str(port)], env=child_env())
            stack.callback(stop_group, proc)
            read_port(proc)
            restarted.append(proc)

        wideevents.configure(service_name="faults", sinks=[HoneycombSink(
            api_key=KEY, dataset="faults", api_host=f"http://127.0.0.1:{port}", **FAST_RETRY)])
        longest = emit_paced(3000, 1000, "kill", at={1000: lambda: stop_group(first),
                                                     1800: restart})
        assert wideevents.flush(30)
        stats = wideevents.stats()
    ids = read_journal(journal)
    assert equation_holds(stats) == {}
    assert delivered(stats, "honeycomb") == (3000, {})
    assert set(ids) == {f"kill-{i}" for i in range(3000)}
    scenario = "receiver SIGKILLed, restarted after 0.8 s"
    record_figure(scenario, "emitted / delivered (unique)", f"3000 / {len(set(ids))}")
    record_figure(scenario, "duplicates (reply lost in the kill)", len(ids) - len(set(ids)))
    record_figure(scenario, "longest finish()", f"{longest * 1000:.2f} ms")


def test_otlp_receiver_stopped_and_started_mid_stream() -> None:
    """The OTLP loopback receiver goes away for 0.8 s: every record arrives once it is back."""
    receiver = OTLPReceiver().start()
    try:
        port = receiver.port
        wideevents.configure(service_name="faults-otlp", sinks=[OTLPSink(
            f"http://127.0.0.1:{port}", **FAST_RETRY)])
        longest = emit_paced(3000, 1000, "otlp", at={1000: receiver.stop,
                                                     1800: lambda: receiver.start(port)})
        assert wideevents.flush(30)
        stats = wideevents.stats()
        ids = Counter(str(r.attributes.get("request.id")) for r in receiver.received())
    finally:
        receiver.stop()
    assert equation_holds(stats) == {}
    assert delivered(stats, "otlp") == (3000, {})
    assert set(ids) == {f"otlp-{i}" for i in range(3000)}
    record_figure("OTLP receiver stopped for 0.8 s", "emitted / delivered (unique) / duplicates",
                  f"3000 / {len(ids)} / {sum(ids.values()) - len(ids)}")
    record_figure("OTLP receiver stopped for 0.8 s", "longest finish()", f"{longest * 1000:.2f} ms")


def test_refused_connections_for_two_seconds_lose_nothing() -> None:
    """Connections refused for 2 s: the buffer holds the backlog and everything arrives."""
    with FaultyReceiver(api_key=KEY) as receiver:
        wideevents.configure(service_name="faults", sinks=[HoneycombSink(
            api_key=KEY, dataset="faults", api_host=receiver.url, **FAST_RETRY)])
        longest = emit_paced(3000, 1000, "refuse", at={500: lambda: receiver.refuse_for(2.0)})
        assert wideevents.flush(30)
        stats = wideevents.stats()
        ids = Counter(str(e["data"]["request.id"]) for e in receiver.received())
    assert equation_holds(stats) == {}
    assert delivered(stats, "honeycomb") == (3000, {})
    assert set(ids) == {f"refuse-{i}" for i in range(3000)}
    record_figure("connections refused for 2 s", "emitted / delivered (unique) / duplicates",
                  f"3000 / {len(ids)} / {sum(ids.values()) - len(ids)}")
    record_figure("connections refused for 2 s", "longest finish()", f"{longest * 1000:.2f} ms")


@pytest.mark.slow
def test_refused_connections_for_ten_seconds_counts_losses_and_resumes() -> None:
    """Refused for 10 s with default retries: losses counted by reason; delivery resumes after."""
    n, rate = 16_000, 1000
    with FaultyReceiver(api_key=KEY) as receiver:
        wideevents.configure(service_name="faults", sinks=[HoneycombSink(
            api_key=KEY, dataset="faults", api_host=receiver.url, compression="gzip")])
        longest = emit_paced(n, rate, "outage", at={2000: lambda: receiver.refuse_for(10.0)})
        flushed = wideevents.flush(60)
        stats = wideevents.stats()
        ids = Counter(str(e["data"]["request.id"]) for e in receiver.received())
    sent, lost = delivered(stats, "honeycomb")
    assert flushed is (not lost)  # True only when nothing was lost (docs/reliability.md)
    assert equation_holds(stats) == {}
    assert stats["sinks"]["honeycomb"]["pending"] == 0
    assert sent == len(ids)  # each delivered event counted once, duplicates or not
    assert sent + sum(lost.values()) == n
    assert set(lost) <= {"retries_exhausted", "buffer_full"}
    # Everything emitted once the receiver was back (12 s in) arrived.
    assert {f"outage-{i}" for i in range(12 * rate + 500, n)} <= set(ids)
    scenario = "connections refused for 10 s (default retries)"
    record_figure(scenario, "emitted / delivered (unique)", f"{n} / {len(ids)}")
    record_figure(scenario, "dropped by reason", lost or "none")
    record_figure(scenario, "duplicates", sum(ids.values()) - len(ids))
    record_figure(scenario, "longest finish()", f"{longest * 1000:.2f} ms")


def test_truncated_and_malformed_replies() -> None:
    """Cut, garbled and unreadable replies: every event arrives; duplicates are exactly the
    events of accepted batches whose reply was lost."""
    with FaultyReceiver(api_key=KEY) as receiver:
        for fault in ("truncate", "badstatus", "cut-json"):
            receiver.inject_reply_fault(fault, times=2)
        for fault in ("malformed", "reset", "500"):
            receiver.inject(fault, times=2)
        wideevents.configure(service_name="faults", sinks=[HoneycombSink(
            api_key=KEY, dataset="faults", api_host=receiver.url, **FAST_RETRY)])
        longest = emit_paced(4000, 2000, "reply")
        assert wideevents.flush(30)
        stats = wideevents.stats()
        ids = Counter(str(e["data"]["request.id"]) for e in receiver.received())
        applied = dict(receiver.reply_faults_applied)
        unacknowledged = receiver.accepted_unacknowledged
        faulted = Counter(r.fault for r in receiver.requests)
    assert applied == {"truncate": 2, "badstatus": 2, "cut-json": 2}
    assert faulted["malformed"] == 2  # "reset" and "500" requests are never recorded as accepted
    assert equation_holds(stats) == {}
    assert delivered(stats, "honeycomb") == (4000, {})
    assert set(ids) == {f"reply-{i}" for i in range(4000)}
    assert sum(ids.values()) - len(ids) == unacknowledged
    record_figure("truncated / malformed replies", "duplicates == unacknowledged events",
                  f"{sum(ids.values()) - len(ids)} == {unacknowledged}")
    record_figure("truncated / malformed replies", "longest finish()", f"{longest * 1000:.2f} ms")


def test_file_sink_on_a_full_disk_keeps_serving(caplog: pytest.LogCaptureFixture) -> None:
    """/dev/full: every line is counted as a write error, once logged; other sinks unaffected."""
    _log.reset()
    memory = MemorySink()
    wideevents.configure(service_name="faults", sinks=[FileSink("/dev/full"), memory])
    with caplog.at_level(logging.WARNING, logger="wideevents"):
        longest = emit_paced(1000, 20_000, "full")
        assert wideevents.flush(10) is False  # everything processed, but the file lost all
    stats = wideevents.stats()
    assert equation_holds(stats) == {}
    assert delivered(stats, "file") == (0, {"write_error": 1000})
    assert delivered(stats, "memory") == (1000, {})
    assert [r.getMessage().split(" (")[0] for r in caplog.records if r.name == "wideevents"] == [
        "wideevents: FileSink could not write to /dev/full"]
    record_figure("FileSink on /dev/full", "emitted / written / write_error", "1000 / 0 / 1000")
    record_figure("FileSink on /dev/full", "longest finish()", f"{longest * 1000:.2f} ms")


FSIZE_SCRIPT = """
import json, resource, sys
import wideevents
from wideevents.sinks import FileSink

limit = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
wideevents.configure(service_name="fsize", sinks=[FileSink(sys.argv[1])])
for i in range(2000):
    with wideevents.event("fsize", i=i, pad="x" * 200):
        pass
wideevents.flush(10)
during = wideevents.stats()
resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
for i in range(2000, 2500):
    with wideevents.event("fsize", i=i):
        pass
wideevents.flush(10)
print(json.dumps({"during": during, "after": wideevents.stats()}))
"""


def test_file_sink_past_a_file_size_limit_counts_exactly_and_resumes(tmp_path: Path) -> None:
    """RLIMIT_FSIZE (SIGXFSZ ignored): whole lines only, counted exactly; writes resume after."""
    out = tmp_path / "events.jsonl"
    limit = 100_000
    script = tmp_path / "fsize.py"
    script.write_text(FSIZE_SCRIPT)
    proc = subprocess.run([sys.executable, str(script), str(out), str(limit)], env=child_env(),
                          capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    result = json.loads(proc.stdout)
    lines = out.read_bytes().split(b"\n")
    assert lines[-1] == b""
    events = [json.loads(line) for line in lines[:-1]]  # every line is a whole JSON object
    before = [e["i"] for e in events if e["i"] < 2000]
    assert before == list(range(len(before)))  # the first lines fit, in order
    assert sum(len(line) + 1 for line in lines[: len(before)]) <= limit
    assert [e["i"] for e in events if e["i"] >= 2000] == list(range(2000, 2500))
    during, after = result["during"]["sinks"]["file"], result["after"]["sinks"]["file"]
    assert (during["sent"], during["dropped"]) == (len(before), {"write_error": 2000 - len(before)})
    assert (after["sent"], after["dropped"]) == (len(before) + 500,
                                                 {"write_error": 2000 - len(before)})
    assert equation_holds(result["after"]) == {}
    assert proc.stderr.decode().count("FileSink could not write") == 1
    record_figure("FileSink past RLIMIT_FSIZE=100000", "written / write_error / resumed",
                  f"{len(before)} / {2000 - len(before)} / 500 of 500")
