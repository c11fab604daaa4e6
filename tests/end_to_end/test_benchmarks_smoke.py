"""The benchmark entry point runs (smoke sizes): numbers belong in docs, not in tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
SECTIONS = sorted(p.stem[len("bench_"):] for p in (ROOT / "benchmarks").glob("bench_*.py"))


@pytest.mark.slow
@pytest.mark.parametrize("section", SECTIONS)
def test_benchmark_section_runs_quick(section: str, tmp_path: Path) -> None:
    """`python -m benchmarks --quick --only SECTION` exits 0 and writes its section."""
    out = tmp_path / "benchmarks.md"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--only", section, "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text()
    assert text.startswith("# Benchmarks") and "\n## " in text
