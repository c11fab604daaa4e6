"""The ``wideevents`` command, run as a user would: in a subprocess."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.support.json_lines import parse_lines

CONSOLE_SCRIPT = Path(sys.executable).parent / "wideevents"


def cli_command() -> list[str]:
    """The installed console script when present, else the module."""
    if CONSOLE_SCRIPT.exists():
        return [str(CONSOLE_SCRIPT)]
    return [sys.executable, "-m", "wideevents._cli"]


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("WIDEEVENTS_", "OTEL_", "HONEYCOMB_"))}


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*cli_command(), *args], capture_output=True, text=True, timeout=120,
                          env=clean_env(), cwd=str(cwd))


def read_events(path: Path) -> list[dict[str, Any]]:
    data = path.read_bytes()
    assert data.endswith(b"\n")
    return parse_lines(data)


def _has_simple_demo() -> bool:
    proc = subprocess.run([*cli_command(), "demo", "--help"], capture_output=True, text=True,
                          timeout=60, env=clean_env())
    return "--simple" in proc.stdout


# The full demo (the default) and, where the CLI has it, the tiny classifier loop.
DEMO_VARIANTS = [
    pytest.param((), id="default"),
    pytest.param(("--simple",), id="simple", marks=pytest.mark.skipif(
        not _has_simple_demo(), reason="this build's demo has no --simple variant")),
]


@pytest.fixture(scope="module", params=DEMO_VARIANTS)
def demo_run(request: pytest.FixtureRequest,
             tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str],
                                                                Path, tuple[str, ...]]:
    """One ``wideevents demo --requests 60`` run per variant, shared by the demo tests."""
    extra: tuple[str, ...] = request.param
    workdir = tmp_path_factory.mktemp("demo")
    out = workdir / "events.jsonl"
    proc = run_cli("demo", *extra, "--requests", "60", "--seed", "7", "--out", str(out),
                   cwd=workdir)
    return proc, out, extra


def request_events(path: Path) -> list[dict[str, Any]]:
    """The demo's per-request events (outcome events are named ``feedback``)."""
    return [e for e in read_events(path) if e["name"] != "feedback"]


def test_demo_writes_60_request_events_with_model_version(demo_run: tuple[Any, Path, Any]) -> None:
    """`wideevents demo --requests 60 --out PATH` exits 0; PATH holds 60 strict-JSON requests."""
    proc, out, extra = demo_run
    assert proc.returncode == 0, proc.stderr
    events = request_events(out)  # parses every line of PATH strictly
    assert len(events) == 60
    assert len({e["trace.trace_id"] for e in events}) == 60
    assert all(isinstance(e["duration_ms"], float) for e in events)
    if "--simple" in extra:
        # The classifier loop fails some requests before the model runs: checked below.
        events = [e for e in events if not e.get("error")]
    assert [("model.version" in e) for e in events] == [True] * len(events)
    assert len({e["model.version"] for e in events}) >= 2


def test_demo_summary_names_every_model_version(demo_run: tuple[Any, Path, Any]) -> None:
    """The printed summary mentions every model.version found in the written events."""
    proc, out, _ = demo_run
    assert proc.returncode == 0, proc.stderr
    versions = {str(e["model.version"]) for e in read_events(out) if "model.version" in e}
    assert versions
    printed = set(re.findall(r"\S+", proc.stdout))
    assert {v for v in versions if v not in printed} == set()


@pytest.mark.skipif(not _has_simple_demo(), reason="this build's demo has no --simple variant")
def test_simple_demo_failed_requests_have_a_model_version(tmp_path: Path) -> None:
    """Every --simple demo event, failed ones included, says which model version served it."""
    out = tmp_path / "events.jsonl"
    proc = run_cli("demo", "--simple", "--requests", "60", "--seed", "7", "--out", str(out),
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    failed = [e for e in read_events(out) if e.get("error")]
    assert failed and [("model.version" in e) for e in failed] == [True] * len(failed)


@pytest.mark.parametrize("extra", [
    pytest.param((), id="default"),
    pytest.param(("--simple",), id="simple", marks=pytest.mark.skipif(
        not _has_simple_demo(), reason="this build's demo has no --simple variant")),
])
def test_demo_bad_output_path_is_a_clean_error(tmp_path: Path, extra: tuple[str, ...]) -> None:
    """An unwritable --out exits 2 with a fix-it message naming the path, not a traceback."""
    bad = tmp_path / "missing-dir" / "events.jsonl"
    proc = run_cli("demo", *extra, "--requests", "5", "--out", str(bad), cwd=tmp_path)
    assert (proc.returncode, "Traceback" in proc.stderr) == (2, False), proc.stderr
    assert str(bad) in proc.stderr


def test_help_lists_the_subcommands(tmp_path: Path) -> None:
    """`wideevents --help` exits 0 and names the demo subcommand; `wideevents` alone prints
    the same help (the command list), exit 0, as `pip` alone does."""
    proc = run_cli("--help", cwd=tmp_path)
    assert proc.returncode == 0
    assert "demo" in proc.stdout
    bare = run_cli(cwd=tmp_path)
    assert (0, proc.stdout, "") == (bare.returncode, bare.stdout, bare.stderr)


MISSING_DUCKDB = """
    import sys
    sys.modules["duckdb"] = None  # as if the 'query' extra were not installed
    from wideevents._cli import main
    sys.exit(main(["query", sys.argv[1], "--calc", "COUNT"]))
"""


@pytest.mark.skipif(importlib.util.find_spec("wideevents.query._cli") is None,
                    reason="wideevents/_cli_query.py (the query subcommand) does not exist yet")
def test_query_without_duckdb_names_the_extra(tmp_path: Path) -> None:
    """`wideevents query` without duckdb exits non-zero and says to install wideevents[query]."""
    events = tmp_path / "events.jsonl"
    events.write_text('{"name":"x","duration_ms":1.0}\n')
    script = tmp_path / "no_duckdb.py"
    script.write_text(textwrap.dedent(MISSING_DUCKDB))
    proc = subprocess.run([sys.executable, str(script), str(events)], capture_output=True,
                          text=True, timeout=60, env=clean_env(), cwd=str(tmp_path))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "pip install 'wideevents[query]'" in proc.stderr
