"""``wideevents query`` through the real command line on unusual files (issue 19, issue 10):
invalid lines are counted and said, deep nesting is data, odd files give clear answers,
and nothing printed for people carries a terminal control (docs/query.md)."""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028-\u202e\u2066-\u2069\ud800-\udfff]")


def _query(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "HONEYCOMB_"))}
    env["PYTHONPATH"] = str(ROOT)  # WIDEEVENTS_CACHE_DIR stays: the session's scratch cache
    return subprocess.run([sys.executable, "-m", "wideevents._cli", "query", *args],
                          capture_output=True, text=True, timeout=120, env=env)  # fmt: skip


def _write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


MIXED = [b'{"d": 1}', b"not json", b'{"d": 2}', b"[1, 2]", b'{"d": "\\ud800"}', b"\xff\xfe",
         b"", b'{"d": 3', b'{"d": 4}']  # fmt: skip  (5 bad lines, 1 blank, 3 events)


def test_invalid_lines_are_counted_in_json_output(tmp_path: Path) -> None:
    """--json says how many lines were skipped (blank lines are not counted)."""
    path = _write(tmp_path / "e.jsonl", MIXED)
    for extra in ([], ["--no-cache"]):
        proc = _query(str(path), "--calc", "COUNT", "--calc", "SUM(d)", "--json", *extra)
        doc = json.loads(proc.stdout)
        assert (0, [{"COUNT": 3, "SUM(d)": 7}], 5, True) == (
            proc.returncode, doc["rows"], doc["skipped_lines"], doc["complete"]), proc.stderr


def test_invalid_lines_are_said_under_the_table(tmp_path: Path) -> None:
    """The table ends with a note giving the count of skipped lines."""
    path = _write(tmp_path / "e.jsonl", MIXED)
    proc = _query(str(path), "--calc", "COUNT")
    last = proc.stdout.strip().splitlines()[-1]
    assert (0, True) == (proc.returncode, last.startswith("note: skipped 5 lines")), proc.stdout


def test_a_clean_file_has_no_note(tmp_path: Path) -> None:
    """No skipped line: no note, skipped_lines 0."""
    path = _write(tmp_path / "e.jsonl", [b'{"d": 1}', b'{"d": 2}'])
    table, as_json = _query(str(path)), _query(str(path), "--json")
    assert (False, 0) == ("note:" in table.stdout, json.loads(as_json.stdout)["skipped_lines"])


def test_deep_nesting_is_data(tmp_path: Path) -> None:
    """A value nested 3,000 levels (past Python's parser) in a breakdown: the query runs,
    the value is shown as its JSON text; --where with a deep value is a plain string."""
    deep = b"[" * 3000 + b"]" * 3000
    path = _write(tmp_path / "e.jsonl", [b'{"g": ' + deep + b', "d": 1}', b'{"g": "x", "d": 2}'])
    table = _query(str(path), "--calc", "SUM(d)", "--breakdown", "g")
    as_json = _query(str(path), "--calc", "SUM(d)", "--breakdown", "g", "--json", "--no-cache")
    where = _query(str(path), "--where", "g = " + "[" * 5000, "--json")
    rows = {r["g"][:3] if isinstance(r["g"], str) else r["g"]: r["SUM(d)"]
            for r in json.loads(as_json.stdout)["rows"]}  # fmt: skip
    assert ((0, 0, 0), {"[[[": 1, "x": 2}, [{"COUNT": 0}]) == (
        (table.returncode, as_json.returncode, where.returncode), rows,
        json.loads(where.stdout)["rows"],
    ), table.stderr + as_json.stderr + where.stderr


def test_empty_and_invalid_only_files(tmp_path: Path) -> None:
    """An empty file counts 0; a file of invalid lines counts 0 and says how many."""
    empty = _write(tmp_path / "empty.jsonl", [])
    bad = _write(tmp_path / "bad.jsonl", [b"nope", b"[1]", b"{"])
    results = [json.loads(_query(str(p), "--json").stdout) for p in (empty, bad)]
    assert [([{"COUNT": 0}], 0), ([{"COUNT": 0}], 3)] == [
        (r["rows"], r["skipped_lines"]) for r in results]


def test_a_truncated_gzip_is_a_clear_error(tmp_path: Path) -> None:
    """Half a .gz: exit 1 with one line naming the file, no traceback."""
    data = gzip.compress(b'{"d": 1}\n' * 10_000)
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    proc = _query(str(path), "--calc", "COUNT")
    assert (1, True, False) == (proc.returncode, "cut.jsonl.gz" in proc.stderr,
                                "Traceback" in proc.stderr), proc.stderr


def test_a_line_longer_than_duckdb_reads_is_a_clear_error(tmp_path: Path) -> None:
    """A 150 MB line (a sparse hole: no disk used): exit 1, one line naming the file and
    what to do, no traceback; Python never holds the line (sample_kinds reads 4 MB)."""
    path = tmp_path / "huge.jsonl"
    with path.open("wb") as f:
        f.write(b'{"a": 1}\n')
        f.truncate(150 * 1024 * 1024)
        f.seek(0, os.SEEK_END)
        f.write(b'\n{"a": 3}\n')
    proc = _query(str(path), "--calc", "SUM(a)", "--no-cache")
    assert (1, True, True, False) == (
        proc.returncode, str(path) in proc.stderr, "longer than DuckDB reads" in proc.stderr,
        "Traceback" in proc.stderr), proc.stderr


def test_a_file_named_like_a_glob_is_that_file(tmp_path: Path) -> None:
    """`query 'x[1].jsonl'` reads that file even though x1.jsonl exists beside it."""
    _write(tmp_path / "x1.jsonl", [b'{"d": 100}'])
    target = _write(tmp_path / "x[1].jsonl", [b'{"d": 1}', b'{"d": 2}'])
    proc = _query(str(target), "--calc", "SUM(d)", "--json")
    assert (0, [{"SUM(d)": 3}]) == (proc.returncode, json.loads(proc.stdout)["rows"])


HOSTILE = ["\x1b]52;c;aGVsbG8h\x07", "\x1b]8;;http://evil/\x1b\\x", "\x1b[2J", "\x9b2J",
           "\u202eabc", "tab\there", "cr\rlf\n"]  # fmt: skip


def test_tables_print_hostile_values_escaped(tmp_path: Path) -> None:
    """Breakdown values and a column name with terminal controls: the table, the HEATMAP
    histogram titles and the series show them escaped; no control reaches stdout."""
    events = [{"ua": v, "d\u202e": n, "timestamp": "2025-01-01T00:00:00Z"}
              for n, v in enumerate(HOSTILE)]  # fmt: skip
    path = _write(tmp_path / "e.jsonl", [json.dumps(e).encode() for e in events])
    proc = _query(str(path), "--calc", "COUNT", "--calc", "HEATMAP(d\u202e)", "--breakdown", "ua")
    visible = ["\\x1b]52;c;aGVsbG8h\\x07", "\\x9b2J", "\\u202eabc", "tab\\there", "cr\\rlf\\n",
               "HEATMAP(d\\u202e)"]  # fmt: skip
    assert (0, None, []) == (proc.returncode, UNSAFE.search(proc.stdout.replace("\n", "")),
                             [v for v in visible if v not in proc.stdout]), proc.stderr


def test_json_output_is_ascii_and_round_trips(tmp_path: Path) -> None:
    """--json escapes every non-ASCII character (json.dumps' default) and parses back to
    the very values in the file."""
    path = _write(tmp_path / "e.jsonl", [json.dumps({"ua": v}).encode() for v in HOSTILE])
    proc = _query(str(path), "--breakdown", "ua", "--json")
    assert (0, True, sorted(HOSTILE)) == (
        proc.returncode, proc.stdout.isascii(),
        sorted(r["ua"] for r in json.loads(proc.stdout)["rows"]))


def test_error_messages_are_escaped(tmp_path: Path) -> None:
    """A file name with controls in a ConfigurationError: shown escaped on stderr."""
    proc = _query(str(tmp_path / "no\x1b]0;owned\x07such.jsonl"))
    assert (2, None, True) == (proc.returncode, UNSAFE.search(proc.stderr.replace("\n", "")),
                               "no\\x1b]0;owned\\x07such.jsonl" in proc.stderr), proc.stderr


def test_argument_errors_are_escaped(tmp_path: Path) -> None:
    """argparse echoes unknown arguments as typed: shown escaped, exit 2."""
    proc = _query(str(tmp_path / "e.jsonl"), "--bogus\x1b]0;owned\x07")
    assert (2, None, True) == (proc.returncode, UNSAFE.search(proc.stderr.replace("\n", "")),
                               "--bogus\\x1b]0;owned\\x07" in proc.stderr), proc.stderr
