"""PrometheusSink under gunicorn with 2 workers in prometheus_client's multiprocess mode
(``PROMETHEUS_MULTIPROC_DIR``; the app and hooks of tests/integrations/prometheus_gunicorn_*),
scraped by a real Prometheus server (tests/integrations/prometheus_server.py): the totals
Prometheus reads, whichever worker answers the scrape, are those of both workers' events.
Skipped, with the install command, when ``prometheus`` is absent."""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integrations.prometheus_server import needs_prometheus, prometheus_server
from tests.integrations.test_prometheus_server import bucket, plan, weighted_p99
from tests.support.reliability import (
    child_env,
    group,
    listening_socket,
    spread_over_workers,
)
from wideevents.sampling import DeterministicSampler

pytestmark = needs_prometheus

N = 300
CLIENTS = 12


def send_all(port: int, paths: list[str]) -> list[int]:
    """GET every path from several client threads on fresh connections (so the requests
    spread over both workers); the status codes in order."""
    return spread_over_workers(
        port, [lambda c, p=p: c.get(p).status_code for p in paths], CLIENTS)


def read_events(directory: Path) -> dict[str, list[dict[str, Any]]]:
    """The complete lines of each worker's event file, by file name."""
    out: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(directory.glob("events-*.jsonl")):
        text = path.read_text()
        out[path.name] = [json.loads(line) for line in text[:text.rfind("\n") + 1].splitlines()]
    return out


def wait_for_lines(directory: Path, count: int, timeout: float = 60.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        events = [e for lines in read_events(directory).values() for e in lines]
        if len(events) >= count or time.monotonic() > deadline:
            assert count == len(events), "the workers did not write every kept event"
            return events
        time.sleep(0.05)


# Unsampled and preloaded: slow-marked only to keep the quick suite short.
@pytest.mark.parametrize(("rate", "preload"), [pytest.param(1, False, marks=pytest.mark.slow),
                                               (4, False),
                                               pytest.param(4, True, marks=pytest.mark.slow)])
def test_gunicorn_two_workers_multiprocess_totals_through_prometheus(
        rate: int, preload: bool, tmp_path: Path) -> None:
    """gunicorn, 2 gthread workers (the app imported in each, or once in the master with
    --preload: wideevents and the sink are then built before the fork),
    PROMETHEUS_MULTIPROC_DIR, DeterministicSampler(rate):
    ``sum by (model_version) (wideevents_events_total)`` through Prometheus equals the sum
    of the kept events' sample rates over both workers (N exactly when unsampled), and the
    p99 is within one bucket of numpy's."""
    mp_dir, events_dir = tmp_path / "multiproc", tmp_path / "events"
    mp_dir.mkdir()
    events_dir.mkdir()
    requests = plan(N)
    # Only to know how many lines to wait for; the expected values come from the lines.
    sampler = DeterministicSampler(rate, key="request.key")
    will_keep = sum(1 for i in range(N) if sampler({"request.key": f"k{i}"}))
    sock = listening_socket()
    port = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "gunicorn", "--workers", "2", "--worker-class", "gthread",
           "--threads", "8", *(["--preload"] if preload else []), "--no-control-socket", "--bind", f"fd://{sock.fileno()}",
           "-c", "python:tests.integrations.prometheus_gunicorn_conf",
           "tests.integrations.prometheus_gunicorn_app:app"]
    env = child_env(PROMETHEUS_MULTIPROC_DIR=str(mp_dir), PROM_RATE=str(rate),
                    PROM_EVENTS=str(events_dir / "events-{pid}.jsonl"))
    with group(cmd, env=env, pass_fds=[sock.fileno()]) as proc:
        sock.close()
        with prometheus_server(tmp_path / "prometheus", [f"127.0.0.1:{port}"]) as prometheus:
            codes = send_all(port, [f"/predict/{v}?ms={ms}&key=k{i}&fail={int(fail)}"
                                    for i, (v, ms, fail) in enumerate(requests)])
            assert [500 if f else 200 for _, _, f in requests] == codes
            kept = wait_for_lines(events_dir, will_keep)
            measured = time.time()
            prometheus.scraped_after(measured)
            by_version = prometheus.by("sum by (model_version) (wideevents_events_total)",
                                       "model_version")
            p99 = prometheus.scalar("histogram_quantile(0.99, sum by (le) "
                                    "(wideevents_event_duration_seconds_bucket))")
        proc.send_signal(signal.SIGTERM)
        assert 0 == proc.wait(60)
    # With --preload the master configured wideevents too: its file stays empty.
    per_worker = {name: len(lines) for name, lines in read_events(events_dir).items()
                  if lines}
    assert 2 == len(per_worker), per_worker
    assert 2 == len(list(mp_dir.glob("counter_*.db"))), sorted(p.name for p in mp_dir.iterdir())
    assert {"/predict/<version>"} == {e.get("http.route") for e in kept}  # scrapes: no events
    expected = {v: float(sum(e.get("samplerate", 1) for e in kept
                             if e["model.version"] == v)) for v in ("v1", "v2")}
    assert expected == by_version
    if rate == 1:
        assert {v: float(sum(1 for w, _, _ in requests if w == v)) for v in ("v1", "v2")} \
            == by_version
    else:
        assert len(kept) < N
    numpy_p99 = weighted_p99(kept)
    assert abs(bucket(p99) - bucket(numpy_p99)) <= 1, (p99, numpy_p99)
