"""Flask under a real waitress on a loopback port, driven by httpx, wrapped by the middleware."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import structlog
from flask import Flask, Response, request, stream_with_context

import wideevents
from tests.support.integrations import get_all, memory_pipeline, wait_for_events, waitress_server
from wideevents.integrations.logging import WideEventsHandler
from wideevents.integrations.structlog import AddToEvent
from wideevents.integrations.wsgi import WideEventsWSGIMiddleware
from wideevents.sinks import MemorySink

STREAM_CHUNKS = 4
STREAM_SLEEP_S = 0.05


def build_app() -> Flask:
    app = Flask("wsgi_server_tests")
    slog = structlog.wrap_logger(
        structlog.ReturnLogger(),
        processors=[structlog.processors.add_log_level, AddToEvent(),
                    structlog.processors.KeyValueRenderer()],
    )
    pylog = logging.getLogger("tests.wsgi_server.app")
    pylog.propagate = False
    pylog.setLevel(logging.INFO)
    if not any(isinstance(h, WideEventsHandler) for h in pylog.handlers):
        pylog.addHandler(WideEventsHandler())

    @app.get("/items/<int:item_id>")
    def items(item_id: int) -> dict[str, Any]:
        time.sleep((item_id * 37 % 10) / 1000)
        wideevents.add({"item.id": item_id, "user.id": request.headers.get("X-User"),
                        "item.thread": threading.current_thread().name})
        return {"item": item_id}

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("kaboom")

    @app.get("/stream")
    def stream() -> Response:
        def chunks() -> Any:
            for i in range(STREAM_CHUNKS):
                time.sleep(STREAM_SLEEP_S)
                wideevents.current_event().incr("stream.chunks")
                yield f"chunk-{i}\n"

        return Response(stream_with_context(chunks()), mimetype="text/plain")

    @app.get("/health")
    def health() -> dict[str, str]:
        wideevents.add({"health.touched": True})
        return {"ok": "yes"}

    @app.get("/logs/<int:n>")
    def logs(n: int) -> dict[str, int]:
        slog.info("start", n=n)
        pylog.warning("stdlib warning %d", n)
        slog.error("failed", code=n)
        return {"n": n}

    @app.get("/predict")
    def predict() -> dict[str, str]:
        return {"prediction_id": wideevents.current_event().prediction_id}

    return app


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    app = build_app()
    app.wsgi_app = WideEventsWSGIMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, exclude_paths=["/health"], prediction_id_header="X-Prediction-ID")
    with waitress_server(app) as url:
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
        f"rid-{i}": {"name": "GET /items/<int:item_id>", "http.route": "/items/<int:item_id>",
                     "url.path": f"/items/{i}", "item.id": i, "user.id": f"user-{i}",
                     "http.response.status_code": 200, "http.request.method": "GET"}
        for i in range(n)
    }
    actual = {e["request.id"]: {k: e.get(k) for k in expected[e["request.id"]]} for e in events}
    assert expected == actual
    # The requests really ran concurrently, on several of waitress's worker threads.
    assert len({e["item.thread"] for e in events}) > 1


def test_raising_endpoint_gives_500_event_with_error_fields(base_url: str,
                                                            sink: MemorySink) -> None:
    """Flask answers 500 for an endpoint that raises; the event records the exception.

    As the ASGI side and OpenTelemetry's Flask instrumentation (``_teardown_request(exc)``)
    do: the exception's type and message, the status code in its own field.
    """
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
    get_all(base_url, [("/health", {})] * 3 + [("/items/1", {"X-Request-ID": "only"})])
    wait_for_events(sink, 1)
    time.sleep(0.05)
    events = wait_for_events(sink, 1)
    assert [("only", "/items/1")] == [(e["request.id"], e["url.path"]) for e in events]


def test_structlog_and_logging_bridges_fill_the_event(base_url: str, sink: MemorySink) -> None:
    """Both bridges add counts, messages, the last error and fields to the request's event."""
    get_all(base_url, [(f"/logs/{i}", {"X-Request-ID": f"log-{i}"}) for i in range(10)])
    events = wait_for_events(sink, 10)
    expected = {
        f"log-{i}": {"log.n": i, "log.code": i, "log.info_count": 1, "log.warning_count": 1,
                     "log.error_count": 1, "log.messages": ["start", "failed"],
                     "log.last_error": "failed"}
        for i in range(10)
    }
    assert expected == {e["request.id"]: {k: e.get(k) for k in expected[e["request.id"]]}
                        for e in events}


def test_prediction_id_is_returned_in_the_response_header(base_url: str,
                                                          sink: MemorySink) -> None:
    """X-Prediction-ID carries the event's prediction.id."""
    response = httpx.get(f"{base_url}/predict", timeout=10)
    [ev] = wait_for_events(sink, 1)
    pid = response.json()["prediction_id"]
    assert (pid, pid) == (response.headers.get("x-prediction-id"), ev["prediction.id"])
