"""`wideevents query` and `wideevents tail`: handlers called directly, then through the CLI."""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.query import (
    KEY,
    ROWS,
    FakeHoneycomb,
    group_by,
    make_events,
    normalise,
    reference,
    write_events,
)
from wideevents._errors import ConfigurationError
from wideevents._filter import Condition
from wideevents.query import Having, Order, Query, QueryResult
from wideevents.query._cli import add_query_parser, add_tail_parser, format_table
from wideevents.query._text import parse_having, parse_order, parse_where

ROOT = Path(__file__).resolve().parent.parent.parent


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="wideevents")
    sub = parser.add_subparsers(dest="command", required=True)
    add_query_parser(sub)
    add_tail_parser(sub)
    return parser


def _run(*argv: str) -> tuple[int, str]:
    args = _parser().parse_args(list(argv))
    out = io.StringIO()
    code = args.func(args, out)
    return code, out.getvalue()


@pytest.fixture(scope="module")
def events_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    """1,000 sampled events in a file."""
    events = make_events(1000, seed=21)
    return write_events(tmp_path_factory.mktemp("cli") / "events.jsonl", events), events


WHERE = [
    ("error = true", Condition("error", "=", True)),
    ("duration_ms > 250", Condition("duration_ms", ">", 250)),
    ("duration_ms>=2.5", Condition("duration_ms", ">=", 2.5)),
    ("name = feedback", Condition("name", "=", "feedback")),
    ('name != "two words"', Condition("name", "!=", "two words")),
    ('code = "200"', Condition("code", "=", "200")),
    ("http.route starts-with /v1", Condition("http.route", "starts-with", "/v1")),
    ("http.route does-not-contain rank", Condition("http.route", "does-not-contain", "rank")),
    ("user.id exists", Condition("user.id", "exists", None)),
    ("user.id does-not-exist", Condition("user.id", "does-not-exist", None)),
    ("model.version in v1,v2", Condition("model.version", "in", ("v1", "v2"))),
    ('model.version not-in ["v1", 3]', Condition("model.version", "not-in", ("v1", 3))),
]


@pytest.mark.parametrize("text, expected", WHERE, ids=[w for w, _ in WHERE])
def test_parse_where(text: str, expected: Condition) -> None:
    """--where reads 'column op value' with JSON-ish values."""
    assert expected == parse_where(text)


def test_parse_having_and_order() -> None:
    """--having reads 'CALC op number'; --order reads a calculation or a breakdown."""
    expected = [
        Having("COUNT", ">", 10),
        Having("P99", "<=", 250.5, "duration_ms"),
        Order("P99", "duration_ms", "descending"),
        Order(None, "model.version", "ascending"),
        Order("COUNT", None, "ascending"),
    ]
    actual = [
        parse_having("COUNT > 10"),
        parse_having("P99(duration_ms) <= 250.5"),
        parse_order("P99(duration_ms) desc"),
        parse_order("model.version"),
        parse_order("COUNT asc"),
    ]
    assert expected == actual
    for bad in ("COUNT > ten", "nonsense"):
        with pytest.raises(ConfigurationError):
            parse_having(bad)


def test_query_table(events_file: tuple[Path, list[dict[str, Any]]]) -> None:
    """The table lists each group's weighted COUNT and P99, aligned, in the requested order."""
    path, events = events_file
    code, text = _run(
        "query", str(path), "--calc", "COUNT", "--calc", "P99(duration_ms)", "--breakdown", "model.version",
        "--where", "error = false", "--having", "COUNT > 100", "--order", "P99(duration_ms) desc", "--no-cache",
    )  # fmt: skip
    kept = [e for e in events if e.get("error") is False]
    groups = [
        (key[0], reference(g, "COUNT", None), reference(g, "P99", "duration_ms"))
        for key, g in group_by(kept, ["model.version"]).items()
        if reference(g, "COUNT", None) > 100
    ]
    groups.sort(key=lambda g: -g[2])
    lines = text.splitlines()
    parsed = [
        [None if p[0] == "(null)" else p[0], float(p[1]), float(p[2])]
        for p in (line.split() for line in lines[2:])
    ]
    assert (0, ["model.version", "COUNT", "P99(duration_ms)"]) == (code, lines[0].split())
    assert normalise([list(g) for g in groups]) == normalise(parsed)
    assert len({len(line) for line in lines[:2]}) == 1  # header and rule line up


def test_query_json_matches_reference(events_file: tuple[Path, list[dict[str, Any]]]) -> None:
    """--json prints rows equal to the reference and the query spec that produced them."""
    path, events = events_file
    code, text = _run("query", str(path), "--calc", "AVG(score.top1)", "--json", "--no-cache")
    doc = json.loads(text)
    expected = {"query": {"calculations": [{"op": "AVG", "column": "score.top1"}]},
                "rows": normalise([{"AVG(score.top1)": reference(events, "AVG", "score.top1")}]),
                "series": None, "complete": True, "skipped_lines": 0,
                "warnings": []}  # fmt: skip
    assert (0, expected) == (code, {**doc, "rows": normalise(doc["rows"])})


def test_spec_file_with_overrides(
    events_file: tuple[Path, list[dict[str, Any]]], tmp_path: Path
) -> None:
    """--spec loads a Honeycomb spec; flags given on the command line replace its fields."""
    path, events = events_file
    spec = tmp_path / "q.json"
    spec.write_text(
        json.dumps(
            {"calculations": [{"op": "MAX", "column": "duration_ms"}], "breakdowns": ["http.route"]}
        )
    )
    _, text = _run(
        "query", str(path), "--spec", str(spec), "--calc", "COUNT", "--json", "--no-cache"
    )
    rows = {r["http.route"]: r["COUNT"] for r in json.loads(text)["rows"]}
    expected = {
        k[0]: reference(g, "COUNT", None) for k, g in group_by(events, ["http.route"]).items()
    }
    assert expected == rows


def test_link(events_file: tuple[Path, list[dict[str, Any]]]) -> None:
    """--link prints the Honeycomb query template link of the same query."""
    code, text = _run("query", "--calc", "COUNT", "--breakdown", "model.version", "--link", "--team", "acme",
                      "--environment", "prod", "--dataset", "ranker")  # fmt: skip
    spec = {"calculations": [{"op": "COUNT"}], "breakdowns": ["model.version"]}
    expected = (
        "https://ui.honeycomb.io/acme/environments/prod/datasets/ranker?query="
        + urllib.parse.quote(json.dumps(spec, separators=(",", ":")), safe="")
    )
    assert (0, f"Honeycomb: {expected}\n") == (code, text)


@pytest.fixture
def fake() -> Iterator[FakeHoneycomb]:
    """A loopback Honeycomb Query Data API."""
    server = FakeHoneycomb()
    yield server
    server.close()


def test_honeycomb_dataset(fake: FakeHoneycomb, monkeypatch: pytest.MonkeyPatch) -> None:
    """--honeycomb runs the query through the Query Data API and prints its rows."""
    monkeypatch.setenv("HONEYCOMB_API_KEY", KEY)
    monkeypatch.setenv("HONEYCOMB_API_HOST", fake.url)
    fake.polls_until_complete = 1
    code, text = _run("query", "--honeycomb", "ranker", "--calc", "COUNT", "--json")
    assert (0, ROWS, "/1/queries/ranker") == (code, json.loads(text)["rows"], fake.requests[0][1])


def test_heatmap_histogram() -> None:
    """HEATMAP cells become sparklines and each row gets a text histogram scaled to its peak."""
    query = Query(calculations=["HEATMAP(x)"])
    buckets = [{"lower": 0.0, "upper": 1.0, "count": 4}, {"lower": 1.0, "upper": 2.0, "count": 0},
               {"lower": 2.0, "upper": 3.0, "count": 2}]  # fmt: skip
    text = format_table(QueryResult(rows=[{"HEATMAP(x)": {"buckets": buckets}}]), query)
    lines = text.splitlines()
    expected_bars = [40, 0, 20]
    assert ("█ ▄", expected_bars) == (lines[2].strip(), [line.count("█") for line in lines[-3:]])


def test_bad_arguments(events_file: tuple[Path, list[dict[str, Any]]]) -> None:
    """Unreadable filters and a query with nothing to run are ConfigurationErrors."""
    path, _ = events_file
    for argv in (("query", str(path), "--where", "nonsense"), ("query", "--calc", "COUNT"),
                 ("query", str(path), "--calc", "P99")):  # fmt: skip
        with pytest.raises(ConfigurationError):
            _run(*argv)


def _cli(*argv: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "wideevents._cli", *argv], capture_output=True,
                          text=True, timeout=120, cwd=ROOT, env=env, **kwargs)  # fmt: skip


def test_through_the_main_cli(
    events_file: tuple[Path, list[dict[str, Any]]], tmp_path: Path
) -> None:
    """The lead's `wideevents` entry point runs `query` (exit 0, same rows) and reports errors (exit 2)."""
    path, events = events_file
    ok = _cli(
        "query", str(path), "--calc", "COUNT", "--breakdown", "http.route", "--json", "--no-cache"
    )
    bad = _cli("query", str(path), "--where", "duration_ms > ")
    expected = {
        k[0]: reference(g, "COUNT", None) for k, g in group_by(events, ["http.route"]).items()
    }
    rows = {r["http.route"]: r["COUNT"] for r in json.loads(ok.stdout)["rows"]}
    assert (0, expected, 2) == (ok.returncode, rows, bad.returncode)


def test_tail_no_follow(tmp_path: Path) -> None:
    """tail -n N --no-follow prints the last N matching events, one line each."""
    events = [
        {"timestamp": f"2025-01-01T00:00:0{i}Z", "name": f"op{i}", "duration_ms": i}
        for i in range(6)
    ]
    path = write_events(tmp_path / "t.jsonl", events)
    code, text = _run("tail", str(path), "-n", "4", "--no-follow", "--where", "duration_ms >= 3")
    names = [line.split("] ", 1)[1].split()[0] for line in text.splitlines()]
    assert (0, ["op3", "op4", "op5"]) == (code, names)


def test_tail_follows_appends(tmp_path: Path) -> None:
    """tail follows the file: events appended later are printed; it stops after --max-events."""
    path = write_events(tmp_path / "live.jsonl", [{"name": "old"}, {"name": "new-0"}])
    proc = subprocess.Popen(
        [sys.executable, "-m", "wideevents._cli", "tail", str(path), "-n", "1", "--max-events", "3",
         "--where", "name starts-with new", "--interval", "0.05"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # the last existing event: tail is now following
        with path.open("a") as f:
            f.write(
                json.dumps({"name": "new-1", "k": 1}) + "\n" + json.dumps({"name": "skip"}) + "\n"
            )
            f.flush()
            f.write('{"name": "new-2", ')  # half a line: printed only once complete
            f.flush()
            time.sleep(0.3)
            f.write('"k": 2}\n')
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    names = [line.split("] ", 1)[1].split()[0] for line in (first + out).splitlines()]
    assert (0, ["new-0", "new-1", "new-2"]) == (proc.returncode, names), err
