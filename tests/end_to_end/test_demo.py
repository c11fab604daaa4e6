"""`wideevents demo` end to end: real uvicorn, real traffic, tables that reveal each incident."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent


def _tables(stdout: str) -> dict[str, list[dict[str, str]]]:
    """Parse the demo's printed tables: {section title: rows as dicts of column -> cell}."""
    tables: dict[str, list[dict[str, str]]] = {}
    for block in stdout.split("\n## ")[1:]:
        title = block.splitlines()[0].strip()
        lines = block.splitlines()
        for i, line in enumerate(lines):
            if re.fullmatch(r"-+(\s+-+)*", line.strip() or "x"):
                header = re.split(r"\s{2,}", lines[i - 1].strip())
                rows = []
                for row in lines[i + 1:]:
                    if not row.strip():
                        break
                    rows.append(dict(zip(header, re.split(r"\s{2,}", row.strip()))))
                tables[title] = rows
                break
    return tables


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    cwd = tmp_path_factory.mktemp("demo")
    proc = subprocess.run([sys.executable, "-m", "wideevents._cli", "demo", "--requests", "300"],
                          cwd=cwd, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout, cwd / "events.jsonl"


def test_demo_writes_one_event_per_request(demo_run: tuple[str, Path]) -> None:
    """events.jsonl holds exactly one search event per request plus the feedback events."""
    _, path = demo_run
    events = [json.loads(line) for line in path.read_bytes().splitlines()]
    searches = [e for e in events if e["name"] == "GET /search"]
    feedback = [e for e in events if e["name"] == "feedback"]
    assert len(searches) == 300
    assert len(searches) + len(feedback) == len(events)
    assert len({e["request.id"] for e in searches}) == 300
    assert {e["prediction.id"] for e in feedback} <= {e["prediction.id"] for e in searches}


def test_demo_reveals_the_slow_backend_region(demo_run: tuple[str, Path]) -> None:
    """The first table shows vector timeouts concentrated in ap-south-1."""
    rows = _tables(demo_run[0])["Which backend is slow, and for whom?"]
    timeouts = {r["slice.region"]: int(r["COUNT"]) for r in rows
                if r["retrieval.vector.status"] == "timeout"}
    assert timeouts.get("ap-south-1", 0) >= 20
    assert sum(v for k, v in timeouts.items() if k != "ap-south-1") * 5 < timeouts["ap-south-1"]


def test_demo_reveals_the_zero_feature_tenant(demo_run: tuple[str, Path]) -> None:
    """The tenant table shows globex with a zero click-through prior and most violations."""
    rows = _tables(demo_run[0])["Which tenant's features drifted?"]
    by_tenant = {r["slice.tenant"]: r for r in rows}
    assert float(by_tenant["globex"]["AVG(feature.ctr_prior_mean)"]) == 0.0
    assert all(float(r["AVG(feature.ctr_prior_mean)"]) > 0.01 for t, r in by_tenant.items()
               if t != "globex")
    assert rows[0]["slice.tenant"] == "globex"


def test_demo_reveals_the_nonfinite_canary(demo_run: tuple[str, Path]) -> None:
    """Only the canary version appears among requests with non-finite scores."""
    rows = _tables(demo_run[0])["Which model version emits non-finite scores?"]
    assert [r["model.version"] for r in rows] == ["2024-11-20"]
    assert int(rows[0]["COUNT"]) >= 1


def test_demo_prints_reproducible_commands(demo_run: tuple[str, Path]) -> None:
    """Each table comes with the `wideevents query` command line that reproduces it."""
    stdout, path = demo_run
    commands = [line[2:] for line in stdout.splitlines() if line.startswith("$ wideevents query")]
    assert len(commands) == 5
    first = commands[0].replace("events.jsonl", str(path))
    proc = subprocess.run([sys.executable, "-c",
                           "import shlex, sys; from wideevents._cli import main; "
                           "sys.exit(main(shlex.split(sys.argv[1])[1:]))", first],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    table = stdout.split(commands[0])[1].split("\n## ")[0].strip()
    assert proc.stdout.strip() == table
