"""Both query engines agree, end to end, on the same events.

A file of events is queried locally (``run_local``); the same lines are sent through the
real ``HoneycombSink`` to the loopback Events API receiver, and the same query runs
through ``HoneycombQueryClient`` against a loopback Query Data API that computes its
answer from what the receiver stored, by Honeycomb's documented rules
(``tests/query/honeycomb_engine.py``). The expected rows are also written by hand.

Why not ``tests/support/query.py``'s ``FakeHoneycomb``: it replays scripted rows, so it
cannot show that the engines agree on anything computed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.query.honeycomb_engine import KEY, ComputingHoneycomb
from tests.support.honeycomb_receiver import HoneycombReceiver, running
from wideevents.query import HoneycombQueryClient, Query, run_local
from wideevents.sinks import HoneycombSink, Record


@pytest.fixture
def receiver() -> Iterator[HoneycombReceiver]:
    with running(api_key="events-key") as rx:
        yield rx


@pytest.fixture
def engine(receiver: HoneycombReceiver) -> Iterator[ComputingHoneycomb]:
    honeycomb = ComputingHoneycomb(lambda: receiver.received("ds"))
    yield honeycomb
    honeycomb.close()


def _write_and_send(path: Path, lines: list[bytes], receiver: HoneycombReceiver) -> None:
    """The lines as a file, and each line as a record through the real HoneycombSink."""
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    sink = HoneycombSink("events-key", "ds", receiver.url, send_interval=0.01)
    sink.export([Record(json.loads(line), line) for line in lines])
    assert sink.close(30.0) is True
    assert len(lines) == len(receiver.received("ds"))


def test_default_limit_is_1000_in_both_engines(
    tmp_path: Path, receiver: HoneycombReceiver, engine: ComputingHoneycomb
) -> None:
    """With no limit, both engines return Honeycomb's default of 1,000 rows ("Create a
    Query Result": "the default limit of 1_000 results"), the same ones: the client sends
    the limit rather than leave the stored query to its own default of 100 ("Create a
    Query": limit "default: 100")."""
    lines = [orjson.dumps({"user": f"u{i:04d}", "samplerate": i + 1}) for i in range(1500)]
    path = tmp_path / "users.jsonl"
    _write_and_send(path, lines, receiver)
    query = Query(calculations=["COUNT"], breakdowns=["user"])
    local = run_local(query, path, cache=False).rows
    remote = HoneycombQueryClient(KEY, engine.url, poll_interval=0.01).run(query, "ds").rows
    # by hand: user i counts i + 1; the 1,000 largest counts are users 1499 down to 500
    expected = [{"user": f"u{i:04d}", "COUNT": i + 1} for i in range(1499, 499, -1)]
    assert (expected, expected) == (local, remote)


# (samplerate as another producer wrote it, its weight by docs/sampling.md "Sample rates":
# a number or numeric string rounded half up, at least 1; anything else 1), written by hand
RATES: list[tuple[Any, int]] = [
    (2.5, 3), ("3", 3), (" 4.4 ", 4), ("abc", 1), (0, 1), (-2, 1), (True, 1), (1.49, 1),
    ("1e1", 10), (None, 1), (7, 7), ("2.5", 3), (1.5, 2), ([2], 1),
]  # fmt: skip


def test_fractional_and_string_sample_rates_agree(
    tmp_path: Path, receiver: HoneycombReceiver, engine: ComputingHoneycomb
) -> None:
    """A file with fractional and string sample rates: COUNT, SUM, AVG per group are the
    same locally and in Honeycomb (what the sink sends, as Honeycomb weights it), and equal
    the hand-computed values."""
    lines = []
    for n, (rate, _) in enumerate(RATES):
        event: dict[str, Any] = {"g": "ab"[n % 2], "x": n}
        if rate is not None:
            event["samplerate"] = rate
        lines.append(orjson.dumps(event))
    path = tmp_path / "rates.jsonl"
    _write_and_send(path, lines, receiver)
    query = Query(calculations=["COUNT", "SUM(x)", "AVG(x)"], breakdowns=["g"])
    local = run_local(query, path, cache=False).rows
    remote = HoneycombQueryClient(KEY, engine.url, poll_interval=0.01).run(query, "ds").rows
    expected = []
    for g in "ab":
        pairs = [(w, n) for n, (_, w) in enumerate(RATES) if "ab"[n % 2] == g]
        count, total = sum(w for w, _ in pairs), sum(w * n for w, n in pairs)
        expected.append({"g": g, "COUNT": count, "SUM(x)": total, "AVG(x)": total / count})
    expected.sort(key=lambda r: -r["COUNT"])
    # a: weights 3,4,1,1,10,7,2 (x 0,2,4,6,8,10,12) -> COUNT 28, SUM 0+8+4+6+80+70+24 = 192
    assert {"g": "a", "COUNT": 28, "SUM(x)": 192, "AVG(x)": 192 / 28} in expected
    assert (expected, expected) == (local, remote)
