"""``wideevents tail`` through the real command line (``python -m wideevents._cli``) on
files that fight back: deep nesting, lone surrogates, filters that match only early
events, terminal escapes, and a 300 MB file read for its last line (issue 19, issue 10).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028-\u202e\u2066-\u2069\ud800-\udfff]")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WIDEEVENTS_", "OTEL_"))}
    env["PYTHONPATH"] = str(ROOT)
    return env


def _tail(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "wideevents._cli", "tail", *args],
                          capture_output=True, timeout=120, env=_env())  # fmt: skip


def _names(stdout: bytes) -> list[str]:
    """The event name of each printed line (after the "[level ]" column)."""
    return [line.split("] ", 1)[1].split()[0] for line in stdout.decode("utf-8").splitlines()]


def _lines(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def test_a_deeply_nested_line_is_skipped_and_reported(tmp_path: Path) -> None:
    """100,000 levels of nesting (Python's parser gives up): the line is skipped and
    reported on stderr; the events around it are shown; exit 0, no traceback."""
    path = _lines(tmp_path / "e.jsonl", [b'{"name": "before"}', b'{"x": ' + b"[" * 100_000
                                         + b"]" * 100_000 + b"}", b'{"name": "after"}'])  # fmt: skip
    proc = _tail(str(path), "--no-follow")
    assert (0, ["before", "after"], True, False) == (
        proc.returncode, _names(proc.stdout),
        b"skipped a line that is not a JSON object" in proc.stderr, b"Traceback" in proc.stderr,
    ), proc.stderr.decode()


def test_a_lone_surrogate_escape_is_shown_escaped(tmp_path: Path) -> None:
    """{"v": "\\ud800"} is valid JSON whose string cannot be encoded: shown as \\ud800."""
    path = _lines(tmp_path / "e.jsonl", [b'{"name": "s", "v": "a\\ud800b", "\\udc00k": 1}'])
    proc = _tail(str(path), "--no-follow")
    out = proc.stdout.decode("utf-8")
    assert (0, True, True) == (proc.returncode, "v=a\\ud800b" in out, "\\udc00k=1" in out), (
        proc.stderr.decode())


def test_where_is_applied_before_taking_the_last_n(tmp_path: Path) -> None:
    """-n 2 --where matching only the first events shows those events, not nothing."""
    path = _lines(tmp_path / "e.jsonl", [json.dumps({"name": f"op{i}", "slow": i < 3}).encode()
                                         for i in range(100)])  # fmt: skip
    proc = _tail(str(path), "-n", "2", "--no-follow", "--where", "slow = true")
    assert (0, ["op1", "op2"]) == (proc.returncode, _names(proc.stdout))


def test_hostile_values_never_reach_the_terminal_raw(tmp_path: Path) -> None:
    """OSC 52, OSC 8, CSI, C1 CSI and bidi overrides in names, keys and values: escaped."""
    event = {"name": "GET /\x1b]0;owned\x07", "timestamp": "\x9b2J",
             "user_agent\u202e": "\x1b]52;c;aGVsbG8h\x07", "link": "\x1b]8;;http://x/\x1b\\hi",
             "csi": "\x1b[2J", "bidi": "\u202eabc\u2066", "level": "\x1b[31m"}  # fmt: skip
    path = _lines(tmp_path / "e.jsonl", [json.dumps(event).encode()])
    proc = _tail(str(path), "--no-follow")
    out = proc.stdout.decode("utf-8")
    visible = ["GET /\\x1b]0;owned\\x07", "\\x9b2J", "user_agent\\u202e=\\x1b]52;c;aGVsbG8h\\x07",
               "csi=\\x1b[2J", "bidi=\\u202eabc\\u2066"]  # fmt: skip
    assert (0, None, []) == (proc.returncode, UNSAFE.search(out.replace("\n", "")),
                             [v for v in visible if v not in out])


def test_following_reports_bad_lines_and_shows_good_ones(tmp_path: Path) -> None:
    """While following: a bad line appended is reported on stderr; the next event shows."""
    path = _lines(tmp_path / "e.jsonl", [b'{"name": "old"}'])
    proc = subprocess.Popen(
        [sys.executable, "-m", "wideevents._cli", "tail", str(path), "-n", "1",
         "--max-events", "2", "--interval", "0.05"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(),
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # the existing event: tail is following now
        with path.open("ab") as f:
            f.write(b'{"name": "half\n' + b"[" * 50_000 + b"\n" + b'{"name": "new"}\n')
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert (0, ["old", "new"], 2) == (
        proc.returncode, _names(first + out), err.count(b"skipped a line")), err.decode()


def _peak_rss_kb(args: list[str]) -> tuple[int, bytes, int]:
    """Run the CLI; its own peak RSS (wait4's rusage is this one child's), stdout, status."""
    proc = subprocess.Popen([sys.executable, "-m", "wideevents._cli", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=_env())
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_maxrss, out, proc.returncode


def test_tail_n_1_reads_a_300_mb_file_in_bounded_memory(tmp_path: Path) -> None:
    """tail -n 1 on a 300 MB file (sparse: no disk used) peaks within 50 MB of tail on a
    tiny file, and so does -n 1 --where that must scan back past a 300 MB line to the top
    (that line is skipped, never held). The old reader held the whole file (RSS > 300 MB)."""
    small = _lines(tmp_path / "small.jsonl", [b'{"name": "only"}'])
    big = tmp_path / "big.jsonl"
    with big.open("wb") as f:
        f.write(b'{"name": "first", "mark": true}\n')
        f.truncate(300 * 1024 * 1024)  # a hole of NUL bytes: one 300 MB line, no newline
        f.seek(0, os.SEEK_END)
        f.write(b'\n{"name": "last"}\n')
    base, out, code = _peak_rss_kb(["tail", str(small), "-n", "1", "--no-follow"])
    assert (0, ["only"]) == (code, _names(out))
    started = time.monotonic()
    last = _peak_rss_kb(["tail", str(big), "-n", "1", "--no-follow"])
    first = _peak_rss_kb(["tail", str(big), "-n", "1", "--no-follow", "--where", "mark exists"])
    elapsed = time.monotonic() - started
    limit = base + 50 * 1024
    assert ((0, ["last"]), (0, ["first"]), True, True) == (
        (last[2], _names(last[1])), (first[2], _names(first[1])),
        last[0] < limit, first[0] < limit,
    ), (base, last[0], first[0], elapsed)
