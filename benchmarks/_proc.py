"""Run one contender in a fresh interpreter and collect its JSON result line."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from statistics import median
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def run_worker(module: str, *args: str, timeout: float = 600.0) -> dict[str, Any]:
    """``python -m benchmarks.<module> --worker ARGS``; the last stdout line is JSON."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{module}", "--worker", *args],
        capture_output=True, text=True, timeout=timeout, cwd=str(ROOT), env=env,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark worker {module} {args} failed:\n{proc.stderr[-3000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, int(round(q / 100.0 * (len(ordered) - 1)))))
    return ordered[k]


def med(results: list[dict[str, Any]], key: str) -> float:
    return float(median(r[key] for r in results))


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def targets_table(checks: list[tuple[str, str, str, bool]]) -> list[str]:
    """The closing "target | wanted | measured | verdict" table of a section."""
    return [
        "| target | wanted | measured | |",
        "|---|---|---|---|",
        *[f"| {a} | {b} | {c} | {'PASS' if ok else 'FAIL'} |" for a, b, c, ok in checks],
        "",
    ]
