"""Added CPU per outgoing HTTP call of ``wideevents.integrations.clients``, and of a rollup.

Method: the same call, inside an open event, with the library left alone and then
instrumented (``clients.instrument()``: rollups on the event and its root, ``traceparent``
injected), in alternating rounds; the figure is the CPU time of the calling thread
(``time.thread_time``) per call, instrumented minus bare, median over rounds.

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
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import wideevents
from wideevents._core import runtime
from wideevents.integrations import clients

from ._proc import ROOT, _env

TARGET_CALL_US = 15.0
TARGET_ROLLUP_US = 1.0
URL = "http://search-vector.internal:8080/v1/search?q=red+shoes&k=10"


class NoopSink:
    """A sink that accepts every batch and does nothing with it."""

    name = "noop"

    def export(self, batch: Sequence[Any]) -> None:
        return None


# -- clients without a network -----------------------------------------------------------
def _httpx_client() -> Callable[[], Any]:
    import httpcore
    import httpx

    class AnswerAtOnce:
        def handle_request(self, request: Any) -> Any:
            return httpcore.Response(200, headers=[(b"content-length", b"2")], content=b"ok")

        def close(self) -> None:
            return None

    transport = httpx.HTTPTransport()
    transport._pool = AnswerAtOnce()  # type: ignore[assignment]  # below the patched method
    client = httpx.Client(transport=transport)
    return lambda: client.get(URL)


def _requests_session() -> Callable[[], Any]:
    import requests
    import urllib3

    class AnswerAtOnce:
        def urlopen(self, method: str, url: str, **kwargs: Any) -> Any:
            return urllib3.HTTPResponse(body=io.BytesIO(b"ok"), status=200,
                                        headers={"content-length": "2"},
                                        preload_content=False, request_method=method)

    pool = AnswerAtOnce()
    session = requests.Session()
    for adapter in session.adapters.values():  # below HTTPAdapter.send, the patched method
        adapter.get_connection_with_tls_context = (  # type: ignore[method-assign]
            lambda *a, **k: pool)
    return lambda: session.get(URL)


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
def _per_call_us(call: Callable[[], Any], n: int) -> float:
    with wideevents.event("request"):
        t0 = time.thread_time()
        for _ in range(n):
            call()
        return (time.thread_time() - t0) * 1e6 / n


def _compare(call: Callable[[], Any], n: int, rounds: int, **options: Any
             ) -> dict[str, float]:
    """Bare, instrumented (with ``options``) and instrumented with child events, interleaved."""
    variants: dict[str, Callable[[], None]] = {
        "bare": clients.uninstrument,
        "instrumented": lambda: clients.instrument(**options) and None,
        "child_events": lambda: clients.instrument(child_events=True, **options) and None,
    }
    for setup in variants.values():  # warm up every path (imports, caches)
        setup()
        _per_call_us(call, max(50, n // 10))
    got: dict[str, list[float]] = {k: [] for k in variants}
    deltas: list[float] = []
    order = list(variants)
    for r in range(rounds):
        # Alternate the order (ABC, CBA, ...): a machine getting busier or quieter during
        # a round then favours no variant.
        for name in (order if r % 2 == 0 else order[::-1]):
            variants[name]()
            gc.collect()
            got[name].append(_per_call_us(call, n))
            wideevents.flush(timeout=30.0)
        deltas.append(got["instrumented"][-1] - got["bare"][-1])
    clients.uninstrument()
    med = {k: statistics.median(v) for k, v in got.items()}
    return {"bare": med["bare"], "added": statistics.median(deltas),
            "lo": min(deltas), "hi": max(deltas),
            "child": med["child_events"] - med["bare"]}


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
        _per_call_us(call, max(50, n // 10))
        for v in samples.values():
            v.clear()
        _per_call_us(call, n)
    finally:
        setattr(clients, begin_name, begin)
        clients.end = end  # type: ignore[assignment]
        clients.uninstrument()
    out = {k: statistics.median(v) / 1000 for k, v in samples.items()}
    out["both"] = out["begin"] + out["end"]
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
    n, loopback_n, rounds = (300, 100, 3) if quick else (3_000, 1_000, 15)
    pipeline = wideevents.configure(service_name="bench-clients", sinks=[NoopSink()],
                                    queue_size=200_000, detect_resource=False)
    try:
        rows: list[tuple[str, dict[str, float]]] = [
            ("httpx `Client.get`, in process", _compare(_httpx_client(), n, rounds)),
            ("requests `Session.get`, in process", _compare(_requests_session(), n, rounds)),
        ]
        import httpx
        import requests

        with _Server() as url, httpx.Client() as hc, requests.Session() as session:
            rows += [
                ("httpx `Client.get`, loopback", _compare(lambda: hc.get(url), loopback_n,
                                                           rounds)),
                ("requests `Session.get`, loopback",
                 _compare(lambda: session.get(url), loopback_n, rounds)),
            ]
        own = [("httpx", _own_time(_httpx_client(), "_httpx_begin", n * 3)),
               ("requests", _own_time(_requests_session(), "_requests_begin", n * 3))]
        rollup = _rollups(20_000 if quick else 200_000, rounds)
        dropped = sum(wideevents.stats()["dropped"].values())
    finally:
        clients.uninstrument()
        pipeline.shutdown(timeout=5.0)
        if runtime.swap(None) is not pipeline:
            pass  # someone reconfigured meanwhile; leave theirs alone
    lines = [
        "## Outgoing HTTP calls and rollups (`wideevents.integrations.clients`)",
        "",
        f"Each call inside an open event; bare, instrumented and instrumented with child "
        f"events in {rounds} alternating rounds ({n:,} calls per round in process, "
        f"{loopback_n:,} over loopback), median per call of the calling thread's CPU "
        "(`time.thread_time`). *In process*: the library's whole client path with the "
        "network replaced below the patched method (httpx's `httpcore` pool, requests' "
        "urllib3 pool answer at once); *loopback*: a real HTTP/1.1 server in another "
        "process, keep-alive. Instrumented = rollups on the event (`http.client.*` and "
        "per peer) and its root, `traceparent` injected. Events dropped by the pipeline "
        f"during the run: {dropped}.",
        "",
        "| call | bare, µs | added by `instrument()`, µs (rounds' range) | added with "
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
    worst_call = max(r["added"] for label, r in rows if "in process" in label)
    worst_rollup = max(rollup.values())
    call_ok = "PASS" if worst_call < TARGET_CALL_US else "FAIL"
    rollup_ok = "PASS" if worst_rollup < TARGET_ROLLUP_US else "FAIL"
    lines += [
        "",
        f"Targets: added CPU per instrumented httpx/requests call < {TARGET_CALL_US:.0f} µs "
        f"(in process, worst of the two): {worst_call:.1f} µs, **{call_ok}**; a rollup < "
        f"{TARGET_ROLLUP_US:.0f} µs: {worst_rollup:.2f} µs, **{rollup_ok}**.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    if "--serve" in sys.argv:
        serve()
    else:
        print(run(quick="--quick" in sys.argv))
