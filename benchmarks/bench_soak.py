"""Soak: 100,000 events in a plain loop, with the defaults, on a loaded machine.

A batch job is where users first try the library: a loop that emits as fast as one thread
can and never waits on I/O. With the defaults it must lose nothing while the sink itself
keeps up on average (docs/reliability.md, "Guarantees" 2). Each run is a fresh process
emitting 100,000 events of 12 fields (a scoring loop's event: ids, a model version, a
score, a few timings) in a tight loop to ``FileSink`` or to ``HoneycombSink`` on a
loopback Events API (``tests/support/honeycomb_receiver.py``, its own process), then
``shutdown()``; *lost* is events emitted minus lines in the file or events the receiver
counted. Beside each run, one busy-loop process per core competes for the CPU (as
``../shared/tools/under-load`` does), so the loop, its worker and its sender threads run
on a loaded machine.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ._proc import ReceiverProcess, run_worker, targets_table, worker_main

KEY = "soak0123456789abcdef0123456789ab"
N = 100_000


def _worker(contender: str, n: int, warmup: int, target: str) -> dict[str, Any]:
    import wideevents
    from wideevents.sinks import FileSink, HoneycombSink

    sink = FileSink(target) if contender == "file" else HoneycombSink(
        KEY, dataset="soak", api_host=target)
    wideevents.configure(service_name="soak", sinks=[sink])
    perf = time.perf_counter
    longest = 0.0
    t0 = perf()
    for i in range(n):
        start = perf()
        with wideevents.event("score") as ev:
            ev.add({"request.id": f"r-{i}", "user.id": i % 977, "model.version": "v3",
                    "prediction.score": 0.5 + (i % 100) / 200, "prediction.label": "ok",
                    "timing.fetch_ms": 1.25, "timing.inference_ms": 3.5, "batch": i // 1000,
                    "slice.tenant": f"t{i % 7}"})
        longest = max(longest, perf() - start)
    elapsed = perf() - t0
    ok = wideevents.shutdown(timeout=60)
    stats = wideevents.stats()
    return {"elapsed_s": elapsed, "shutdown_ok": ok, "emitted": stats["emitted"],
            "dropped": stats["dropped"], "sink": next(iter(stats["sinks"].values())),
            "longest_event_ms": longest * 1000}


def _burners() -> list[subprocess.Popen[bytes]]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"])
            for _ in range(os.cpu_count() or 2)]


def run(quick: bool = False) -> str:
    n, runs = (5_000, 1) if quick else (N, 10)
    rows, checks = [], []
    receiver = ReceiverProcess("honeycomb_receiver", "--key", KEY, "--no-store",
                               counts="events")
    burners = _burners()
    try:
        for contender in ("file", "honeycomb"):
            lost_runs = []
            for r in range(runs):
                if contender == "file":
                    with tempfile.TemporaryDirectory() as tmp:
                        path = str(Path(tmp) / "events.jsonl")
                        res = run_worker("bench_soak", contender, str(n), "0", path)
                        with open(path, "rb") as f:
                            arrived = sum(1 for _ in f)
                else:
                    before = receiver.count("soak")
                    res = run_worker("bench_soak", contender, str(n), "0", receiver.url)
                    arrived = receiver.count("soak") - before
                lost = n - arrived
                lost_runs.append(lost)
                rows.append(
                    f"| {contender} | {r + 1} | {res['elapsed_s']:.1f} | {arrived:,} | {lost:,} | "
                    f"{res['dropped'] or '-'} | {res['sink']['dropped'] or '-'} | "
                    f"{res['longest_event_ms']:.1f} | {res['shutdown_ok']} |")
            clean = sum(1 for lost in lost_runs if lost == 0)
            checks.append((f"{contender}: runs with nothing lost", f"{runs} of {runs}",
                           f"{clean} of {runs}", clean == runs))
    finally:
        for b in burners:
            b.kill()
            b.wait()
        receiver.stop()
    out = [
        "## Soak: 100,000 events in a plain loop, defaults, loaded machine",
        "",
        f"{n:,} events per run, {runs} runs per sink, each run a fresh process, with "
        f"{os.cpu_count()} busy-loop processes competing for the cores. *loop s* is the "
        "wall time of the loop; *longest event* the longest `with event()` block (build "
        "and finish, waits for a starved worker included); *shutdown* is what "
        "`shutdown()` returned (True: nothing lost).",
        "",
        "| sink | run | loop s | arrived | lost | pipeline dropped | sink dropped | "
        "longest event ms | shutdown |",
        "|---|---:|---:|---:|---:|---|---|---:|---|",
        *rows,
        "",
        *targets_table(checks),
    ]
    return "\n".join(out)


if __name__ == "__main__":
    worker_main(_worker, run)
