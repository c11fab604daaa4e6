"""What ``wideevents demo`` prints for people is escaped like every other human-readable
output (issue 10): here, the file name it echoes (its events and tables go through the
same renderer and ``format_table`` the other tests check)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028-\u202e\u2066-\u2069]")


def test_simple_demo_prints_a_hostile_file_name_escaped(tmp_path: Path) -> None:
    """--out with an OSC title-setting sequence in its name: shown escaped, never raw."""
    out = tmp_path / "ev\x1b]0;owned\x07.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WIDEEVENTS_", "OTEL_"))}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run(
        [sys.executable, "-m", "wideevents._cli", "demo", "--simple", "--requests", "3",
         "--out", str(out)],
        capture_output=True, timeout=120, env=env,
    )  # fmt: skip
    stdout, stderr = proc.stdout.decode("utf-8"), proc.stderr.decode("utf-8")
    assert (0, None, None, True) == (
        proc.returncode, UNSAFE.search(stdout.replace("\n", "")),
        UNSAFE.search(stderr.replace("\n", "")), "ev\\x1b]0;owned\\x07.jsonl" in stdout,
    ), (stdout, stderr)
