"""A FastAPI app under a real uvicorn, wrapped by the middleware, fanning out to three real
loopback backends (one slow, one answering 500, one that never answers) with httpx (sync
and async) and requests, instrumented by ``wideevents.integrations.clients`` (issue 22)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import requests
from fastapi import FastAPI

from tests.integrations.backends import Backend, parse_traceparent, running
from tests.support.integrations import get_all, memory_pipeline, uvicorn_server, wait_for_events
from wideevents.integrations import clients
from wideevents.integrations.asgi import WideEventsMiddleware
from wideevents.sinks import MemorySink

SLOW_S = 0.05
TIMEOUT_S = 0.3
PEERS = ("slow", "broken", "stalled")


def _outcome(call: Any) -> str:
    try:
        return str(call())
    except (httpx.HTTPError, requests.RequestException) as exc:
        return type(exc).__name__


def build_app(urls: dict[str, str]) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # One client for every /one request, as a service keeps one: a client per request
        # builds an SSL context each time (~10 ms of CPU), which under load made 200
        # concurrent requests time out before any of them was served.
        limits = httpx.Limits(max_connections=400, max_keepalive_connections=400)
        async with httpx.AsyncClient(timeout=30.0, limits=limits) as client:
            app.state.client = client
            yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/httpx-sync")
    def httpx_sync() -> dict[str, Any]:  # FastAPI runs it in its thread pool
        t0 = time.perf_counter()
        with httpx.Client(timeout=TIMEOUT_S) as client:
            out = {p: _outcome(lambda u=u: client.get(u).status_code) for p, u in urls.items()}
        return {"outcomes": out, "wall_ms": (time.perf_counter() - t0) * 1e3}

    @app.get("/httpx-async")
    async def httpx_async() -> dict[str, Any]:
        t0 = time.perf_counter()
        async with httpx.AsyncClient(timeout=TIMEOUT_S) as client:
            async def one(url: str) -> str:
                try:
                    return str((await client.get(url)).status_code)
                except httpx.HTTPError as exc:
                    return type(exc).__name__
            got = await asyncio.gather(*(one(u) for u in urls.values()))
        return {"outcomes": dict(zip(urls, got)), "wall_ms": (time.perf_counter() - t0) * 1e3}

    @app.get("/requests")
    def with_requests() -> dict[str, Any]:
        t0 = time.perf_counter()
        with requests.Session() as session:
            out = {p: _outcome(lambda u=u: session.get(u, timeout=TIMEOUT_S).status_code)
                   for p, u in urls.items()}
        return {"outcomes": out, "wall_ms": (time.perf_counter() - t0) * 1e3}

    @app.get("/one")
    async def one_backend(n: int) -> dict[str, Any]:
        client = app.state.client
        await client.get(f"{urls['slow']}/?n={n}")
        await client.get(f"{urls['slow']}/?n={n}&again=1")
        return {"n": n}

    return app


@pytest.fixture
def backends() -> Iterator[dict[str, Backend]]:
    with running("slow", "error", "stall", delay=SLOW_S) as (slow, broken, stalled):
        yield {"slow": slow, "broken": broken, "stalled": stalled}


@pytest.fixture
def served(backends: dict[str, Backend]) -> Iterator[tuple[str, MemorySink]]:
    urls = {p: b.url for p, b in backends.items()}
    with memory_pipeline() as sink:
        clients.instrument(peer_names={b.hostport: p for p, b in backends.items()})
        try:
            with uvicorn_server(WideEventsMiddleware(build_app(urls))) as base:
                yield base, sink
        finally:
            clients.uninstrument()
            for b in backends.values():
                b.release()


def _check_fan_out(event: dict[str, Any], body: dict[str, Any], concurrent: bool) -> None:
    wall = body["wall_ms"]
    assert {"slow": "200", "broken": "500"} == {p: body["outcomes"][p] for p in ("slow", "broken")}
    assert body["outcomes"]["stalled"] in ("ReadTimeout", "Timeout")
    for prefix in ("http.client.", "rollup.http.client."):
        assert (3, 2) == (event[prefix + "count"], event[prefix + "errors"])
        assert {p: (1, 0 if p == "slow" else 1) for p in PEERS} == {
            p: (event[f"{prefix}{p}.count"], event[f"{prefix}{p}.errors"]) for p in PEERS}
    durations = {p: event[f"http.client.{p}.duration_ms"] for p in PEERS}
    # Lower bounds: what the backends forced; upper bounds: the wall time measured around
    # the calls by the endpoint, itself inside the request's duration.
    assert durations["slow"] >= SLOW_S * 1e3 * 0.95
    assert durations["stalled"] >= TIMEOUT_S * 1e3 * 0.95
    assert all(0 < d <= wall for d in durations.values()), (durations, wall)
    total = event["http.client.duration_ms"]
    assert total == pytest.approx(sum(durations.values()))
    assert total <= (3 * wall if concurrent else wall)
    assert wall <= event["duration_ms"]


@pytest.mark.parametrize("path,concurrent", [("/httpx-sync", False), ("/httpx-async", True),
                                             ("/requests", False)])
def test_request_event_counts_times_and_fails_each_backend(
        served: tuple[str, MemorySink], backends: dict[str, Backend], path: str,
        concurrent: bool) -> None:
    """The request's event carries the count, errors and durations of each backend call, and
    each backend received a traceparent with the request's trace id and span id."""
    base, sink = served
    body = httpx.get(base + path, timeout=30).json()
    (event,) = wait_for_events(sink, 1)
    assert f"GET {path}" == event["name"]
    _check_fan_out(event, body, concurrent)
    for backend in backends.values():
        (traceparent,) = backend.traceparents()
        assert (event["trace.trace_id"], event["trace.span_id"]) == parse_traceparent(traceparent)


def test_child_events_follow_the_http_client_conventions(
        backends: dict[str, Backend]) -> None:
    """child_events=True: one event per call with OpenTelemetry's HTTP client fields, a child
    of the request's event, and the traceparent each backend got names that child."""
    urls = {p: b.url for p, b in backends.items()}
    with memory_pipeline() as sink:
        clients.instrument(peer_names={b.hostport: p for p, b in backends.items()},
                           child_events=True)
        try:
            with uvicorn_server(WideEventsMiddleware(build_app(urls))) as base:
                httpx.get(base + "/httpx-sync", timeout=30)
                events = wait_for_events(sink, 4)
        finally:
            clients.uninstrument()
    (request,) = [e for e in events if e["name"] == "GET /httpx-sync"]
    children = {e["server.port"]: e for e in events if e["name"] == "GET"}
    assert 3 == len(children)
    for peer, backend in backends.items():
        child = children[backend.port]
        assert (request["trace.trace_id"], request["trace.span_id"]) == (
            child["trace.trace_id"], child["trace.parent_id"])
        (traceparent,) = backend.traceparents()
        assert (child["trace.trace_id"], child["trace.span_id"]) == parse_traceparent(traceparent)
        assert {"http.request.method": "GET", "server.address": "127.0.0.1",
                "url.full": backend.url} == {k: child[k] for k in
                                             ("http.request.method", "server.address", "url.full")}
        assert child["duration_ms"] == pytest.approx(request[f"http.client.{peer}.duration_ms"],
                                                     abs=5.0)
    assert 200 == children[backends["slow"].port]["http.response.status_code"]
    assert "error" not in children[backends["slow"].port]
    broken = children[backends["broken"].port]
    assert (500, True, "500") == (broken["http.response.status_code"], broken["error"],
                                  broken["error.type"])
    stalled = children[backends["stalled"].port]
    assert "http.response.status_code" not in stalled
    assert (True, "httpx.ReadTimeout") == (stalled["error"], stalled["error.type"])


@pytest.mark.parametrize("requests_at_once", [
    40, pytest.param(200, marks=pytest.mark.slow)])
def test_nothing_leaks_between_concurrent_requests(
        served: tuple[str, MemorySink], backends: dict[str, Backend],
        requests_at_once: int) -> None:
    """200 (and, in the quick suite, 40) concurrent requests, each calling a backend twice:
    every request's event counts its own two calls, and the backend saw each request's
    trace id exactly twice, with that request's span id."""
    base, sink = served
    n = requests_at_once
    replies = get_all(base, [(f"/one?n={i}", {}) for i in range(n)])
    assert [200] * n == [r.status_code for r in replies]
    events = wait_for_events(sink, n, timeout=60)
    assert n == len(events)
    assert {(2, 2, 0)} == {(e["http.client.count"], e["http.client.slow.count"],
                            e["http.client.errors"]) for e in events}
    assert not any("http.client.broken.count" in e for e in events)
    seen: dict[str, list[str]] = {}
    for traceparent in backends["slow"].traceparents():
        trace_id, span_id = parse_traceparent(traceparent)
        seen.setdefault(trace_id, []).append(span_id)
    assert {e["trace.trace_id"]: [e["trace.span_id"]] * 2 for e in events} == seen
