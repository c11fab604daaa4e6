"""A real Prometheus server for the PrometheusSink tests (Debian's ``prometheus`` package).

:func:`prometheus_server` starts ``prometheus`` on a loopback port with a temporary
configuration (one job, ``app``, scraping the given targets every second) and a temporary
storage directory, waits until it is ready (``GET /-/ready``) and stops it (SIGTERM, then
SIGKILL) when the block ends. Queries go through its HTTP API (Prometheus docs, "HTTP API":
``GET /api/v1/query``, ``{"status": "success", "data": {"resultType": "vector", ...}}``).

:meth:`Prometheus.scraped_after` waits until a scrape *started* after a given moment:
``up`` is written for every scrape (Prometheus docs, "Jobs and instances"), and every
sample of a scrape, ``up`` included, is stamped with the time the scrape started
(prometheus/scrape/scrape.go, ``scrapeLoop.scrapeAndReport``: ``appendTime`` is taken
before the target is asked; ``ScrapeTimestampTolerance`` may move it to the scheduled
time, at most 2 ms later). So ``timestamp(up) > t + 0.01`` means the target was asked
after ``t``, when the test knows the application had measured every event; instant
queries after that see those values. No timing assumption beyond generous bounds.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.loopback_http import unused_ports

PROMETHEUS = shutil.which("prometheus")
needs_prometheus = pytest.mark.skipif(
    PROMETHEUS is None, reason="needs the Prometheus server from Debian's prometheus package: "
    "apt-get install prometheus")

CONFIG = """\
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: app
    metrics_path: {path}
    static_configs:
      - targets: [{targets}]
"""


# More than Prometheus' ScrapeTimestampTolerance (2 ms): a scrape's stamp may be that much
# later than its start (module doc).
_ALIGN = 0.01


class Prometheus:
    """A running server: its base URL and queries through its HTTP API."""

    def __init__(self, url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
        self.url = url
        self.proc = proc
        self.log = log
        self.http = httpx.Client(base_url=url, timeout=30.0)

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector ``expr`` evaluates to now: ``[{"metric": {...}, "value":
        [t, "text"]}, ...]``."""
        reply = self.http.get("/api/v1/query", params={"query": expr})
        body = reply.json()
        assert "success" == body.get("status"), (expr, reply.status_code, body)
        assert "vector" == body["data"]["resultType"], body
        return list(body["data"]["result"])

    def by(self, expr: str, label: str) -> dict[str, float]:
        """``expr``'s values keyed by one label."""
        return {r["metric"].get(label, ""): float(r["value"][1]) for r in self.query(expr)}

    def scalar(self, expr: str) -> float:
        """The value of an ``expr`` that yields one series."""
        found = self.query(expr)
        assert 1 == len(found), (expr, found)
        return float(found[0]["value"][1])

    def scraped_after(self, moment: float, timeout: float = 60.0) -> None:
        """Wait until every target was scraped successfully by a scrape that started after
        ``moment`` (``time.time()``); fail after ``timeout`` s, with the server's log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.query('timestamp(up{job="app"}) and up{job="app"} == 1')
            targets = self.query('up{job="app"}')
            if targets and len(found) == len(targets) and all(
                    float(r["value"][1]) > moment + _ALIGN for r in found):
                return
            time.sleep(0.2)
        raise AssertionError(f"no successful scrape after {moment}: {self.query('up')}; "
                             f"prometheus log:\n{self.log.read_text()[-3000:]}")


@contextmanager
def prometheus_server(tmp: Path, targets: Sequence[str],
                      metrics_path: str = "/metrics") -> Iterator[Prometheus]:
    """Run Prometheus scraping ``targets`` (``host:port``) every second (module doc)."""
    assert PROMETHEUS is not None
    tmp.mkdir(parents=True, exist_ok=True)
    config = tmp / "prometheus.yml"
    config.write_text(CONFIG.format(path=metrics_path,
                                    targets=", ".join(f'"{t}"' for t in targets)))
    log = tmp / "prometheus.log"
    for _ in range(5):  # a port taken between unused_ports() and the bind: another one
        port = unused_ports()[0]
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp / 'data'}",
                 f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=tmp)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        ready = False
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                ready = httpx.get(f"{url}/-/ready", timeout=5.0).status_code == 200
            except httpx.HTTPError:
                ready = False
            if ready:
                break
            time.sleep(0.1)
        if ready:
            break
        _stop(proc)
        if "address already in use" not in log.read_text():
            raise AssertionError(f"prometheus did not start:\n{log.read_text()[-3000:]}")
    else:
        raise AssertionError("prometheus found no free loopback port in 5 tries")
    server = Prometheus(url, proc, log)
    try:
        yield server
    finally:
        server.http.close()
        _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(20)
