"""Events from ``multiprocessing`` children started with the fork method, no flush calls.

    python -m tests.support.apps.mp_scenario OUT_PATTERN

The parent configures a FileSink whose path has ``{pid}`` (one file per process), then
runs 3 ``Process`` children emitting 100 events each, and a 2-worker ``Pool`` mapping 4
tasks of 50 events, ended with ``close()`` and ``join()``. Fork children end with
``os._exit()``: only what wideevents registers with multiprocessing flushes them.
"""

from __future__ import annotations

import multiprocessing
import sys

import wideevents
from wideevents.sinks import FileSink


def emit(task: tuple[str, int]) -> int:
    tag, n = task
    for i in range(n):
        with wideevents.event("child", tag=tag, i=i):
            pass
    return n


def main() -> None:
    wideevents.configure(service_name="mp-scenario", sinks=[FileSink(sys.argv[1])])
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=emit, args=((f"process-{k}", 100),)) for k in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    pool = ctx.Pool(2)
    pool.map(emit, [(f"pool-{k}", 50) for k in range(4)])
    pool.close()
    pool.join()
    print("EXITCODES", *[p.exitcode for p in procs], flush=True)


if __name__ == "__main__":
    main()
