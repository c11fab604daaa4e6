"""FastAPI under a real uvicorn on a loopback port, driven by httpx, wrapped by the middleware."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import structlog
from fastapi import BackgroundTasks, Depends, FastAPI, Header
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

import wideevents
from tests.support.integrations import get_all, memory_pipeline, uvicorn_server, wait_for_events
from wideevents.integrations.asgi import WideEventsMiddleware
from wideevents.integrations.logging import WideEventsHandler
from wideevents.integrations.structlog import AddToEvent
from wideevents.sinks import MemorySink

STREAM_CHUNKS = 4
STREAM_SLEEP_S = 0.05
BG_SLEEP_S = 0.2
late_release: dict[int, threading.Event] = {}
late_threads: dict[int, threading.Thread] = {}


def build_app() -> FastAPI:
    app = FastAPI()
    slog = structlog.wrap_logger(
        structlog.ReturnLogger(),
        processors=[structlog.processors.add_log_level, AddToEvent(),
                    structlog.processors.KeyValueRenderer()],
    )
    pylog = logging.getLogger("tests.asgi_server.app")
    pylog.propagate = False
    pylog.setLevel(logging.INFO)
    if not any(isinstance(h, WideEventsHandler) for h in pylog.handlers):
        pylog.addHandler(WideEventsHandler())

    def current_user(x_user: str = Header(...)) -> str:
        # A sync dependency: FastAPI runs it in its thread pool.
        wideevents.add({"user.id": x_user, "dep.in_thread": not in_event_loop()})
        return x_user

    def helper(item_id: int) -> None:
        wideevents.add({"helper.item": item_id})

    @app.get("/items/{item_id}")
    async def items(item_id: int, user: str = Depends(current_user)) -> dict[str, Any]:
        await asyncio.sleep((item_id * 37 % 10) / 1000)
        wideevents.add({"item.id": item_id})
        await run_in_threadpool(helper, item_id)
        return {"item": item_id, "user": user}

    @app.get("/sync/{n}")
    def sync_endpoint(n: int) -> dict[str, Any]:
        time.sleep(0.005)
        wideevents.add({"sync.n": n, "sync.in_thread": not in_event_loop()})
        return {"n": n}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("kaboom")

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> Any:
            for i in range(STREAM_CHUNKS):
                await asyncio.sleep(STREAM_SLEEP_S)
                wideevents.current_event().incr("stream.chunks")
                yield f"chunk-{i}\n".encode()

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.get("/health")
    async def health() -> dict[str, str]:
        wideevents.add({"health.touched": True})
        return {"ok": "yes"}

    @app.post("/bg/{n}")
    async def with_background(n: int, tasks: BackgroundTasks) -> dict[str, int]:
        def sync_task() -> None:
            time.sleep(BG_SLEEP_S)
            wideevents.add({"bg.sync": n})

        async def async_task() -> None:
            await asyncio.sleep(0.01)
            wideevents.add({"bg.async": n})

        tasks.add_task(sync_task)
        tasks.add_task(async_task)
        return {"n": n}

    @app.get("/late/{n}")
    async def late(n: int) -> dict[str, int]:
        release = late_release[n] = threading.Event()

        def outlive() -> None:
            release.wait(5)
            wideevents.add({"late.field": n})

        t = late_threads[n] = threading.Thread(target=wideevents.in_context(outlive))
        t.start()
        return {"n": n}

    @app.get("/logs/{n}")
    async def logs(n: int) -> dict[str, int]:
        slog.info("start", n=n)
        slog.warning("slow", ms=5)
        pylog.warning("stdlib warning %d", n)
        slog.error("failed", code=n)
        pylog.error("stdlib error %d", n)
        return {"n": n}

    @app.get("/predict")
    async def predict() -> dict[str, str]:
        return {"prediction_id": wideevents.current_event().prediction_id}

    return app


def in_event_loop() -> bool:
    """True on the event loop's thread; False in a worker thread of the pool."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    wrapped = WideEventsMiddleware(build_app(), exclude_paths=["/health"],
                                   prediction_id_header="X-Prediction-ID")
    with uvicorn_server(wrapped) as url:
        yield url


@pytest.fixture()
def sink() -> Iterator[MemorySink]:
    with memory_pipeline() as s:
        yield s


def test_200_concurrent_requests_give_200_events_with_their_own_fields(
        base_url: str, sink: MemorySink) -> None:
    """200 concurrent requests -> exactly 200 events, each holding only its own request's values."""
    n = 200
    paths = [(f"/items/{i}", {"X-Request-ID": f"rid-{i}", "X-User": f"user-{i}"})
             for i in range(n)]
    responses = get_all(base_url, paths)
    assert [200] * n == [r.status_code for r in responses]
    events = wait_for_events(sink, n)
    assert n == len(events)
    expected = {
        f"rid-{i}": {"name": "GET /items/{item_id}", "http.route": "/items/{item_id}",
                     "url.path": f"/items/{i}", "item.id": i, "user.id": f"user-{i}",
                     "helper.item": i, "dep.in_thread": True, "http.response.status_code": 200,
                     "http.request.method": "GET"}
        for i in range(n)
    }
    actual = {e["request.id"]: {k: e.get(k) for k in expected[e["request.id"]]} for e in events}
    assert expected == actual


def test_raising_endpoint_gives_500_event_with_error_fields(base_url: str,
                                                            sink: MemorySink) -> None:
    """An endpoint raising RuntimeError -> client sees 500 and the event carries the error."""
    response = httpx.get(f"{base_url}/boom", timeout=10)
    assert 500 == response.status_code
    [ev] = wait_for_events(sink, 1)
    expected = {"name": "GET /boom", "http.route": "/boom", "http.response.status_code": 500,
                "error": True, "error.type": "RuntimeError", "error.message": "kaboom"}
    assert expected == {k: ev.get(k) for k in expected}


def test_streaming_duration_covers_the_whole_stream(base_url: str, sink: MemorySink) -> None:
    """duration_ms of a streamed response covers every chunk (>= the sleeps, <= client time)."""
    t0 = time.perf_counter()
    response = httpx.get(f"{base_url}/stream", timeout=10)
    client_ms = (time.perf_counter() - t0) * 1000
    body = b"".join(f"chunk-{i}\n".encode() for i in range(STREAM_CHUNKS))
    assert (200, body) == (response.status_code, response.content)
    [ev] = wait_for_events(sink, 1)
    assert (STREAM_CHUNKS, len(body)) == (ev["stream.chunks"], ev["http.response.body.size"])
    assert STREAM_CHUNKS * STREAM_SLEEP_S * 1000 <= ev["duration_ms"] <= client_ms


def test_excluded_paths_emit_nothing(base_url: str, sink: MemorySink) -> None:
    """Requests to an excluded path produce no event; the others still do."""
    get_all(base_url, [("/health", {})] * 3
            + [("/items/1", {"X-User": "u", "X-Request-ID": "only"})])
    events = wait_for_events(sink, 1)
    time.sleep(0.05)
    events = wait_for_events(sink, 1)
    assert [("only", "/items/1")] == [(e["request.id"], e["url.path"]) for e in events]


def test_sync_endpoints_in_the_thread_pool_reach_their_event(base_url: str,
                                                            sink: MemorySink) -> None:
    """Sync endpoints run in the thread pool and add to their own request's event."""
    n = 30
    get_all(base_url, [(f"/sync/{i}", {"X-Request-ID": f"s-{i}"}) for i in range(n)])
    events = wait_for_events(sink, n)
    expected = {f"s-{i}": (i, True, "/sync/{n}") for i in range(n)}
    assert expected == {e["request.id"]: (e.get("sync.n"), e.get("sync.in_thread"),
                                          e.get("http.route")) for e in events}


def test_background_tasks_reach_the_event_and_are_inside_it(base_url: str,
                                                           sink: MemorySink) -> None:
    """Sync and async background tasks add to the request's event, which ends after them."""
    n = 5
    responses = get_all(
        base_url, [(f"/bg/{i}", {"X-Request-ID": f"bg-{i}"}) for i in range(n)], "POST")
    assert [200] * n == [r.status_code for r in responses]
    events = wait_for_events(sink, n)
    expected = {f"bg-{i}": (i, i, "POST /bg/{n}") for i in range(n)}
    assert expected == {e["request.id"]: (e.get("bg.sync"), e.get("bg.async"), e["name"])
                        for e in events}
    for e in events:
        assert e["timing.response_ms"] < BG_SLEEP_S * 1000 <= e["duration_ms"]


def test_fields_added_after_the_request_ended_are_counted_late(base_url: str,
                                                               sink: MemorySink) -> None:
    """A thread that outlives its request adds a field: dropped and counted as late."""
    response = httpx.get(f"{base_url}/late/1", timeout=10)
    assert 200 == response.status_code
    [ev] = wait_for_events(sink, 1)
    late_release[1].set()
    late_threads[1].join(5)
    assert wideevents.flush()
    assert (None, 1) == (ev.get("late.field"),
                         wideevents.stats()["fields"]["dropped"].get("late"))


def test_structlog_and_logging_bridges_fill_the_event(base_url: str, sink: MemorySink) -> None:
    """Both bridges add their counts, messages, last error and fields to the request's event."""
    get_all(base_url, [(f"/logs/{i}", {"X-Request-ID": f"log-{i}"}) for i in range(10)])
    events = wait_for_events(sink, 10)
    expected = {
        f"log-{i}": {"log.n": i, "log.ms": 5, "log.code": i, "log.info_count": 1,
                     "log.warning_count": 2, "log.error_count": 2,
                     "log.messages": ["start", "slow", "failed"],
                     "log.last_error": f"stdlib error {i}"}
        for i in range(10)
    }
    assert expected == {e["request.id"]: {k: e.get(k) for k in expected[e["request.id"]]}
                        for e in events}


def test_prediction_id_is_returned_in_the_response_header(base_url: str,
                                                          sink: MemorySink) -> None:
    """X-Prediction-ID carries the event's prediction.id; requests without one get no header."""
    response = httpx.get(f"{base_url}/predict", timeout=10)
    plain = httpx.get(f"{base_url}/sync/1", timeout=10)
    events = wait_for_events(sink, 2)
    by_path = {e["url.path"]: e for e in events}
    pid = response.json()["prediction_id"]
    assert (pid, pid) == (response.headers.get("x-prediction-id"),
                          by_path["/predict"]["prediction.id"])
    assert (None, None) == (plain.headers.get("x-prediction-id"),
                            by_path["/sync/1"].get("prediction.id"))


def test_traceparent_from_a_real_client_is_honoured(base_url: str, sink: MemorySink) -> None:
    """An incoming traceparent makes the event a child of the caller's span."""
    trace_id, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    httpx.get(f"{base_url}/sync/2", headers={"traceparent": f"00-{trace_id}-{parent}-01"},
              timeout=10)
    [ev] = wait_for_events(sink, 1)
    assert (trace_id, parent) == (ev["trace.trace_id"], ev["trace.parent_id"])
