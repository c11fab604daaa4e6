"""Text for people never carries terminal controls (issue 10): ``_core/terminal.py`` and
every human-readable output of the query engine (tables, histograms, series, errors).

The hostile values are the classic ones: OSC 52 (write the clipboard), OSC 8 (a hidden
link), CSI 2J (clear the screen) in 7-bit and 8-bit (C1 ``0x9b``) form, a carriage return
that overwrites the line, and the bidi overrides of "Trojan Source" (CVE-2021-42574).
ECMA-48 defines C0 (0x00-0x1f), DEL and C1 (0x80-0x9f); Unicode TR #9 the bidi controls.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import orjson
import pytest

from tests.support.query import write_events
from wideevents._core.terminal import console_fields, escape, escape_json_bytes, show_value
from wideevents.query import Query, QueryResult
from wideevents.query._cli import format_table

HOSTILE = {
    "osc52": "\x1b]52;c;aGVsbG8=\x07",
    "osc8": "\x1b]8;;http://evil.example/\x1b\\click\x1b]8;;\x1b\\",
    "csi": "\x1b[2J\x1b[H",
    "c1": "\x9b2J",
    "bidi": "\u202eevil\u202c",
    "isolate": "\u2066x\u2069",
    "overwrite": "safe\rEVIL",
    "misc": "a\x00b\x7fc\td\ne\u2028f",
}
# What must never reach a terminal inside a line of text (newline only between lines).
UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028-\u202e\u2066-\u2069\ud800-\udfff]")


def _clean(text: str) -> bool:
    return UNSAFE.search(text) is None


@pytest.mark.parametrize("text, expected", [
    ("\x1b]52;c;aGVsbG8=\x07", "\\x1b]52;c;aGVsbG8=\\x07"),
    ("\x9b2J", "\\x9b2J"),
    ("\u202eevil\u202c", "\\u202eevil\\u202c"),
    ("\u2066x\u2069", "\\u2066x\\u2069"),
    ("a\tb\nc\rd", "a\\tb\\nc\\rd"),
    ("\x00\x7f\x80\x9f", "\\x00\\x7f\\x80\\x9f"),
    ("\u2028\u2029", "\\u2028\\u2029"),
    ("lone \ud800 surrogate", "lone \\ud800 surrogate"),
    ("é 日本 🙂 \u00a0 \\x1b", "é 日本 🙂 \u00a0 \\x1b"),
])  # fmt: skip
def test_escape_shows_controls_visibly(text: str, expected: str) -> None:
    """Each class of dangerous character becomes a visible escape; other text is kept."""
    assert expected == escape(text)


def test_escape_over_every_code_point() -> None:
    """Over all of Unicode: nothing unsafe survives, and safe characters are unchanged."""
    everything = "".join(chr(c) for c in range(0x110000))
    escaped = escape(everything)
    safe = "".join(c for c in everything if UNSAFE.search(c) is None and c != "\n")
    assert (True, safe) == (_clean(escaped) and "\n" not in escaped, escape(safe))


def test_escape_json_bytes_keeps_json_values() -> None:
    """JSON from orjson (which leaves DEL, C1 and bidi raw) becomes terminal-safe bytes that
    parse back to exactly the same values (RFC 8259, section 7: any character may be
    escaped)."""
    doc = {"k\u202e": list(HOSTILE.values()), "n": 1, "nested": {"x": "\x9b\u2028"}}
    raw = orjson.dumps(doc)
    safe = escape_json_bytes(raw)
    text = safe.decode("utf-8")
    assert (doc, True, True) == (json.loads(safe), _clean(text), UNSAFE.search(raw.decode()) is not None)


def test_console_fields_are_escaped_text() -> None:
    """Keys and values become escaped strings; the renderer's own keys are renamed; keys
    that escape alike stay apart; a non-string level or name cannot break the renderer."""
    fields = {"name": "GET /\x1b[2J", "timestamp": "t", "exc_info": True, "exception": "x",
              "stack": "s", "level": [5], "a\x1b": 1, "a\\x1b": 2, "deep": [[[["x\x9b"]]]]}
    shown = console_fields(fields)
    expected = {"timestamp": "t", "event": "GET /\\x1b[2J", "level": "[5]", "exc_info_": "True",
                "exception_": "x", "stack_": "s", "a\\x1b": "1", "a\\x1b~2": "2",
                "deep": "[[[['x\\x9b']]]]"}  # fmt: skip
    assert expected == shown


def test_show_value_never_recurses_too_deep() -> None:
    """A list nested 100,000 levels shows as text cut at 20 levels, with no RecursionError."""
    value: list[object] = []
    for _ in range(100_000):
        value = [value]
    assert "[" * 20 + "[...]" + "]" * 20 == show_value(value)


def test_table_histogram_and_series_are_escaped() -> None:
    """Breakdown values and names, calculation keys, histogram titles and series times from
    any source (a file, Honeycomb's reply) are printed escaped."""
    name = "ua\x1b]8;;x\x07"
    query = Query(calculations=["COUNT", "HEATMAP(d\u202e)"], breakdowns=[name], granularity=60,
                  time_range=3600)  # fmt: skip
    buckets = [{"lower": 0.0, "upper": 1.0, "count": 2}]
    rows = [{name: value, "COUNT": 1, "HEATMAP(d\u202e)": {"buckets": buckets}}
            for value in HOSTILE.values()]  # fmt: skip
    series = [{"time": "2025\x1b[2J", "data": {name: "\x9b", "COUNT": 1}}]
    text = format_table(QueryResult(rows=rows, series=series), query)
    expected_bits = ["ua\\x1b]8;;x\\x07", "\\x1b]52;c;aGVsbG8=\\x07", "\\x9b2J",
                     "\\u202eevil\\u202c", "safe\\rEVIL", "HEATMAP(d\\u202e)", "2025\\x1b[2J"]
    assert (True, []) == (all(_clean(line) for line in text.splitlines()),
                          [b for b in expected_bits if b not in text])


def test_cell_lists_and_objects_are_escaped() -> None:
    """A breakdown value that is a list or object (JSON text in the cell) is escaped too:
    C0 by the JSON encoder (\\u001b), C1 and bidi by the terminal escape."""
    query = Query(breakdowns=["v"])
    rows = [{"v": ["\x1b[2J", {"k\u202e": "\x9b"}], "COUNT": 1}]
    text = format_table(QueryResult(rows=rows), query)
    assert (True, True) == (_clean(text.replace("\n", "")),
                            '["\\u001b[2J", {"k\\u202e": "\\x9b"}]' in text)


def test_run_local_table_from_a_file_with_hostile_values(tmp_path: Path) -> None:
    """End to end inside the process: a file of hostile values, queried and printed."""
    from wideevents.query import run_local

    events = [{"http.user_agent": v, "d": n} for n, v in enumerate(HOSTILE.values())]
    path = write_events(tmp_path / "e.jsonl", events)
    query = Query(calculations=["COUNT", "HEATMAP(d)"], breakdowns=["http.user_agent"])
    text = format_table(run_local(query, path, cache=False), query)
    assert (True, True) == (all(_clean(line) for line in text.splitlines()), "\\x9b2J" in text)


def test_a_cell_nested_too_deeply_for_json_dumps_is_shown_cut() -> None:
    """A row value nested 100,000 levels (a Honeycomb reply may hold anything): the table
    prints it cut at 20 levels instead of raising RecursionError."""
    value: list[object] = []
    for _ in range(100_000):
        value = [value]
    text = format_table(QueryResult(rows=[{"v": value, "COUNT": 1}]), Query(breakdowns=["v"]))
    assert "[" * 20 + "[...]" + "]" * 20 in text
