"""Added cost per request of the ASGI and WSGI middlewares, called in process (no network).

Method: the same request is sent many times to a bare application and to the same
application wrapped by the middleware, in alternating rounds. The application does what a
framework leaves behind for the middleware (FastAPI's ``scope["route"]``, werkzeug's
``environ["werkzeug.request"]``) and answers a small JSON body. The pipeline is configured
with a sink whose ``export`` does nothing, so the measured cost is the middleware plus the
event's life on the request thread, and (in the total) the pipeline's background work.

- request thread: CPU time of the calling thread (``time.thread_time``) per request,
  wrapped minus bare: what a request pays on its own thread.
- total CPU: process CPU (``time.process_time``, every thread) per request, including the
  pipeline worker's normalisation and serialisation of the event (each round ends with
  ``wideevents.flush()``), wrapped minus bare.

Each figure is the median over rounds. The target applies to the request-thread cost.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
from collections.abc import Callable
from typing import Any

import wideevents
from wideevents.integrations.asgi import WideEventsMiddleware
from wideevents.integrations.wsgi import WideEventsWSGIMiddleware

from ._proc import noop_pipeline

TARGET_US = 25.0
_BODY = b'{"label":"cat","score":0.97}'
_HEADERS = [
    (b"host", b"api.example.com"), (b"user-agent", b"python-httpx/0.28.1"),
    (b"accept", b"*/*"), (b"accept-encoding", b"gzip, deflate"), (b"connection", b"keep-alive"),
    (b"content-type", b"application/json"), (b"x-forwarded-for", b"10.0.0.1"),
]
_TRACE_HEADERS = [
    (b"x-request-id", b"3f2c1a9e-8d7b-4c6a-9e5f-1a2b3c4d5e6f"),
    (b"traceparent", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    (b"x-tenant", b"acme"),
]


class _Route:
    path = "/v1/models/{model}/predict"


class _Rule:
    rule = "/v1/models/<model>/predict"


class _Request:
    url_rule = _Rule()


def _asgi_app() -> Callable[..., Any]:
    route = _Route()
    start = {"type": "http.response.start", "status": 200,
             "headers": [(b"content-type", b"application/json")]}
    body = {"type": "http.response.body", "body": _BODY}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        scope["route"] = route  # what FastAPI's router leaves behind
        await send(start)
        await send(body)

    return app


def _wsgi_app() -> Callable[..., Any]:
    request = _Request()
    headers = [("Content-Type", "application/json")]

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        environ["werkzeug.request"] = request  # what Flask leaves behind
        start_response("200 OK", headers)
        return [_BODY]

    return app


def _asgi_scope(extra: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
            "method": "POST", "scheme": "http", "path": "/v1/models/resnet/predict",
            "raw_path": b"/v1/models/resnet/predict", "query_string": b"", "root_path": "",
            "headers": _HEADERS + extra, "client": ("10.0.0.1", 51234),
            "server": ("10.0.0.2", 8000)}


def _environ(extra: dict[str, str]) -> dict[str, Any]:
    env = {"REQUEST_METHOD": "POST", "SCRIPT_NAME": "", "PATH_INFO": "/v1/models/resnet/predict",
           "QUERY_STRING": "", "SERVER_NAME": "10.0.0.2", "SERVER_PORT": "8000",
           "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "10.0.0.1", "wsgi.url_scheme": "http",
           "HTTP_HOST": "api.example.com", "HTTP_USER_AGENT": "python-httpx/0.28.1",
           "HTTP_ACCEPT": "*/*", "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": "42"}
    env.update(extra)
    return env


def _asgi_runner(app: Any, scope: dict[str, Any]) -> Callable[[int], None]:
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return None

    async def many(n: int) -> None:
        for _ in range(n):
            await app(scope, receive, send)

    loop = asyncio.new_event_loop()

    def run(n: int) -> None:
        loop.run_until_complete(many(n))

    return run


def _wsgi_runner(app: Any, environ: dict[str, Any]) -> Callable[[int], None]:
    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        return None

    def run(n: int) -> None:
        for _ in range(n):
            result = app(environ, start_response)
            for _chunk in result:
                pass
            close = getattr(result, "close", None)
            if close is not None:
                close()

    return run


def _measure(run: Callable[[int], None], n: int) -> tuple[float, float, float]:
    """(thread CPU, process CPU, wall) in µs per request for one round of n requests."""
    gc.collect()
    w0, t0, p0 = time.perf_counter(), time.thread_time(), time.process_time()
    run(n)
    t1, w1 = time.thread_time(), time.perf_counter()
    wideevents.flush(timeout=30.0)
    p1 = time.process_time()
    return (t1 - t0) * 1e6 / n, (p1 - p0) * 1e6 / n, (w1 - w0) * 1e6 / n


def _compare(bare: Callable[[int], None], wrapped: Callable[[int], None], n: int,
             rounds: int) -> dict[str, float]:
    bare(200)  # warm up both paths (imports, caches, the pipeline worker)
    wrapped(200)
    wideevents.flush(timeout=30.0)
    b: list[tuple[float, float, float]] = []
    w: list[tuple[float, float, float]] = []
    for _ in range(rounds):
        b.append(_measure(bare, n))
        w.append(_measure(wrapped, n))
    med = [statistics.median(x[i] for x in b) for i in range(3)]
    mew = [statistics.median(x[i] for x in w) for i in range(3)]
    return {"bare_thread": med[0], "wrapped_thread": mew[0], "added_thread": mew[0] - med[0],
            "added_total": mew[1] - med[1], "added_wall": mew[2] - med[2]}


def run(quick: bool = False) -> str:
    n, rounds = (2_000, 3) if quick else (20_000, 7)
    with noop_pipeline("bench-middleware", queue_size=n + 1_000):
        asgi_bare = _asgi_app()
        wsgi_bare = _wsgi_app()
        options: dict[str, Any] = {"capture_headers": ["X-Tenant"],
                                   "prediction_id_header": "X-Prediction-ID"}
        cases = [
            ("ASGI, defaults", _asgi_runner(asgi_bare, _asgi_scope([])),
             _asgi_runner(WideEventsMiddleware(asgi_bare), _asgi_scope([]))),
            ("ASGI, traceparent + X-Request-ID + 1 captured header",
             _asgi_runner(asgi_bare, _asgi_scope(_TRACE_HEADERS)),
             _asgi_runner(WideEventsMiddleware(asgi_bare, **options),
                          _asgi_scope(_TRACE_HEADERS))),
            ("WSGI, defaults", _wsgi_runner(wsgi_bare, _environ({})),
             _wsgi_runner(WideEventsWSGIMiddleware(wsgi_bare), _environ({}))),
            ("WSGI, traceparent + X-Request-ID + 1 captured header",
             _wsgi_runner(wsgi_bare, _environ({})),
             _wsgi_runner(WideEventsWSGIMiddleware(wsgi_bare, **options), _environ({
                 "HTTP_X_REQUEST_ID": "3f2c1a9e-8d7b-4c6a-9e5f-1a2b3c4d5e6f",
                 "HTTP_TRACEPARENT": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                 "HTTP_X_TENANT": "acme"}))),
        ]
        results = [(label, _compare(bare, wrapped, n, rounds)) for label, bare, wrapped in cases]
        dropped = sum(wideevents.stats()["dropped"].values())
    lines = [
        "## Middleware overhead per request (in process, no network)",
        "",
        f"Same request to a bare app and to the app wrapped by the middleware, {rounds} "
        f"alternating rounds of {n:,} requests, median per request. Sink: a no-op `export`. "
        "*Request thread* = CPU of the calling thread (`time.thread_time`), wrapped minus "
        "bare; *total CPU* = CPU of the whole process (`time.process_time`) including the "
        "pipeline worker's processing of the event (each round ends with `flush()`), wrapped "
        "minus bare. Events dropped by the pipeline during the run: "
        f"{dropped}.",
        "",
        "| case | bare app, µs | wrapped, µs | added on request thread, µs | added total CPU, µs "
        "| added wall, µs |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, r in results:
        lines.append(f"| {label} | {r['bare_thread']:.1f} | {r['wrapped_thread']:.1f} | "
                     f"{r['added_thread']:.1f} | {r['added_total']:.1f} | "
                     f"{r['added_wall']:.1f} |")
    worst = max(r["added_thread"] for _, r in results)
    verdict = "PASS" if worst < TARGET_US else "FAIL"
    lines += ["", f"Target: added cost on the request thread < {TARGET_US:.0f} µs per request. "
              f"Measured (worst case): {worst:.1f} µs. **{verdict}**"]
    return "\n".join(lines)


if __name__ == "__main__":
    print(run())
