"""PrometheusSink scraped by a real Prometheus server (Debian's ``prometheus`` package),
started by each test on loopback with a temporary storage directory and a 1 s scrape
interval (tests/integrations/prometheus_server.py); values read back through Prometheus'
HTTP API. The applications: FastAPI under a real uvicorn with ``make_asgi_app()`` mounted,
``prometheus_client.start_http_server``, and Flask under gunicorn with 2 workers in the
client's multiprocess mode (tests/integrations/test_prometheus_gunicorn.py). Skipped, with
the install command, when ``prometheus`` is absent."""

from __future__ import annotations

import asyncio
import time
from bisect import bisect_left
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, make_asgi_app, start_http_server

import wideevents
from tests.integrations.prometheus_server import needs_prometheus, prometheus_server
from tests.support.integrations import get_all, uvicorn_server
from wideevents.integrations.asgi import WideEventsMiddleware
from wideevents.sampling import DeterministicSampler
from wideevents.sinks import MemorySink, PrometheusSink
from wideevents.sinks._prometheus._spec import DEFAULT_BUCKETS

pytestmark = needs_prometheus

N = 400
# Sleeps (ms) spread over the default buckets, with a tail: 1 request in 40 takes 600 ms,
# so that the p99 falls in the tail's buckets.
SLEEPS_MS = (1, 3, 8, 15, 30, 45, 70, 120)


def plan(n: int) -> list[tuple[str, int, bool]]:
    """Request i: (model version, sleep in ms, whether the handler raises); ~30 % go to the
    canary v2, 1 in 20 fails."""
    return [("v2" if i % 10 < 3 else "v1", 600 if i % 40 == 39 else SLEEPS_MS[i % 8],
             i % 20 == 7) for i in range(n)]


def build_app(registry: CollectorRegistry) -> Any:
    """The docs/prometheus.md FastAPI recipe: ``make_asgi_app()`` mounted at /metrics, left
    out of the wide events (``exclude_paths``) so scrapes are not counted as traffic."""
    app = FastAPI()

    @app.get("/predict/{version}")
    async def predict(version: str, ms: int, key: str, fail: int = 0) -> dict[str, str]:
        await asyncio.sleep(ms / 1000)
        wideevents.current_event().model("ranker", version)
        wideevents.add({"request.key": key})
        if fail:
            raise RuntimeError("model failed")
        return {"version": version}

    app.mount("/metrics", make_asgi_app(registry=registry))
    app.add_middleware(WideEventsMiddleware, exclude_paths=["/metrics", "/metrics/*"])
    return app


@contextmanager
def configured(prom: PrometheusSink, **kwargs: Any) -> Iterator[MemorySink]:
    """The sink first, then a MemorySink holding the events as kept (after the sampler);
    the autouse fixture of tests/conftest.py shuts the pipeline down."""
    memory = MemorySink()
    wideevents.configure(service_name="ranker-api", sinks=[prom, memory], **kwargs)
    yield memory


def weighted_p99(events: list[dict[str, Any]]) -> float:
    """numpy's P99 of the events' durations in seconds, each repeated samplerate times."""
    seconds = np.array([e["duration_ms"] / 1000.0 for e in events])
    rates = np.array([e.get("samplerate", 1) for e in events])
    return float(np.percentile(np.repeat(seconds, rates), 99))


def bucket(seconds: float) -> int:
    """The index of the histogram bucket holding ``seconds`` (its upper bound >= it)."""
    return bisect_left(DEFAULT_BUCKETS, seconds)


# Unsampled: slow-marked only to keep the quick suite short (the sampled run covers more).
@pytest.mark.parametrize("rate", [pytest.param(1, marks=pytest.mark.slow), 4])
def test_uvicorn_counts_through_prometheus_equal_the_events_sent(rate: int,
                                                                 tmp_path: Path) -> None:
    """FastAPI under uvicorn, a DeterministicSampler(rate) in front: through Prometheus,
    ``sum by (model_version) (wideevents_events_total)`` equals the kept events' sample
    rates summed (N exactly when unsampled) and the p99 is within one bucket of numpy's."""
    registry = CollectorRegistry()
    requests = plan(N)
    sampler = DeterministicSampler(rate, key="request.key")
    with configured(PrometheusSink(registry=registry), sampler=sampler) as memory, \
            uvicorn_server(build_app(registry)) as base:
        host = base.removeprefix("http://")
        with prometheus_server(tmp_path / "prometheus", [host]) as prometheus:
            replies = get_all(base, [(f"/predict/{v}?ms={ms}&key=k{i}&fail={int(fail)}", {})
                                     for i, (v, ms, fail) in enumerate(requests)])
            assert [500 if f else 200 for _, _, f in requests] == [r.status_code
                                                                   for r in replies]
            assert wideevents.flush(timeout=30.0)
            measured = time.time()
            kept = list(memory.events)
            prometheus.scraped_after(measured)
            by_version = prometheus.by("sum by (model_version) (wideevents_events_total)",
                                       "model_version")
            p99 = prometheus.scalar("histogram_quantile(0.99, sum by (le) "
                                    "(wideevents_event_duration_seconds_bucket))")
            errors = prometheus.scalar('sum(wideevents_events_total{error="true"})')
    assert {"/predict/{version}"} == {e.get("http.route") for e in kept}  # scrapes: no events
    expected = {v: float(sum(e.get("samplerate", 1) for e in kept
                             if e["model.version"] == v)) for v in ("v1", "v2")}
    assert expected == by_version
    assert float(sum(e.get("samplerate", 1) for e in kept if e.get("error"))) == errors
    if rate == 1:
        assert {v: float(sum(1 for w, _, _ in requests if w == v)) for v in ("v1", "v2")} \
            == by_version
        assert N == len(kept)
    else:
        assert len(kept) < N  # the sampler did drop events: the weights matter
    numpy_p99 = weighted_p99(kept)
    assert abs(bucket(p99) - bucket(numpy_p99)) <= 1, (p99, numpy_p99)


def test_ten_thousand_user_ids_as_a_label_stay_within_max_series(tmp_path: Path) -> None:
    """labels=["name", "user.id"], 10,000 distinct ids, max_series=100, exposed with
    ``start_http_server``: Prometheus sees 101 series per metric, the 9,900 later ids in the
    ``__other__`` series, and stats() counts them."""
    registry = CollectorRegistry()
    sink = PrometheusSink(registry=registry, labels=["name", "user.id"], max_series=100)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        with configured(sink, queue_size=20_000):
            for i in range(10_000):
                with wideevents.event("lookup") as ev:
                    ev.add({"user.id": f"user-{i:05d}"})
            assert wideevents.flush(timeout=60.0)
            stats = wideevents.stats()
            measured = time.time()
            with prometheus_server(tmp_path / "prometheus",
                                   [f"127.0.0.1:{server.server_port}"]) as prometheus:
                prometheus.scraped_after(measured)
                counters = prometheus.scalar("count(wideevents_events_total)")
                histograms = prometheus.scalar("count(wideevents_event_duration_seconds_count)")
                other = prometheus.scalar(
                    'wideevents_events_total{name="__other__", user_id="__other__"}')
                total = prometheus.scalar("sum(wideevents_events_total)")
                named = prometheus.by('wideevents_events_total{user_id!="__other__"}',
                                      "user_id")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
    assert (101.0, 101.0, 9900.0, 10_000.0) == (counters, histograms, other, total)
    assert {f"user-{i:05d}": 1.0 for i in range(100)} == named
    assert 9900 == stats["fields"]["dropped"]["series_limit"]
    assert (100, 9900) == (sink.stats()["series"], sink.stats()["overflow"])
