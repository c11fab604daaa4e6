"""A misspelled column: the query runs (as in Honeycomb, which answers with nulls), and says
which column matched no event and the nearest column seen in the files."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from tests.query.test_cli import _run
from wideevents.query import Query, run_local

EVENTS = [
    {"duration_ms": 12.5, "model.version": "v1", "http.route": "/a"},
    {"duration_ms": 7.5, "model.version": "v2", "http.route": "/b"},
]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    """Two events in a file."""
    out = tmp_path / "events.jsonl"
    out.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in EVENTS))
    return out


def test_run_local_warns_and_still_runs(path: Path) -> None:
    """P99(duraton_ms), breakdown does.not.exist, filter 'duraton_ms > 5': one warning each,
    with the nearest column when one is close; the rows are still computed (nulls)."""
    query = Query(calculations=["COUNT", "P99(duraton_ms)"], breakdowns=["does.not.exist"],
                  filters=[{"column": "duraton_ms", "op": "does-not-exist"}])  # fmt: skip
    result = run_local(query, path, cache=False)
    expected_warnings = [
        "column 'does.not.exist' (breakdown) matched no event",
        "column 'duraton_ms' (calculation) matched no event; did you mean 'duration_ms'?",
    ]
    expected_rows = [{"does.not.exist": None, "COUNT": 2, "P99(duraton_ms)": None}]
    assert (expected_warnings, expected_rows) == (sorted(result.warnings), result.rows)


def test_no_warning_when_a_column_is_in_any_file(path: Path, tmp_path: Path) -> None:
    """A column present in one file of several matched events: no warning."""
    other = tmp_path / "other.jsonl"
    other.write_bytes(orjson.dumps({"score": 1.0}) + b"\n")
    query = Query(calculations=["AVG(score)", "AVG(duration_ms)"], breakdowns=["http.route"])
    assert [] == run_local(query, [path, other], cache=False).warnings


def test_cli_table_to_stderr_json_to_warnings(path: Path, capsys: pytest.CaptureFixture[str]
                                              ) -> None:
    """Table mode prints the hint on stderr (stdout keeps the table); --json puts it in the
    document's "warnings" list."""
    where = ("--where", "duraton_ms > 5")
    code, table = _run("query", str(path), "--calc", "COUNT", *where, "--no-cache")
    err = capsys.readouterr().err
    code_json, text = _run("query", str(path), "--calc", "COUNT", *where, "--json", "--no-cache")
    hint = "column 'duraton_ms' (filter) matched no event; did you mean 'duration_ms'?"
    assert (0, f"wideevents query: warning: {hint}\n", "COUNT\n-----\n    0\n") == (
        code, err, table)
    assert (0, [hint], [{"COUNT": 0}]) == (
        code_json, json.loads(text)["warnings"], json.loads(text)["rows"])  # fmt: skip


def test_tail_warns_about_a_where_column(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """tail --where on a column absent from the file's last lines says so on stderr, with
    the nearest column, then tails as asked (here: nothing matches)."""
    code, out = _run("tail", str(path), "--no-follow", "--where", "model.verison = v1")
    hint = ("column 'model.verison' (filter) matched no event in the last lines of the file; "
            "did you mean 'model.version'?")  # fmt: skip
    assert (0, "", f"wideevents tail: warning: {hint}\n") == (code, out, capsys.readouterr().err)
