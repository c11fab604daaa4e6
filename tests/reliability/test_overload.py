"""Overload: a producer emitting as fast as it can for 60 s against a receiver that accepts
slowly. Memory stays bounded, the request thread never waits on the network (at most
10 ms for a worker starved of the GIL), the accounting is exact.

The producer and the receiver each run in their own process, so that the producer's RSS
is its own and the receiver's work does not share its GIL. RSS is sampled from outside
every 100 ms; "after warm-up" means after the first 10 s (queue and buffer full by then).
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import urllib.request
from typing import Any

import pytest

from tests.support.reliability import (
    child_env,
    equation_holds,
    group,
    python,
    python_module,
    read_port,
    record_figure,
    rss_bytes,
)

SECONDS = float(os.environ.get("RELIABILITY_OVERLOAD_SECONDS", "60"))
WARM_UP_S = min(10.0, SECONDS / 6)
RECEIVER_DELAY_S = 0.5  # per batch request: at most 8 in flight x 1,000 events / 0.5 s
MB = 1024 * 1024


def receiver_count(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_receiver/stats", timeout=10) as r:
        return int(sum(json.loads(r.read())["events"].values()))


@pytest.mark.slow
def test_overload_bounded_memory_never_waits_exact_accounting() -> None:
    """60 s flat out against a slow receiver: RSS growth < 50 MB, finish() bounded, exact stats."""
    receiver_cmd = python_module("honeycomb_receiver", "--key", "overload-key",
                                 "--delay", str(RECEIVER_DELAY_S), "--no-store")
    with group(receiver_cmd, env=child_env(), stdin=subprocess.PIPE) as receiver:
        port = read_port(receiver)
        producer_cmd = python("overload_producer", f"http://127.0.0.1:{port}", str(SECONDS))
        with group(producer_cmd, env=child_env()) as producer:
            assert producer.stdout is not None
            assert producer.stdout.readline() == b"READY\n"
            started = time.monotonic()
            samples: list[tuple[float, int]] = []
            done = threading.Event()

            def sample() -> None:
                while not done.is_set():
                    try:
                        samples.append((time.monotonic() - started, rss_bytes(producer.pid)))
                    except (OSError, ValueError):
                        return
                    done.wait(0.1)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            out, err = producer.communicate(timeout=SECONDS + 120)
            done.set()
            sampler.join(5)
            assert producer.returncode == 0, err.decode()
            result: dict[str, Any] = json.loads(out)
        got = receiver_count(port)

    running, final = result["running"], result["final"]
    baseline = [rss for t, rss in samples if t <= WARM_UP_S][-1]
    peak_after = max(rss for t, rss in samples if t > WARM_UP_S)
    growth = max(0, peak_after - baseline)
    sink = final["sinks"]["honeycomb"]
    longest_ms = result["longest_finish_ns"] / 1e6

    scenario = f"overload {SECONDS:.0f} s, receiver {RECEIVER_DELAY_S} s/request"
    record_figure(scenario, "events emitted", final["emitted"])
    record_figure(scenario, "delivered (sink sent / receiver)", f"{sink['sent']} / {got}")
    record_figure(scenario, "dropped in the pipeline", final["dropped"])
    record_figure(scenario, "dropped by the sink", sink["dropped"])
    record_figure(scenario, "peak RSS growth after warm-up", f"{growth / MB:.1f} MB")
    record_figure(scenario, "RSS at start / end of warm-up / peak after",
                  f"{samples[0][1] / MB:.1f} / {baseline / MB:.1f} / {peak_after / MB:.1f} MB")
    record_figure(scenario, "longest finish()", f"{longest_ms:.2f} ms")
    record_figure(scenario, "finish() over 1 / 5 / 10 / 50 ms",
                  " / ".join(str(result["finish_over_ms"][k]) for k in ("1", "5", "10", "50")))
    record_figure(scenario, "stats() snapshots checked", result["snapshots"])

    assert result["emitted_by_loop"] == final["emitted"]
    assert result["snapshots"] >= SECONDS - 1 and result["equation_violations"] == 0
    assert equation_holds(running) == {} and equation_holds(final) == {}
    # Events were lost (the receiver is the bottleneck), so shutdown() says False
    # (docs/reliability.md, "Guarantees"); nothing is left pending.
    assert result["shutdown_ok"] is False and sink["pending"] == 0
    assert got == sink["sent"]  # no faults: each batch the receiver counted was acknowledged
    assert sink["sent"] + sum(sink["dropped"].values()) + sum(final["dropped"].values()) == (
        final["emitted"])
    # It really was overloaded: the sender, blocked on the slow receiver, dropped from its
    # full buffer. The pipeline's worker is not blocked (handing events to the sender is
    # quick), so the emitting thread may wait for it when it is starved of the GIL, at
    # most 10 ms per finish().
    assert sink["dropped"].get("buffer_full", 0) > 0
    # finish()'s own waits are bounded (10 ms for a starved worker, 2 ms for the hand-over);
    # what else a call can meet is not ours: CPython's garbage collector (gen2 passes of
    # 50-100 ms were measured with a full queue on this 2-core machine, triggered by any
    # allocation) and the scheduler of a loaded machine. So: rare, and a sanity bound.
    assert result["finish_over_ms"]["50"] <= max(10, final["emitted"] // 10_000)
    assert longest_ms < 1_000
    assert growth < 50 * MB
