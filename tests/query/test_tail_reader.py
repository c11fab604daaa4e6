"""``wideevents.query._tail``: the backwards line reader and the follow loop, against a
plain ``bytes.split`` reading of the same data, with small blocks and line limits so that
every boundary case (a line across many blocks, a newline at a block edge, a line just
over the limit) is met many times."""

from __future__ import annotations

import io
import json
import random
import threading
from pathlib import Path

import pytest

from wideevents._filter import compile_filter
from wideevents.query._tail import Skipped, lines_backwards, tail_events


def _reference(data: bytes, max_line: int) -> list[tuple[int, bytes | None]]:
    """(offset, line or None when longer than max_line), last line first."""
    out, offset = [], 0
    for line in data.split(b"\n"):
        out.append((offset, line if len(line) <= max_line else None))
        offset += len(line) + 1
    return out[::-1]


@pytest.mark.parametrize("block, max_line", [(1, 1000), (3, 5), (7, 7), (16, 4), (64, 30)])
def test_lines_backwards_matches_a_plain_split(block: int, max_line: int) -> None:
    """Random data of a, b and newlines: the same lines, offsets and overlong markers."""
    rng = random.Random(block * 1000 + max_line)
    for _ in range(1500):
        data = bytes(rng.choice(b"ab\n\n") for _ in range(rng.randint(0, 60)))
        got = list(lines_backwards(io.BytesIO(data), len(data), block=block, max_line=max_line))
        assert _reference(data, max_line) == got, data


def test_lines_backwards_holds_no_more_than_the_limit() -> None:
    """A 5 MB line with a 64 KB limit is reported as None without being joined."""
    data = b'{"a": 1}\n' + b"x" * 5_000_000 + b'\n{"b": 2}\n'
    got = list(lines_backwards(io.BytesIO(data), len(data), block=4096, max_line=65536))
    assert [(len(data), b""), (5_000_009 + 1, b'{"b": 2}'), (9, None), (0, b'{"a": 1}')] == got


def _write(path: Path, lines: list[bytes]) -> None:
    path.write_bytes(b"".join(line + b"\n" for line in lines))


def test_tail_events_filters_before_taking_the_last_n(tmp_path: Path) -> None:
    """-n 2 with a filter that only early events pass: those two events, oldest first."""
    path = tmp_path / "e.jsonl"
    _write(path, [json.dumps({"i": i, "keep": i < 3}).encode() for i in range(50)])
    keep = compile_filter([{"column": "keep", "op": "=", "value": True}])
    got = list(tail_events(str(path), 2, keep, follow=False, block=16))
    assert [{"i": 1, "keep": True}, {"i": 2, "keep": True}] == got


def test_tail_events_reports_skipped_lines(tmp_path: Path) -> None:
    """Bad lines among the last N are skipped and counted once; blank lines are not."""
    path = tmp_path / "e.jsonl"
    deep = b"[" * 100_000 + b"]" * 100_000
    _write(path, [b'{"i": 0}', b"not json", b"", b"[1, 2]", deep, b'{"i": "\\ud800"}',
                  b'{"i": 1', b"\xff\xfe", b'{"i": 2}'])  # fmt: skip
    got = list(tail_events(str(path), 10, compile_filter([]), follow=False))
    assert [{"i": 0}, {"i": "\ud800"}, {"i": 2}, Skipped(5)] == got


def test_tail_events_follows_in_blocks_and_skips_overlong_lines(tmp_path: Path) -> None:
    """Following: appended events come through; a line over the limit is one Skipped and
    the next line is read whole (the overlong one's tail does not leak into it)."""
    path = tmp_path / "e.jsonl"
    _write(path, [b'{"i": 0}'])
    events = tail_events(str(path), 1, compile_filter([]), follow=True, interval=0.01,
                         block=8, max_line=100)  # fmt: skip
    assert {"i": 0} == next(events)
    appended = threading.Event()

    def append() -> None:
        with path.open("ab") as f:
            f.write(b'{"big": "' + b"x" * 1000 + b'"}\n{"i": 1}\n{"i": 2')
            f.flush()
            f.write(b"}\n")
        appended.set()

    got: list[object] = []
    reader = threading.Thread(target=lambda: got.extend(next(events) for _ in range(3)),
                              daemon=True)  # fmt: skip
    reader.start()
    threading.Thread(target=append).start()
    reader.join(30)  # a sanity bound: the three items arrive as soon as the lines are read
    assert (True, [Skipped(1), {"i": 1}, {"i": 2}]) == (appended.wait(10), got)
