"""Emit events as fast as one thread can, against a Honeycomb receiver that answers slowly.

    python -m tests.support.apps.overload_producer API_HOST SECONDS

Uses the default pipeline and sink settings (queue 10,000, ``enqueue_timeout=0``, sender
buffer 20,000 events). Times every ``finish()`` call; checks the accounting equation in
a ``stats()`` snapshot every second; prints ``READY`` when it starts emitting, then one
JSON line with the results after ``shutdown()``.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from typing import Any

import wideevents
from wideevents.sinks import HoneycombSink

THRESHOLDS_MS = (1, 5, 10, 50)


def equation_errors(stats: dict[str, Any]) -> int:
    pipeline_dropped = sum(stats["dropped"].values())
    return sum(1 for s in stats["sinks"].values()
               if s["sent"] + sum(s["rejected"].values()) + sum(s["dropped"].values())
               + s["pending"] + pipeline_dropped != stats["emitted"])


def main() -> None:
    api_host, seconds = sys.argv[1], float(sys.argv[2])
    wideevents.configure(service_name="overload",
                         sinks=[HoneycombSink(api_key="overload-key", dataset="overload",
                                              api_host=api_host)])
    perf = time.perf_counter_ns
    over = dict.fromkeys(THRESHOLDS_MS, 0)
    limits_ns = [(ms, ms * 1_000_000) for ms in THRESHOLDS_MS]
    longest = 0
    snapshots = violations = 0
    n = 0
    print("READY", flush=True)
    start = time.monotonic()
    end = start + seconds
    next_check = start + 1.0
    while True:
        for _ in range(1000):
            ev = wideevents.event("overload", route="/predict", method="POST")
            with ev:
                ev.add({"request.id": f"o-{n}", "user.id": n % 977, "model.version": "v3",
                        "score.top1": 0.75, "timing.feature_fetch_ms": 1.5,
                        "result.count": 10, "http.response.status_code": 200})
                t0 = perf()
                ev.finish()
                dt = perf() - t0
            n += 1
            if dt > longest:
                longest = dt
            if dt > 1_000_000:
                for ms, limit in limits_ns:
                    if dt > limit:
                        over[ms] += 1
        now = time.monotonic()
        if now >= next_check:
            next_check = now + 1.0
            snapshots += 1
            violations += equation_errors(wideevents.stats())
            if now >= end:
                break
    running = wideevents.stats()
    ok = wideevents.shutdown(timeout=30)
    final = wideevents.stats()
    print(json.dumps({
        "emitted_by_loop": n, "seconds": time.monotonic() - start, "longest_finish_ns": longest,
        "finish_over_ms": over, "snapshots": snapshots, "equation_violations": violations,
        "running": running, "shutdown_ok": ok, "final": final,
        "ru_maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }), flush=True)


if __name__ == "__main__":
    main()
