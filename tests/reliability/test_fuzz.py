"""Bad input at scale, through every sink: stdout, file, memory, Honeycomb and OTLP
(protobuf and JSON) to the loopback receivers.

Random event contents (hypothesis, derandomised) and a few deliberately extreme events:
deep nesting, huge strings, 10,000 fields, non-UTF-8 bytes, lone surrogates, objects whose
``__repr__``/``__str__``/``__eq__``/``__hash__``/``__getattr__`` raise, recursive
containers. Nothing may raise into the caller; every sink must deliver every event as
valid output within the documented limits, with what was cut counted; the receivers
must accept everything they get.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wideevents
from tests.support.fuzz_values import (
    WeirdStr,
    any_text,
    keys,
    nested,
    object_array,
    recursive_dict,
    recursive_list,
    values,
)
from tests.support.honeycomb_receiver import HoneycombReceiver
from tests.support.hostile import Hostile, HostileKey
from tests.support.json_lines import parse_lines
from tests.support.otlp_receiver import OTLPReceiver
from tests.support.reliability import equation_holds, record_figure
from wideevents.sinks import FileSink, HoneycombSink, MemorySink, OTLPSink, StdoutSink

KEY = "fuzz-test-key-0a4d"
MAX_FIELDS = 2000
MAX_STRING_BYTES = 65_536
MAX_EVENT_BYTES = 1_000_000
SINKS = ("stdout", "file", "memory", "honeycomb", "otlp", "otlp#2")


@dataclass
class Outputs:
    """Each sink's delivered events (dicts), and what the receivers got."""

    by_sink: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


@contextmanager
def every_sink(tmp_path: Path) -> Iterator[Any]:
    """Configure a pipeline with all six sinks; yield a function returning their outputs."""
    stream = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    memory = MemorySink()
    file_path = tmp_path / "fuzz.jsonl"
    with HoneycombReceiver(api_key=KEY) as honeycomb, OTLPReceiver() as otlp:
        wideevents.configure(service_name="fuzz", sinks=[
            StdoutSink(stream=stream), FileSink(file_path), memory,
            HoneycombSink(api_key=KEY, dataset="fuzz", api_host=honeycomb.url),
            OTLPSink(otlp.url, encoding="protobuf"),
            OTLPSink(otlp.url, encoding="json", compression="none"),
        ])

        def outputs() -> dict[str, list[dict[str, Any]]]:
            flushed = wideevents.flush(60)
            stats = wideevents.stats()
            assert flushed, json.dumps({k: v for k, v in stats.items() if k != "fields"},
                                       default=str)
            stream.flush()
            records = otlp.received()
            return {
                "stdout": strict_lines(stream.buffer.getvalue()),  # type: ignore[attr-defined,unused-ignore]
                "file": strict_lines(file_path.read_bytes()),
                "memory": strict_lines(b"".join(line + b"\n" for line in memory.lines)),
                "honeycomb": [e["data"] for e in honeycomb.received()],
                "otlp": [r.attributes for r in records if r.encoding == "protobuf"],
                "otlp#2": [r.attributes for r in records if r.encoding == "json"],
            }

        yield outputs


def strict_lines(data: bytes) -> list[dict[str, Any]]:
    """Parse JSON lines strictly: UTF-8, one object per line, no NaN, within the limits."""
    out = parse_lines(data)
    for line, obj in zip(data.split(b"\n"), out):
        assert len(line) < MAX_EVENT_BYTES
        check_event(obj)
    return out


SCALAR = (str, int, float, bool, type(None))


def check_event(event: dict[str, Any]) -> None:
    """The value rules of docs/schema.md, "Values", written out: flat, bounded, JSON scalars."""
    assert len(event) <= MAX_FIELDS
    for key, value in event.items():
        assert isinstance(key, str)  # length: see test_flattened_keys_are_cut_like_top_level_keys
        key.encode("utf-8")  # no lone surrogate left
        items = value if isinstance(value, list) else [value]
        for item in items:
            assert isinstance(item, SCALAR), (key, type(item))
            if isinstance(item, str):
                assert len(item.encode("utf-8")) <= MAX_STRING_BYTES, key


def check_delivery(outputs: dict[str, list[dict[str, Any]]], ids: list[str]) -> None:
    stats = wideevents.stats()
    assert equation_holds(stats) == {}
    assert stats["dropped"] == {} and stats["errors"] == {}
    for name in SINKS:
        s = stats["sinks"][name]
        assert (name, s["sent"], s["rejected"], s["dropped"], s["pending"]) == (
            name, len(ids), {}, {}, 0)
        got = sorted(str(e.get("request.id")) for e in outputs[name])
        assert (name, got) == (name, sorted(ids))


def test_random_event_contents_through_every_sink(tmp_path: Path) -> None:
    """Hypothesis-generated fields via every way of adding them: no exception, all delivered."""
    ids: list[str] = []

    @settings(max_examples=300, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(name=st.one_of(any_text, st.builds(Hostile)),
           fields=st.dictionaries(keys, values, max_size=25),
           items=st.lists(st.tuples(keys, values), max_size=5),
           kwargs=st.dictionaries(st.from_regex(r"[a-z_]{1,12}", fullmatch=True), values,
                                  max_size=5),
           counters=st.lists(st.tuples(keys | st.builds(Hostile), values), max_size=3),
           stage=any_text | st.builds(Hostile))
    def emit(name: Any, fields: dict[Any, Any], items: list[tuple[Any, Any]],
             kwargs: dict[str, Any], counters: list[tuple[Any, Any]], stage: Any) -> None:
        rid = f"fuzz-{len(ids)}"
        ids.append(rid)
        with wideevents.event(name, **kwargs) as ev:
            ev.add(fields)
            for key, value in items:
                ev[key] = value
            for key, by in counters:
                ev.incr(key, by)
            with ev.timer(stage):
                wideevents.add(fields)
            ev[Hostile()] = 1  # type: ignore[index]  # unhashable: dropped, counted "bad_key"
            ev.add({"request.id": rid})

    with every_sink(tmp_path) as outputs:
        emit()
        delivered = outputs()
    check_delivery(delivered, ids)
    fields_stats = wideevents.stats()["fields"]
    assert fields_stats["dropped"].get("bad_key") == len(ids)
    record_figure("fuzz: hypothesis event contents", "events / sinks / all delivered",
                  f"{len(ids)} / {len(SINKS)} / yes")
    record_figure("fuzz: hypothesis event contents", "fields truncated by reason",
                  fields_stats["truncated"])


def test_extreme_events_through_every_sink(tmp_path: Path) -> None:
    """10,000 fields, a 10 MB string, 5,000-deep nesting, recursion, raising objects, bad bytes."""
    wide = {f"wide.f{i}": i for i in range(10_000)}
    cases: dict[str, dict[Any, Any]] = {
        "control": {},
        "wide": wide,
        "huge": {"huge.text": "é" * 5_000_000},
        "deep": {"deep": nested(5_000)},
        "recursive": {"rec.list": recursive_list(), "rec.dict": recursive_dict()},
        "nasty": {"nasty": Hostile(), HostileKey(): Hostile(), "weird": WeirdStr("w"),
                  "objarr": object_array(), "nasty.list": [Hostile(), Hostile()]},
        "bytes": {"raw": bytes(range(256)) * 4096, "s\ud800": "\udfff" * 100_000},
        "heavy": {"big.array": np.arange(1_000_000, dtype=np.float64),
                  "many.lists": [list(range(1000)) for _ in range(100)]},
    }
    with every_sink(tmp_path) as outputs:
        for rid, fields in cases.items():
            with wideevents.event("extreme") as ev:
                ev.add(fields)
                ev.add({"request.id": rid})
        delivered = outputs()
    check_delivery(delivered, list(cases))
    events = {e["request.id"]: e for e in delivered["memory"]}
    control, big = events["control"], events["wide"]
    # Conservation: every field of the 10,000-field event is either kept or counted dropped.
    kept = [k for k in big if not k.startswith("meta.")]
    assert len(big) <= MAX_FIELDS
    assert len(kept) + big["meta.dropped_count"] == len(control) + len(wide)
    assert kept[: len(control)] == [k for k in control]  # identity fields survive first
    huge = events["huge"]["huge.text"]
    assert huge == "é" * len(huge)  # a prefix of the original, cut on a character boundary
    assert 0 < len(huge.encode()) <= MAX_STRING_BYTES
    assert "huge.text" in events["huge"]["meta.truncated_fields"]
    fields_stats = wideevents.stats()["fields"]
    assert fields_stats["dropped"].get("too_many_fields") == big["meta.dropped_count"]
    assert fields_stats["truncated"].get("string_too_long", 0) >= 1
    assert fields_stats["truncated"].get("depth", 0) >= 1
    record_figure("fuzz: extreme events", "10,000 fields -> kept / dropped",
                  f"{len(kept)} / {big['meta.dropped_count']}")
    record_figure("fuzz: extreme events", "fields truncated by reason", fields_stats["truncated"])


@pytest.mark.slow
def test_random_event_contents_long_run(tmp_path: Path) -> None:
    """A longer hypothesis run (1,500 examples) through every sink."""
    ids: list[str] = []

    @settings(max_examples=1500, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(fields=st.dictionaries(keys, values, max_size=40))
    def emit(fields: dict[Any, Any]) -> None:
        rid = f"long-{len(ids)}"
        ids.append(rid)
        with wideevents.event("fuzz-long") as ev:
            ev.add(fields)
            ev.add({"request.id": rid})

    with every_sink(tmp_path) as outputs:
        emit()
        delivered = outputs()
    check_delivery(delivered, ids)
    record_figure("fuzz: long run", "events / sinks / all delivered",
                  f"{len(ids)} / {len(SINKS)} / yes")


def test_flattened_keys_are_cut_like_top_level_keys() -> None:
    """A key longer than 255 UTF-8 bytes is cut to 255, whether written flat or nested."""
    sink = MemorySink()
    wideevents.configure(service_name="fuzz", sinks=[sink])
    with wideevents.event("keys") as ev:
        ev.add({"t" * 300: 1, "a" * 200: {"b" * 200: 2}})
    assert wideevents.flush(10)
    [event] = sink.events
    assert sorted(len(k.encode()) for k in event if k.startswith(("tt", "aa"))) == [255, 255]


def test_containers_written_as_json_strings_respect_the_string_limit() -> None:
    """A 100 KB string deep inside a mapping or a list is cut like a top-level one."""
    memory = MemorySink()
    with HoneycombReceiver(api_key=KEY) as receiver:
        wideevents.configure(service_name="fuzz", sinks=[memory, HoneycombSink(
            api_key=KEY, dataset="fuzz", api_host=receiver.url)])
        deep = nested(6)
        deep["k"]["k"]["k"]["k"]["k"]["k"]["text"] = "x" * 100_000
        with wideevents.event("json-strings") as ev:
            ev.add({"deep": deep, "listed": [{"text": "y" * 100_000}]})
        assert wideevents.flush(30)
    stats = wideevents.stats()["sinks"]
    [event] = memory.events
    longest = max(len(v.encode()) for v in event.values() if isinstance(v, str))
    longest_item = max(len(v.encode()) for v in event["listed"])
    assert (stats["honeycomb"]["rejected"], longest <= MAX_STRING_BYTES,
            longest_item <= MAX_STRING_BYTES) == ({}, True, True)
