"""Properties that hold for every run (issue 16): whatever the event contents, keys,
processors and sink failures,

- no exception reaches the caller;
- every line written is valid JSON (one object per line, UTF-8, no NaN);
- no secret under a secret key reaches any sink, at any depth (docs/reliability.md,
  "Secrets and redaction");
- the ``stats()`` equation holds (docs/reliability.md, "stats()");
- the queue's own byte accounting never exceeds its bound.
"""

from __future__ import annotations

import io
import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wideevents
from tests.support.fuzz_values import keys, values
from tests.support.json_lines import parse_lines
from wideevents.sinks import FileSink, MemorySink, Record, StdoutSink

SECRET = "s3cr3t-TOKEN-7f2c"
SECRET_KEYS = ["password", "Authorization", "api_key", "X-Api-Key", "db.password",
               "client_secret", "Cookie", "refresh_token"]


def planted(depth: int, key: str, style: str) -> Any:
    """A structure holding SECRET under a secret key, ``depth`` containers down."""
    leaf: Any = {key: SECRET} if style == "mapping" else [(key, f"Bearer {SECRET}")]
    for level in range(depth):
        leaf = {f"level{level}": leaf} if level % 2 else [leaf, "sibling"]
    return leaf


secret_structures = st.builds(planted, st.integers(0, 9), st.sampled_from(SECRET_KEYS),
                              st.sampled_from(["mapping", "pairs"]))


class FlakySink:
    """A synchronous sink that raises for some batches (and SystemExit once in a while)."""

    name = "flaky"

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed)
        self.lines: list[bytes] = []

    def export(self, batch: Sequence[Record]) -> None:
        roll = self.random.random()
        if roll < 0.2:
            raise OSError("the disk is on fire")
        if roll < 0.25:
            raise SystemExit(2)
        self.lines.extend(r.json for r in batch)


def make_processor(kind: str) -> Any:
    def raising(ev: dict[str, Any]) -> dict[str, Any]:
        raise ValueError("processor bug")

    def dropping(ev: dict[str, Any]) -> dict[str, Any] | None:
        return None if ev.get("n", 0) % 3 == 0 else ev

    def nesting(ev: dict[str, Any]) -> dict[str, Any]:
        ev["from.processor"] = {"auth": {"password": SECRET}, "headers": [
            ("Authorization", SECRET)]}
        return ev

    return {"raising": raising, "dropping": dropping, "nesting": nesting}[kind]


def check_equation(stats: dict[str, Any]) -> None:
    pipeline_dropped = sum(stats["dropped"].values())
    for name, s in stats["sinks"].items():
        assert s["pending"] >= 0, (name, stats)
        assert (s["sent"] + sum(s["rejected"].values()) + sum(s["dropped"].values())
                + s["pending"] + pipeline_dropped) == stats["emitted"], (name, stats)
    queue = stats["queue"]
    assert 0 <= queue["bytes"] <= queue["max_bytes"], stats
    assert 0 <= queue["size"] <= queue["capacity"], stats


def test_every_run_keeps_the_promises(tmp_path: Path) -> None:
    """Random contents, keys, planted secrets, processors and a failing sink: the five
    properties hold for each run."""

    @settings(max_examples=150, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(events=st.lists(st.tuples(st.dictionaries(keys, values, max_size=12),
                                     secret_structures), min_size=1, max_size=12),
           processors=st.lists(st.sampled_from(["raising", "dropping", "nesting"]),
                               max_size=2, unique=True),
           seed=st.integers(0, 2**16), queue_size=st.sampled_from([4, 64, 10_000]))
    def run(events: list[tuple[dict[Any, Any], Any]], processors: list[str], seed: int,
            queue_size: int) -> None:
        path = tmp_path / f"run-{seed}.jsonl"
        stream = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
        memory, flaky = MemorySink(), FlakySink(seed)
        wideevents.configure(
            service_name="properties", queue_size=queue_size, queue_bytes=1024 * 1024,
            processors=[make_processor(p) for p in processors],
            sinks=[memory, FileSink(path), StdoutSink(stream=stream), flaky])
        for n, (fields, secret) in enumerate(events):
            with wideevents.event("prop", n=n) as ev:  # nothing may raise here
                ev.add(fields)
                ev.add({"carrier": secret})
                ev["password"] = SECRET
            check_equation(wideevents.stats())
        wideevents.flush(30.0)
        stats = wideevents.stats()
        check_equation(stats)
        stream.flush()
        outputs = {
            "memory": b"".join(line + b"\n" for line in memory.lines),
            "file": path.read_bytes(),
            "stdout": stream.buffer.getvalue(),  # type: ignore[attr-defined]
            "flaky": b"".join(line + b"\n" for line in flaky.lines),
        }
        for name, data in outputs.items():
            assert SECRET.encode() not in data, name
            for obj in parse_lines(data):  # strict: UTF-8, one JSON object per line
                assert isinstance(obj, dict)
                json.dumps(obj, allow_nan=False)  # no NaN/Infinity smuggled in
        wideevents.shutdown(10.0)
        check_equation(wideevents.stats())

    run()
