"""`wideevents demo`'s analysis steps (issue 19): the incidents found by `compare`, `drift`
and `calibration`, each printed with the command that reproduces it, and `profile.json`
saved beside `events.jsonl`."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from wideevents.query import calibration, compare, drift

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    cwd = tmp_path_factory.mktemp("demo19")
    proc = subprocess.run([sys.executable, "-m", "wideevents._cli", "demo", "--requests", "1000"],
                          cwd=cwd, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout, cwd


def _section(stdout: str, title: str) -> str:
    return stdout.split(f"\n## {title}\n")[1].split("\n## ")[0]


@pytest.mark.slow
def test_profile_is_saved_beside_the_events(demo: tuple[str, Path]) -> None:
    """profile.json is a Profile v2 document with the mixer's seven features."""
    doc = json.loads((demo[1] / "profile.json").read_text())
    assert ("wideevents.profile", 2, 7) == (doc["format"], doc["version"], len(doc["features"]))


@pytest.mark.slow
def test_drift_finds_the_zero_feature_tenant(demo: tuple[str, Path]) -> None:
    """Against the saved profile, globex's click-through prior drifts significantly and is
    the worst feature of the worst group, its PSI far beyond that feature's in any other
    tenant (there the slow region's lost candidates only widen it a little)."""
    cwd = demo[1]
    result = drift([cwd / "events.jsonl"], profile=cwd / "profile.json",
                   breakdown="slice.tenant", cache=False)
    groups = {g["group"]: g for g in result.groups or []}
    worst = result.groups[0] if result.groups else {}
    assert ("globex", "feature.ctr_prior_mean", "significant") == (
        worst["group"], worst["features"][0]["feature"], worst["features"][0]["level"])
    ctr = {tenant: next(f["psi"] for f in group["features"]
                        if f["feature"] == "feature.ctr_prior_mean")
           for tenant, group in groups.items()}
    assert all(ctr["globex"] > 5 * psi for tenant, psi in ctr.items() if tenant != "globex")


@pytest.mark.slow
def test_calibration_reveals_the_overconfident_canary(demo: tuple[str, Path]) -> None:
    """The canary's ECE is large and above the champion's: only the feedback shows it."""
    cwd = demo[1]
    groups = {g["group"]: g for g in calibration([cwd / "events.jsonl"], breakdown="model.version",
                                                 bins=5, cache=False).groups}
    canary, champion = groups["2024-11-20"]["ece"], groups["2024-11-03"]["ece"]
    assert (True, True) == (canary > 0.1, canary > champion), (canary, champion)


@pytest.mark.slow
def test_compare_puts_the_slow_region_first_among_request_fields(demo: tuple[str, Path]) -> None:
    """Among fields that are not timings (the mixer's timing.*/retrieval.* and the client
    instrumentation's http.client.* of the same backend calls), the slow requests differ
    most by region."""
    cwd = demo[1]
    result = compare([cwd / "events.jsonl"], where="duration_ms > 60",
                     baseline=["name = GET /search", "duration_ms <= 60"], limit=20, cache=False)
    timings = ("timing.", "retrieval.", "http.client.", "rollup.http.client.")
    plain = [f for f in result.fields if not f["column"].startswith(timings)]
    assert "slice.region" == plain[0]["column"]
    assert "ap-south-1" == plain[0]["top"][0]["value"]


@pytest.mark.slow
def test_each_analysis_prints_the_command_that_reproduces_it(demo: tuple[str, Path]) -> None:
    """The printed command, run in the demo's directory, prints the same text."""
    stdout, cwd = demo
    commands = [line[2:] for line in stdout.splitlines()
                if line.startswith(("$ wideevents compare", "$ wideevents drift",
                                    "$ wideevents calibration"))]
    assert 3 == len(commands)
    for command in commands:
        proc = subprocess.run([sys.executable, "-m", "wideevents._cli",
                               *shlex.split(command)[1:]],
                              capture_output=True, text=True, timeout=120, cwd=cwd)
        assert proc.returncode == 0, proc.stderr
        shown = stdout.split(f"$ {command}\n")[1].split("\n## ")[0].split("\nEvery field")[0]
        assert shown.strip() == proc.stdout.strip()
