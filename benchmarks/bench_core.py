"""Core: the 63-field event through wideevents' FileSink vs structlog, json and orjson.

Each contender runs in a fresh process: 1,000 warm-up events, then 20,000 measured, in
3 interleaved rounds. Reported: caller-thread CPU per event, total process CPU per event
(background work and close included), p50/p99 of the emit call (``Event.finish()`` for
wideevents), and events lost (lines missing from the output file).
"""

from __future__ import annotations

import json
import os
import resource
import tempfile
import time
from typing import Any

from ._proc import med, percentile, pin_to_one_core, run_worker, targets_table, worker_main

CONTENDERS = ["dict_only", "wideevents", "wideevents_io", "orjson", "json", "structlog"]
LABEL = {
    "dict_only": "build the dict only",
    "wideevents": "wideevents FileSink",
    "wideevents_io": "wideevents FileSink, 200 µs sleep after each event (for latency; the "
                     "sleeps' own system calls count in its CPU)",
    "orjson": "plain orjson.dumps to a file",
    "json": "stdlib json.dumps to a file",
    "structlog": "structlog + orjson to a file",
}


def _worker(contender: str, n: int, warmup: int, path: str, pin: str = "") -> dict[str, Any]:
    from .fixture import build_event, make_inputs

    if pin:
        pin_to_one_core()

    inputs = make_inputs(n + warmup)
    perf = time.perf_counter_ns
    lat: list[int] = []
    whole: list[int] = []  # building the event and emitting it: what a request waits for
    # A service whose threads wait on I/O between events (the sleep is not timed): the
    # worker runs during the waits, and finish() never waits for it.
    io_wait = 0.0002 if contender == "wideevents_io" else 0.0
    close = lambda: None  # noqa: E731
    if contender == "dict_only":
        def emit(i: int) -> None:
            build_event(inputs, i)
    elif contender in ("wideevents", "wideevents_io"):
        import wideevents
        from wideevents.sinks import FileSink

        wideevents.configure(service_name="bench", sinks=[FileSink(path)])

        def emit(i: int) -> None:
            ev = wideevents.event("predict")
            ev.add(build_event(inputs, i))
            t = perf()
            ev.finish()
            lat.append(perf() - t)

        def close() -> None:
            ok = wideevents.shutdown(timeout=30.0)
            assert ok, wideevents.stats()
    elif contender in ("orjson", "json"):
        f = open(path, "wb")
        if contender == "orjson":
            import orjson

            def emit(i: int) -> None:
                d = build_event(inputs, i)
                t = perf()
                f.write(orjson.dumps(d) + b"\n")
                lat.append(perf() - t)
        else:
            def emit(i: int) -> None:
                d = build_event(inputs, i)
                t = perf()
                f.write((json.dumps(d) + "\n").encode())
                lat.append(perf() - t)
        close = f.close
    elif contender == "structlog":
        import orjson
        import structlog

        f = open(path, "wb")
        log = structlog.wrap_logger(
            structlog.BytesLogger(f),
            processors=[structlog.processors.TimeStamper(fmt="iso", utc=True),
                        structlog.processors.JSONRenderer(serializer=orjson.dumps)],
        )

        def emit(i: int) -> None:
            d = build_event(inputs, i)
            t = perf()
            log.info("predict", **d)
            lat.append(perf() - t)
        close = f.close
    else:
        raise SystemExit(f"unknown contender {contender}")
    for i in range(warmup):
        emit(i)
    lat.clear()
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    cpu0, th0 = time.process_time(), time.thread_time()
    for i in range(warmup, warmup + n):
        t0 = perf()
        emit(i)
        whole.append(perf() - t0)
        if io_wait:
            time.sleep(io_wait)
    th1 = time.thread_time()
    close()
    cpu1 = time.process_time()
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    switches = (ru1.ru_nvcsw - ru0.ru_nvcsw) + (ru1.ru_nivcsw - ru0.ru_nivcsw)
    lines = 0
    if contender != "dict_only":
        with open(path, "rb") as fh:
            lines = sum(1 for _ in fh)
    return {
        "caller_us": (th1 - th0) / n * 1e6,
        "cpu_us": (cpu1 - cpu0) / n * 1e6,
        "p50_us": percentile([x / 1000 for x in lat], 50),
        "p99_us": percentile([x / 1000 for x in lat], 99),
        "p999_us": percentile([x / 1000 for x in lat], 99.9),
        "max_us": max(lat, default=0) / 1000,
        "whole_p50_us": percentile([x / 1000 for x in whole], 50),
        "whole_p999_us": percentile([x / 1000 for x in whole], 99.9),
        "whole_max_us": max(whole) / 1000,
        "lost": 0 if contender == "dict_only" else (n + warmup) - lines,
        "switches_per_1k": switches / n * 1000,
    }


def _table(results: dict[str, list[dict[str, Any]]]) -> list[str]:
    base = med(results["dict_only"], "cpu_us")
    rows = []
    for c in CONTENDERS:
        rs = results[c]
        over = med(rs, "cpu_us") - base
        emit = "" if c == "dict_only" else (
            f"{med(rs, 'p50_us'):.1f} / {med(rs, 'p99_us'):.1f} / {med(rs, 'p999_us'):.0f} / "
            f"{med(rs, 'max_us'):.0f}")
        whole = (f"{med(rs, 'whole_p50_us'):.1f} / {med(rs, 'whole_p999_us'):.0f} / "
                 f"{med(rs, 'whole_max_us'):.0f}")
        spread = f"{min(r['cpu_us'] for r in rs):.1f}–{max(r['cpu_us'] for r in rs):.1f}"
        rows.append(f"| {LABEL[c]} | {med(rs, 'caller_us'):.1f} | {med(rs, 'cpu_us'):.1f} "
                    f"({spread}) | {'' if c == 'dict_only' else f'{over:+.1f}'} | {emit} | "
                    f"{whole} | "
                    f"{med(rs, 'switches_per_1k'):.0f} | "
                    f"{'' if c == 'dict_only' else int(max(r['lost'] for r in rs))} |")
    return [
        "| contender | caller µs/event | total CPU µs/event (rounds' range) | above dict-only | "
        "emit p50 / p99 / p99.9 / max µs | whole event p50 / p99.9 / max µs | "
        "context switches per 1k events | lost |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
    ]


def run(quick: bool = False) -> str:
    n, warmup, rounds = (2_000, 200, 1) if quick else (20_000, 1_000, 5)
    modes = {"one core": "1", "any core": ""}
    results: dict[str, dict[str, list[dict[str, Any]]]] = {
        m: {c: [] for c in CONTENDERS} for m in modes}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            for mode, pin in modes.items():
                for c in CONTENDERS:
                    path = os.path.join(tmp, f"{c}-{r}-{pin or 'any'}.jsonl")
                    results[mode][c].append(
                        run_worker("bench_core", c, str(n), str(warmup), path, pin))
    checks = []
    for mode in modes:
        we = results[mode]["wideevents"]
        over_we = med(we, "cpu_us") - med(results[mode]["dict_only"], "cpu_us")
        checks.append((f"CPU/event above 'build the dict only' ({mode})", "<= 20 µs",
                       f"{over_we:.1f} µs", over_we <= 20))
    we = results["any core"]["wideevents"] + results["one core"]["wideevents"]
    checks += [
        ("finish() p50", "< 5 µs", f"{med(we, 'p50_us'):.2f} µs", med(we, "p50_us") < 5),
        ("finish() p99", "< 100 µs", f"{med(we, 'p99_us'):.2f} µs", med(we, "p99_us") < 100),
        ("events lost", "0", str(int(max(r["lost"] for r in we))),
         max(r["lost"] for r in we) == 0),
    ]
    out = [
        "## Core: the 63-field inference event to a local file",
        "",
        f"Each contender in a fresh process; {n:,} events after {warmup:,} warm-up, {rounds} "
        "interleaved round(s), medians shown. *Caller* is the CPU time of the emitting thread; "
        "*total* is the whole process's CPU per event, background worker and close included; "
        "*emit* is `Event.finish()` for wideevents and the write/log call for the others; "
        "*whole event* is building the event and emitting it, what a request waits for.",
        "",
        "Every contender runs twice: pinned to one core (`sched_setaffinity`), which measures "
        "the work itself, and free to use both cores, as a service would run. Only wideevents "
        "has two threads. Free to use both cores, CPython's GIL made it cost more, by an "
        "amount that changed from process to process (seen with `perf` sched_switch call "
        "chains and per-thread context-switch counts): the request thread releases the GIL "
        "inside numpy (`argpartition` in the fixture, once per event) for microseconds, and "
        "each release woke the worker waiting for the GIL on the other core; the request "
        "thread took the GIL back before the worker was awake, so the worker slept again. "
        "CPython 3.11 restarts a waiter's 5 ms timeout at each such signal, so the worker "
        "got the GIL only by winning one of those races: about 200 lost races per drain, "
        "each a futex wake and a wake-up of the other core (+7 µs of CPU per event, 300-600 "
        "context switches per 1,000 events). Now, when the worker woken at 256 queued "
        "events has still not run 8 events later, the thread emitting the 8th waits (at "
        "most 2 ms) until it runs: one hand-over per drain. That thread waits for the "
        "worker's drain there, once, instead of inside its next numpy call: *finish()* "
        "p99.9 and max show the drain (about 2 ms), and the *whole event* tail is shorter "
        "than before, when the same wait came at a random numpy call and lasted up to "
        "CPython's 5 ms switch interval. Threads that wait on I/O between events (the "
        "*200 µs wait* row) let the worker run then, and never hand over.",
        "",
    ]
    for mode in modes:
        out += [f"**{mode}**", "", *_table(results[mode]), ""]
    out += [
        *targets_table(checks),
    ]
    return "\n".join(out)


if __name__ == "__main__":
    worker_main(_worker, run)
