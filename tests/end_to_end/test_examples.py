"""The examples under real servers: their events carry the promised, typed fields."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.loopback_http import unused_ports

ROOT = Path(__file__).resolve().parent.parent.parent


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited early: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError(f"server at {url} not ready in {timeout} s")


def _serve(cmd: list[str], base: str, events: Path, health: str) -> Iterator[str]:
    env = dict(os.environ, WIDEEVENTS_SINK=f"file:{events}", PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_ready(base + health, proc)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture
def flask_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    events = tmp_path / "events.jsonl"
    port = unused_ports()[0]
    cmd = [sys.executable, "-c",
           "import waitress; from examples.classifier_flask import app; "
           f"waitress.serve(app, host='127.0.0.1', port={port}, threads=8)"]
    for base in _serve(cmd, f"http://127.0.0.1:{port}", events, "/health"):
        yield base, events


@pytest.fixture
def mixer_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    events = tmp_path / "events.jsonl"
    port = unused_ports()[0]
    cmd = [sys.executable, "-m", "uvicorn", "examples.mixer.app:app", "--host", "127.0.0.1",
           "--port", str(port), "--log-level", "warning", f"--app-dir={ROOT}"]
    for base in _serve(cmd, f"http://127.0.0.1:{port}", events, "/health"):
        yield base, events


def _read(path: Path, n: int, timeout: float = 10.0) -> list[dict[str, object]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            lines = path.read_bytes().splitlines()
            if len(lines) >= n:
                return [json.loads(line) for line in lines]
        time.sleep(0.1)
    raise AssertionError(f"expected {n} events in {path}")


def test_flask_classifier_events(flask_server: tuple[str, Path]) -> None:
    """The Flask classifier emits one typed event per request, with model and score fields."""
    base, events = flask_server
    body = {"features": {"age": 41, "income": 52000, "tenure_months": 7, "plan": "pro"}}
    replies = [httpx.post(f"{base}/predict", json=body, timeout=10.0) for _ in range(5)]
    assert [r.status_code for r in replies] == [200] * 5
    bad = httpx.post(f"{base}/predict", json={"features": {"age": "old"}}, timeout=10.0)
    assert bad.status_code == 422
    got = _read(events, 6)
    ok = [e for e in got if e.get("http.response.status_code") == 200]
    assert len(ok) == 5
    by_id = {e["prediction.id"]: e for e in ok}
    assert set(by_id) == {r.json()["prediction_id"] for r in replies}
    e = ok[0]
    assert (e["name"], e["http.route"], e["model.name"], e["model.version"]) == (
        "POST /predict", "/predict", "churn-classifier", "2024-11-03")
    assert isinstance(e["prediction.score"], float) and isinstance(e["score.top1"], float)
    assert e["prediction.label"] in ("stay", "downgrade", "churn")
    assert isinstance(e["feature.age"], int | float) and e["data.oor_count"] == 0
    assert isinstance(e["duration_ms"], float) and isinstance(e["timing.inference_ms"], float)
    failed = [e for e in got if e.get("http.response.status_code") == 422][0]
    assert failed["error"] is True


def test_mixer_example_events(mixer_server: tuple[str, Path]) -> None:
    """The mixer example emits one event per search with retrieval, ranking and shadow fields."""
    base, events = mixer_server
    params = {"q": "red running shoes", "tenant": "globex", "region": "ap-south-1", "user": 10}
    replies = [httpx.get(f"{base}/search", params=params, timeout=10.0) for _ in range(4)]
    assert all(r.status_code == 200 for r in replies)
    assert all(len(r.json()["results"]) == 10 for r in replies)
    got = _read(events, 4)
    assert len(got) == 4  # /health is excluded
    e = got[0]
    assert (e["name"], e["slice.tenant"], e["slice.region"]) == ("GET /search", "globex",
                                                                  "ap-south-1")
    for backend in ("lexical", "vector", "knowledge_graph"):
        assert isinstance(e[f"retrieval.{backend}.candidates"], int)
        assert e[f"retrieval.{backend}.status"] in ("ok", "timeout", "error")
        assert isinstance(e[f"timing.retrieval.{backend}_ms"], float)
    assert e["feature.ctr_prior_mean"] == 0.0 and e["data.oor_count"] >= 1
    assert isinstance(e["shadow.rbo"], float) and isinstance(e["shadow.top1_same"], bool)
    assert isinstance(e["result.ids"], list) and len(e["result.ids"]) == 10
    assert replies[0].headers["X-Prediction-ID"] == replies[0].json()["prediction_id"]


def test_batch_scoring_example(tmp_path: Path) -> None:
    """The batch example writes one scored event per row under its job's trace."""
    out = tmp_path / "scores.jsonl"
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "batch_scoring.py"),
                           "--rows", "3000", "--out", str(out)], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    got = [json.loads(line) for line in out.read_bytes().splitlines()]
    rows = [e for e in got if e["name"] == "score_row"]
    job = [e for e in got if e["name"] == "batch_job"]
    assert len(rows) == 3000 and len(job) == 1
    assert sorted(e["row"] for e in rows) == list(range(3000))
    assert {e["trace.parent_id"] for e in rows} == {job[0]["trace.span_id"]}
    assert all(isinstance(e["score.margin"], float) for e in rows)
