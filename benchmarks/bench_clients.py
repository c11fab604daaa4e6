"""Added CPU per outgoing HTTP call of ``wideevents.integrations.clients``, and of a rollup.

Method: the same call, inside an open event, with the library left alone and then
instrumented (``clients.instrument()``: rollups on the event and its root, ``traceparent``
injected), paired call by call (the variant switched before each call); the figure is the
median CPU time of the calling thread (``time.thread_time_ns``) per instrumented call minus
the median per bare call.

- *in process*: the library's whole client path (``httpx.Client.get``,
  ``requests.Session.get``: URL parsing, headers, the patched transport or adapter, the
  response object) with the network replaced at its lowest layer (httpx: the transport's
  ``httpcore`` pool answers at once; requests: the adapter's urllib3 pool does), so the
  difference is what the instrumentation adds, not network noise;
- *over loopback*: the same against a real HTTP/1.1 server in another process (keep-alive
  connections), a sanity check of the above: each call costs hundreds of µs of client CPU,
  so its difference is noisier;
- *child events*: ``instrument(child_events=True)``, one more event per call (its CPU on
  the calling thread; the pipeline worker's share is not counted).

The rollup rows time ``ev.rollup(field, 1)`` on the request's own event (two fields
written), on a child (its field and the root's), and ``wideevents.rollup`` (the current
event looked up first).
"""

from __future__ import annotations

import gc
import io
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import wideevents
from wideevents.integrations import clients

from ._proc import ROOT, _env, noop_pipeline

TARGET_CALL_US = 15.0
TARGET_ROLLUP_US = 1.0
URL = "http://search-vector.internal:8080/v1/search?q=red+shoes&k=10"


# -- clients without a network -----------------------------------------------------------
# Each maker returns (bare, instrumented): two clients alike but for the patched method. It
# runs before instrument(): the bare client's transport (adapter) is a subclass holding the
# library's own method, so it stays unpatched while the class is patched, and the two can be
# called in turn without touching a class between calls (switching a patch in and out
# before each call would measure Python's method caches refilling, not the steady state).
def _httpx_clients() -> tuple[Callable[[], Any], Callable[[], Any]]:
    import httpcore
    import httpx

    class AnswerAtOnce:
        def handle_request(self, request: Any) -> Any:
            return httpcore.Response(200, headers=[(b"content-length", b"2")], content=b"ok")

        def close(self) -> None:
            return None

    class BareTransport(httpx.HTTPTransport):
        handle_request = httpx.HTTPTransport.handle_request  # the unpatched one, kept

    def make(transport: httpx.HTTPTransport) -> Callable[[], Any]:
        transport._pool = AnswerAtOnce()  # type: ignore[assignment]  # below the patch
        client = httpx.Client(transport=transport)
        return lambda: client.get(URL)

    return make(BareTransport()), make(httpx.HTTPTransport())


def _requests_sessions() -> tuple[Callable[[], Any], Callable[[], Any]]:
    import requests
    import urllib3
    from requests.adapters import HTTPAdapter

    class AnswerAtOnce:
        def urlopen(self, method: str, url: str, **kwargs: Any) -> Any:
            return urllib3.HTTPResponse(body=io.BytesIO(b"ok"), status=200,
                                        headers={"content-length": "2"},
                                        preload_content=False, request_method=method)

    class BareAdapter(HTTPAdapter):
        send = HTTPAdapter.send  # the unpatched one, kept

    pool = AnswerAtOnce()

    def make(adapter: HTTPAdapter) -> Callable[[], Any]:
        session = requests.Session()
        session.mount("http://", adapter)
        adapter.get_connection_with_tls_context = (  # type: ignore[method-assign]
            lambda *a, **k: pool)  # below HTTPAdapter.send, the patched method
        return lambda: session.get(URL)

    return make(BareAdapter()), make(HTTPAdapter())


# -- clients over loopback ---------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # One write per response: headers and body in separate segments would meet the
    # client's delayed ACK (Nagle), 40 ms a call.
    wbufsize = 64 * 1024

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


def serve() -> None:
    """``python -m benchmarks.bench_clients --serve``: print ``PORT n``, serve until stdin
    closes."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"PORT {server.server_port}", flush=True)
    sys.stdin.read()
    server.shutdown()


class _Server:
    def __enter__(self) -> str:
        self.proc = subprocess.Popen([sys.executable, "-m", "benchmarks.bench_clients", "--serve"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     cwd=str(ROOT), env=_env())
        assert self.proc.stdout is not None
        port = int(self.proc.stdout.readline().split()[1])
        return f"http://127.0.0.1:{port}/v1/search?q=red+shoes"

    def __exit__(self, *exc: object) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(10.0)


# -- measuring ---------------------------------------------------------------------------
def _bare(call: Callable[[], Any]) -> Callable[[], Any]:
    """``call`` with every patch passing straight to the library (``clients._in_call`` set:
    what a nested call sees). Used over loopback, where requests' urllib3 pool is a class
    shared by both sessions; it leaves the patched method's frame and one check in the bare
    call, under 0.2 µs, so the loopback rows understate the added CPU by that much."""
    def bare() -> Any:
        token = clients._in_call.set(True)
        try:
            return call()
        finally:
            clients._in_call.reset(token)
    return bare


def _paired(bare: Callable[[], Any], instrumented: Callable[[], Any], n: int,
            **options: Any) -> tuple[list[int], list[int]]:
    """Per-call CPU samples (ns) of ``bare`` and ``instrumented`` called in turn (the order
    swapped every call), after ``clients.instrument(**options)``."""
    clients.instrument(**options)
    clock = time.thread_time_ns
    out: tuple[list[int], list[int]] = ([], [])
    with wideevents.event("request"):
        for _ in range(max(50, n // 10)):  # warm up both paths
            bare()
            instrumented()
        gc.collect()
        for i in range(n):
            for which in ((0, 1) if i % 2 == 0 else (1, 0)):
                call = instrumented if which else bare
                t0 = clock()
                call()
                out[which].append(clock() - t0)
            if i % 500 == 499:  # child events wait in the queue: let the worker take them
                wideevents.flush(timeout=30.0)
    clients.uninstrument()
    wideevents.flush(timeout=30.0)
    return out


def _compare(bare: Callable[[], Any], instrumented: Callable[[], Any], n: int, chunks: int,
             **options: Any) -> dict[str, float]:
    """Added CPU per call: the bare and the instrumented client called in turn, each call
    timed alone on the calling thread's CPU clock; the figures are medians of the per-call
    samples (a call that met a garbage collection or another process's interrupt moves a
    mean by tens of µs, not a median). ``lo``-``hi``: the added CPU over ``chunks``
    consecutive slices of the run. ``child``: the same with ``child_events=True``."""
    bare_ns, inst_ns = _paired(bare, instrumented, n, **options)
    bare2_ns, child_ns = _paired(bare, instrumented, n, child_events=True, **options)
    med = statistics.median
    size = max(1, n // chunks)
    parts = [med(inst_ns[j:j + size]) - med(bare_ns[j:j + size]) for j in range(0, n, size)]
    best = min(med(bare_ns[j:j + size]) for j in range(0, n, size))
    return {"bare": med(bare_ns) / 1000, "added": (med(inst_ns) - med(bare_ns)) / 1000,
            "bare_best": best / 1000,
            "lo": min(parts) / 1000, "hi": max(parts) / 1000,
            "child": (med(child_ns) - med(bare2_ns)) / 1000}


def _own_time(call: Callable[[], Any], begin_name: str, n: int) -> dict[str, float]:
    """Median wall time per call of the instrumentation's two steps, taken inside the real
    client path: ``clients.<begin_name>`` (before the request leaves: the peer, the child
    event, ``traceparent``) and ``clients.end`` (the rollups). The patched methods look both
    up at each call, so wrapping them here times them in place. A median of per-call samples
    is not moved by the other processes of a busy machine, unlike a difference of totals."""
    samples: dict[str, list[int]] = {"begin": [], "end": []}
    now = time.perf_counter_ns
    begin, end = getattr(clients, begin_name), clients.end

    def timed_begin(*args: Any) -> Any:
        t0 = now()
        out = begin(*args)
        samples["begin"].append(now() - t0)
        return out

    def timed_end(*args: Any) -> Any:
        t0 = now()
        out = end(*args)
        samples["end"].append(now() - t0)
        return out

    clients.instrument()
    setattr(clients, begin_name, timed_begin)
    clients.end = timed_end  # type: ignore[assignment]
    try:
        with wideevents.event("request"):
            for _ in range(max(50, n // 10)):  # warm-up, not kept
                call()
            for v in samples.values():
                v.clear()
            for _ in range(n):
                call()
    finally:
        setattr(clients, begin_name, begin)
        clients.end = end  # type: ignore[assignment]
        clients.uninstrument()
    out = {k: statistics.median(v) / 1000 for k, v in samples.items()}
    out["both"] = out["begin"] + out["end"]
    return out


def count_calls(lib: str, variant: str, n: int) -> None:
    """``python -m benchmarks.bench_clients --count LIB VARIANT N``: 200 warm-up calls and
    ``n`` more of the in-process ``LIB`` client, ``bare`` or ``instrumented``; run under
    callgrind by :func:`_instructions`."""
    with noop_pipeline("bench-clients", queue_size=200_000, detect_resource=False):
        bare, instrumented = (_httpx_clients if lib == "httpx" else _requests_sessions)()
        clients.instrument()  # both variants: the same modules loaded, the same work done
        call = bare if variant == "bare" else instrumented
        with wideevents.event("request"):
            for _ in range(200 + n):
                call()


def _instructions(n: int) -> dict[str, dict[str, float]] | str:
    """Instructions per call of the in-process clients, bare and instrumented, counted by
    valgrind's callgrind (user-space instructions of the whole process): the count of a
    process making ``200 + n`` calls minus that of one making 200, over ``n``. Unlike a
    time, it is the same on a quiet and on a loaded machine (``PYTHONHASHSEED=0``: the
    same dict layouts in every run). A reason string when valgrind is not installed."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return "valgrind is not installed (`apt-get install valgrind`)"

    def count(job: tuple[str, str, int]) -> int:
        lib, variant, calls = job
        env = _env()
        env["PYTHONHASHSEED"] = "0"
        done = subprocess.run(
            [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
             "-m", "benchmarks.bench_clients", "--count", lib, variant, str(calls)],
            cwd=str(ROOT), env=env, capture_output=True, text=True, timeout=1800, check=True)
        found = re.search(r"Collected : (\d+)", done.stderr)
        assert found is not None, done.stderr[-2000:]
        return int(found.group(1))

    jobs = [(lib, variant, calls) for lib in ("httpx", "requests")
            for variant in ("bare", "instrumented") for calls in (0, n)]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        counts = dict(zip(jobs, pool.map(count, jobs), strict=True))
    out: dict[str, dict[str, float]] = {}
    for lib in ("httpx", "requests"):
        per = {v: (counts[(lib, v, n)] - counts[(lib, v, 0)]) / n
               for v in ("bare", "instrumented")}
        out[lib] = {"bare": per["bare"], "added": per["instrumented"] - per["bare"]}
    return out


def _rollups(n: int, rounds: int) -> dict[str, float]:
    def loop(fn: Callable[[], Any]) -> float:
        t0 = time.thread_time()
        for _ in range(n):
            fn()
        return (time.thread_time() - t0) * 1e9 / n

    out: dict[str, list[float]] = {"root": [], "child": [], "module": [], "empty": []}
    for _ in range(rounds):
        with wideevents.event("request") as request:
            out["empty"].append(loop(lambda: None))
            out["root"].append(loop(lambda: request.rollup("db.calls", 1)))
            with wideevents.event("stage") as stage:
                out["child"].append(loop(lambda: stage.rollup("db.ms", 1.5)))
                out["module"].append(loop(lambda: wideevents.rollup("db.ms", 1.5)))
    empty = statistics.median(out["empty"])  # the loop and lambda call themselves
    return {k: (statistics.median(v) - empty) / 1000 for k, v in out.items() if k != "empty"}


def run(quick: bool = False) -> str:
    n, loopback_n, rounds = (1_000, 300, 3) if quick else (20_000, 5_000, 15)
    chunks = 5
    with noop_pipeline("bench-clients", queue_size=200_000, detect_resource=False):
        try:
            rows: list[tuple[str, dict[str, float]]] = [
                ("httpx `Client.get`, in process", _compare(*_httpx_clients(), n, chunks)),
                ("requests `Session.get`, in process",
                 _compare(*_requests_sessions(), n, chunks)),
            ]
            import httpx
            import requests

            with _Server() as url, httpx.Client() as hc, requests.Session() as session:
                rows += [
                    ("httpx `Client.get`, loopback",
                     _compare(_bare(lambda: hc.get(url)), lambda: hc.get(url), loopback_n,
                              chunks)),
                    ("requests `Session.get`, loopback",
                     _compare(_bare(lambda: session.get(url)), lambda: session.get(url),
                              loopback_n, chunks)),
                ]
            own = [("httpx", _own_time(_httpx_clients()[1], "_httpx_begin", n)),
                   ("requests", _own_time(_requests_sessions()[1], "_requests_begin", n))]
            rollup = _rollups(20_000 if quick else 200_000, rounds)
            counted = "not counted in quick mode" if quick else _instructions(1_000)
            dropped = sum(wideevents.stats()["dropped"].values())
        finally:
            clients.uninstrument()
    lines = [
        "## Outgoing HTTP calls and rollups (`wideevents.integrations.clients`)",
        "",
        f"Each call inside an open event; bare, instrumented and instrumented with child "
        f"events: a bare and an instrumented client called in turn ({n:,} calls of each in "
        f"process, {loopback_n:,} over loopback, the order swapped every call; the bare "
        "client's transport/adapter is a subclass keeping the library's own method, over "
        "loopback the patches are passed through as for a nested call), each call timed "
        "alone on the calling thread's CPU clock "
        "(`time.thread_time_ns`); *added* = median per instrumented call minus median per "
        f"bare call, its range over {chunks} consecutive slices of the run in brackets. "
        "Medians, because a call that meets a garbage collection or an interrupt moves a "
        "mean by tens of µs. *In process*: the library's whole client path with the "
        "network replaced below the patched method (httpx's `httpcore` pool, requests' "
        "urllib3 pool answer at once); *loopback*: a real HTTP/1.1 server in another "
        "process, keep-alive. Instrumented = rollups on the event (`http.client.*` and "
        "per peer) and its root, `traceparent` injected. Events dropped by the pipeline "
        f"during the run: {dropped}.",
        "",
        "| call | bare, µs | added by `instrument()`, µs (slices' range) | added with "
        "`child_events=True`, µs |",
        "|---|---:|---:|---:|",
    ]
    for label, r in rows:
        lines.append(f"| {label} | {r['bare']:.1f} | {r['added']:.1f} ({r['lo']:.1f}–"
                     f"{r['hi']:.1f}) | {r['child']:.1f} |")
    lines += [
        "",
        "The instrumentation's own steps, timed in place inside the in-process calls above "
        "(median of per-call samples, wall time; the patched method's own frame and the "
        "library's handling of one more header are not in it):",
        "",
        "| library | before the call, µs | after the call (rollups), µs | both, µs |",
        "|---|---:|---:|---:|",
        *[f"| {lib} | {r['begin']:.1f} | {r['end']:.1f} | {r['both']:.1f} |" for lib, r in own],
    ]
    lines += [
        "",
        "| rollup | µs per call |",
        "|---|---:|",
        f"| `request.rollup(\"db.calls\", 1)` on the root event | {rollup['root']:.2f} |",
        f"| `stage.rollup(\"db.ms\", 1.5)` on a child (child + root) | {rollup['child']:.2f} |",
        f"| `wideevents.rollup(\"db.ms\", 1.5)` (current event) | {rollup['module']:.2f} |",
    ]
    timed = {label.split()[0]: r for label, r in rows if "in process" in label}
    worst_timed = max(r["added"] for r in timed.values())
    if isinstance(counted, str):
        lines += ["", f"Instructions per call: {counted}."]
        worst_call, judged = worst_timed, "timed (no instruction count)"
    else:
        estimates = {}
        lines += [
            "",
            "Instructions per call (valgrind's callgrind, the whole process's user-space "
            "instructions, 1,000 calls after 200 warm-up, minus a process making only the "
            "warm-up calls; the same on a quiet and on a loaded machine). The added µs are "
            "the added instructions at the bare call's measured rate (its timed median in the "
            "least disturbed of the slices above, over its counted instructions): the "
            "library's code and ours are both interpreted Python, so they run at about the "
            "same instructions per µs.",
            "",
            "| library | bare, instructions | added, instructions | bare, µs (best slice) | "
            "ns per instruction | added, µs (from the count) |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for lib, c in counted.items():
            ns_per = timed[lib]["bare_best"] * 1000 / c["bare"]
            estimates[lib] = c["added"] * ns_per / 1000
            lines.append(f"| {lib} | {c['bare']:,.0f} | {c['added']:,.0f} | "
                         f"{timed[lib]['bare_best']:.1f} | {ns_per:.3f} | "
                         f"{estimates[lib]:.1f} |")
        worst_call, judged = max(estimates.values()), "from the instruction count"
    worst_rollup = max(rollup.values())
    call_ok = "PASS" if worst_call < TARGET_CALL_US else "FAIL"
    rollup_ok = "PASS" if worst_rollup < TARGET_ROLLUP_US else "FAIL"
    lines += [
        "",
        f"Targets: added CPU per instrumented httpx/requests call < {TARGET_CALL_US:.0f} µs "
        f"(in process, worst of the two, {judged}): {worst_call:.1f} µs, **{call_ok}** "
        f"(timed: {worst_timed:.1f} µs); a rollup < {TARGET_ROLLUP_US:.0f} µs: "
        f"{worst_rollup:.2f} µs, **{rollup_ok}**.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    if "--serve" in sys.argv:
        serve()
    elif "--count" in sys.argv:
        at = sys.argv.index("--count")
        count_calls(sys.argv[at + 1], sys.argv[at + 2], int(sys.argv[at + 3]))
    else:
        print(run(quick="--quick" in sys.argv))
