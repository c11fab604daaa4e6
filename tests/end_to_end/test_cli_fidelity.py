"""What users expect of the command line, the README and the demo, checked as a user meets
them: subprocesses, a real terminal (a pty) and a pipe, the README's own code.

Habits matched: ``--version`` prints ``name version`` and exits 0 (argparse's ``version``
action; ``pip --version``, ``git --version``); a command run alone lists its commands and
exits 0 (``pip``); progress bars are drawn only on a terminal (``isatty()``, as pip's and
tqdm-style bars do: a redirected log gets no carriage returns); numbers in tables are plain
decimals (six significant digits, no exponent).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import pty
import re
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from tests.end_to_end.test_cli import clean_env, run_cli
from wideevents.query import Query, run_local
from wideevents.query._cli import format_table

ROOT = Path(__file__).resolve().parent.parent.parent
SCIENTIFIC = re.compile(r"\d(?:\.\d+)?[eE][+-]?\d+")


def test_version_prints_the_installed_version(tmp_path: Path) -> None:
    """`wideevents --version` prints 'wideevents <installed distribution version>', exit 0."""
    proc = run_cli("--version", cwd=tmp_path)
    expected = f"wideevents {importlib.metadata.version('wideevents')}\n"
    assert (0, expected, "") == (proc.returncode, proc.stdout, proc.stderr)


def test_bare_command_lists_the_commands(tmp_path: Path) -> None:
    """`wideevents` alone lists every command with its one-line help, on stdout, exit 0."""
    proc = run_cli(cwd=tmp_path)
    # A long name gets its help on the next line (argparse), hence the optional help.
    listed = re.findall(r"^ {4}(\w+)(?: +\S.*)?$", proc.stdout, flags=re.M)
    commands = ["demo", "query", "tail", "compare", "drift", "calibration", "report",
                "prometheus"]  # issues 19, 20, 21 added the last five
    assert (0, commands, "") == (proc.returncode, listed, proc.stderr)


def test_unknown_command_is_still_a_usage_error(tmp_path: Path) -> None:
    """`wideevents bogus` exits 2 naming the valid commands (argparse's convention)."""
    proc = run_cli("bogus", cwd=tmp_path)
    assert (2, True) == (proc.returncode, "'demo', 'query', 'tail'" in proc.stderr)


def readme_ten_lines() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Ten lines", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


README_DRIVER = """
    import numpy as np

    FEATURE_NAMES = ["f0", "f1", "f2"]
    LABELS = ["billing", "cancel"]

    class Request:
        user_id = 464
        id = "req-7"
        tenant = "acme"

    class Model:
        def predict_proba(self, x):
            return np.array([[0.25, 0.75]])

    print(predict(Request(), Model(), np.array([0.1, 0.2, 0.3])))
    wideevents.shutdown(timeout=5.0)
"""


def test_readme_ten_lines_write_user_id_as_the_schema_names_it(tmp_path: Path) -> None:
    """The README's example, run as written, writes the user as `user.id` (docs/schema.md)."""
    script = readme_ten_lines() + textwrap.dedent(README_DRIVER)
    proc = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=clean_env(),
                          capture_output=True, text=True, timeout=60)
    assert 0 == proc.returncode, proc.stderr
    [event] = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert (464, None, "req-7", "acme", "cancel") == (
        event.get("user.id"), event.get("user_id"), event.get("request.id"),
        event.get("slice.tenant"), event.get("prediction.label"))


def test_tables_print_plain_decimals(tmp_path: Path) -> None:
    """Query tables print 20631312 and 0.00005, never 2.06313e+07 or 5e-05."""
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps({"name": n, "delay_ms": d, "tiny": t}) + "\n"
                            for n, d, t in [("a", 20_631_312.4, 0.00005),
                                            ("b", 35_773.0, 0.000123456789)]))
    query = Query.from_json({"calculations": [{"op": "MAX", "column": "delay_ms"},
                                              {"op": "MAX", "column": "tiny"}],
                             "breakdowns": ["name"], "orders": [{"column": "name"}]})
    table = format_table(run_local(query, str(path)), query)
    rows = [line.split() for line in table.splitlines()[2:]]
    assert ([["a", "20631312", "0.00005"], ["b", "35773", "0.000123457"]], None) == (
        rows, SCIENTIFIC.search(table))


DEMO_REQUESTS = "150"


def run_demo_on_a_terminal(cwd: Path) -> tuple[int, str, str]:
    """Run the demo with stderr on a real pseudo-terminal; returns (code, stdout, terminal)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "wideevents._cli", "demo", "--requests", DEMO_REQUESTS],
        cwd=cwd, env=clean_env(), stdout=subprocess.PIPE, stderr=slave, text=True)
    os.close(slave)
    screen = bytearray()

    def read() -> None:
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the child closed its end
                return
            if not chunk:
                return
            screen.extend(chunk)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    stdout, _ = proc.communicate(timeout=240)
    reader.join(10)
    os.close(master)
    return proc.returncode, stdout, screen.decode("utf-8", "replace")


@pytest.fixture(scope="module")
def piped_demo(tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess[str]:
    cwd = tmp_path_factory.mktemp("demo-piped")
    proc = subprocess.run(
        [sys.executable, "-m", "wideevents._cli", "demo", "--requests", DEMO_REQUESTS],
        cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=240)
    assert 0 == proc.returncode, proc.stderr[-3000:]
    return proc


def test_demo_draws_no_progress_bar_into_a_pipe(
        piped_demo: subprocess.CompletedProcess[str]) -> None:
    """stderr redirected (CI, a log file): no progress bar, no carriage return."""
    assert (False, False) == ("\r" in piped_demo.stderr, "load [" in piped_demo.stderr)


def test_demo_draws_the_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    """stderr on a terminal: the bar is drawn, redrawn in place, and ends complete."""
    code, _, screen = run_demo_on_a_terminal(tmp_path)
    assert 0 == code, screen[-3000:]
    assert (True, True) == ("\r  load [" in screen,
                            f"] {DEMO_REQUESTS}/{DEMO_REQUESTS}" in screen)


def test_demo_prints_plain_decimals(piped_demo: subprocess.CompletedProcess[str]) -> None:
    """No value of the demo's tables is in scientific notation, the late feedback included."""
    section = piped_demo.stdout.split("## How late does feedback arrive?", 1)[1]
    [table] = [chunk for chunk in section.split("\n\n") if chunk.startswith("feedback.matched")]
    maxima = [row.split()[-1] for row in table.splitlines()[2:]]
    largest = max(maxima, key=float)
    # The clicks that arrive hours late: a MAX over 3,600,000 ms, written out as digits.
    assert (None, True, True) == (
        SCIENTIFIC.search(piped_demo.stdout), largest.isdigit(),
        float(largest) >= 3_600_000), table


def test_demo_explains_the_non_finite_scores_log_line(
        piped_demo: subprocess.CompletedProcess[str]) -> None:
    """The 'non-finite scores' log line says it is the injected canary incident, and what
    happened to the scores."""
    [line] = [x for x in piped_demo.stderr.splitlines() if "non-finite scores" in x]
    assert (True, True, True) == ("injected" in line, "canary" in line,
                                  "ranked last" in line), line
