"""The value rules of docs/schema.md, "Values", checked through the public API against
hand-written outputs.

Fast checks go through ``wideevents.testing.capture_events()`` (synchronous); the JSON-line
checks write through a real ``FileSink`` and parse each line with the standard library.
"""

from __future__ import annotations

import collections
import datetime as dt
import decimal
import enum
import fractions
import hashlib
import json
import math
import pathlib
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import wideevents
from tests.support.hostile import Hostile, HostileKey
from tests.support.json_lines import parse_line
from wideevents.sinks import FileSink
from wideevents.testing import capture_events

# Fields every event carries on its own (not added by the tests below).
STANDARD = frozenset({
    "timestamp", "name", "duration_ms", "service.name", "service.version", "host.name",
    "process.pid", "deployment.environment.name", "trace.trace_id", "trace.span_id",
    "trace.parent_id",
})
MAX_STRING_BYTES = 65_536
MAX_FIELDS = 2_000
MAX_EVENT_BYTES = 1_000_000
RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
BYTES_SUMMARY = re.compile(r"^<(\d+) bytes sha256:([0-9a-f]{8,64})>$")


# -- helpers --------------------------------------------------------------------------------
def emit(fields: Any = None, **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """One event through capture_events(): (the finished event, stats() of its pipeline)."""
    with capture_events() as events:
        with wideevents.event("values") as ev:
            ev.add(fields, **kwargs)
        stats = wideevents.stats()
    assert len(events) == 1
    return events[0], stats


def user_fields(event: dict[str, Any]) -> dict[str, Any]:
    """The event without the fields every event carries and without ``meta.*``."""
    return {k: v for k, v in event.items() if k not in STANDARD and not k.startswith("meta.")}


def is_json_scalar(value: Any) -> bool:
    if value is None or type(value) in (str, bool):
        return True
    if type(value) is int:
        return -(2**63) <= value < 2**64
    return type(value) is float and math.isfinite(value)


class FileEvents:
    """A FileSink pipeline; ``emit`` returns the JSON lines one event produced."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        wideevents.configure(service_name="values-test", sinks=[FileSink(str(path))])

    def emit(self, fields: Any) -> list[bytes]:
        with wideevents.event("values") as ev:
            ev.add(fields)
        assert wideevents.flush(5.0) is True
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        self.offset += len(data)
        assert data.endswith(b"\n")
        return data.split(b"\n")[:-1]


@pytest.fixture
def file_events(tmp_path: Path) -> Iterator[FileEvents]:
    sink = FileEvents(tmp_path / "events.jsonl")
    yield sink
    wideevents.shutdown(timeout=2.0)


# -- fakes of array libraries (no torch or jax import) --------------------------------------
class JaxLikeArray:
    """Exposes ``__array__`` only, like a jax.Array."""

    def __init__(self, data: list[float]) -> None:
        self._data = data

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return np.array(self._data, dtype=dtype)


class TorchLikeTensor:
    """Exposes ``.numpy()`` (which refuses while attached to a graph), ``.detach()``, ``.cpu()``."""

    def __init__(self, data: list[float], requires_grad: bool = True) -> None:
        self._data = data
        self.requires_grad = requires_grad

    def detach(self) -> TorchLikeTensor:
        return TorchLikeTensor(self._data, requires_grad=False)

    def cpu(self) -> TorchLikeTensor:
        return self

    def numpy(self) -> np.ndarray:
        if self.requires_grad:
            raise RuntimeError("Can't call numpy() on Tensor that requires grad. Use detach()")
        return np.array(self._data)


# -- hostile objects ------------------------------------------------------------------------
class HugeRepr:
    def __repr__(self) -> str:
        return "<" + "x" * 5_000_000 + ">"


class RaisingGetattr:
    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"no {name}")


class FalsyBoom(dict):  # type: ignore[type-arg]
    """A mapping whose truth value and length raise."""

    def __bool__(self) -> bool:
        raise RuntimeError("bool")

    def __len__(self) -> int:
        raise RuntimeError("len")


class RaisingAdd:
    def __radd__(self, other: object) -> Any:
        raise RuntimeError("radd")


class Color(enum.Enum):
    RED = "red"
    POINT = (1, 2)


# -- numpy scalars and arrays ---------------------------------------------------------------
def test_numpy_scalars_become_json_numbers() -> None:
    """numpy integer, unsigned, float and bool scalars become plain numbers / booleans."""
    event, _ = emit({
        "i8": np.int8(-3), "i64": np.int64(7), "u64": np.uint64(2**64 - 1),
        "f16": np.float16(1.5), "f32": np.float32(0.5), "f64": np.float64(2.25),
        "b": np.bool_(True),
    })
    got = {k: (type(v).__name__, v) for k, v in user_fields(event).items()}
    assert got == {
        "i8": ("int", -3), "i64": ("int", 7), "u64": ("int", 18446744073709551615),
        "f16": ("float", 1.5), "f32": ("float", 0.5), "f64": ("float", 2.25),
        "b": ("bool", True),
    }


def test_arrays_up_to_128_elements_become_flat_lists() -> None:
    """Arrays of at most 128 elements become flat (row-major) lists of plain numbers."""
    event, _ = emit({
        "a128": np.arange(128, dtype=np.int32),
        "grid": np.array([[1.5, 2.5], [3.5, 4.5]]),
        "flags": np.array([True, False]),
        "empty": np.zeros(0),
    })
    assert user_fields(event) == {
        "a128": list(range(128)),
        "grid": [1.5, 2.5, 3.5, 4.5],
        "flags": [True, False],
        "empty": [],
    }
    assert type(event["a128"][5]) is int
    assert "meta.truncated_fields" not in event


def test_longer_arrays_become_a_named_summary() -> None:
    """An array of 129+ elements becomes .len/.min/.max/.mean, named in meta.truncated_fields."""
    values = np.random.default_rng(42).normal(size=1000)
    event, _ = emit({"a129": np.arange(129), "emb": values})
    plain = values.tolist()
    expected = {
        "a129.len": 129, "a129.min": 0.0, "a129.max": 128.0, "a129.mean": 64.0,
        "emb.len": 1000, "emb.min": min(plain), "emb.max": max(plain),
        "emb.mean": pytest.approx(math.fsum(plain) / len(plain), rel=1e-12),
    }
    assert user_fields(event) == expected
    assert sorted(event["meta.truncated_fields"]) == ["a129", "emb"]
    assert event["meta.truncated_count"] == 2


def test_array_like_with_dunder_array_is_treated_like_an_array() -> None:
    """An object exposing __array__ (jax-like) becomes a list, or a summary when long."""
    event, _ = emit({"short": JaxLikeArray([1.5, 2.5, 3.5]),
                     "long": JaxLikeArray([float(i) for i in range(200)])})
    assert user_fields(event) == {
        "short": [1.5, 2.5, 3.5],
        "long.len": 200, "long.min": 0.0, "long.max": 199.0, "long.mean": 99.5,
    }
    assert event["meta.truncated_fields"] == ["long"]


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_summary_of_huge_finite_values_stays_finite() -> None:
    """A long array of large finite floats summarises to finite .min/.max/.mean."""
    event, _ = emit({"big": np.full(200, 1e308)})
    expected_mean = float(sum(fractions.Fraction(1e308) for _ in range(200)) / 200)
    assert user_fields(event) == {"big.len": 200, "big.min": 1e308, "big.max": 1e308,
                                  "big.mean": expected_mean}


def test_array_like_with_numpy_method_is_treated_like_an_array() -> None:
    """A torch-like tensor (.numpy() after .detach()) becomes a list, or a summary when long."""
    event, _ = emit({"short": TorchLikeTensor([0.25, 0.75]),
                     "long": TorchLikeTensor([float(i) for i in range(300)])})
    assert user_fields(event) == {
        "short": [0.25, 0.75],
        "long.len": 300, "long.min": 0.0, "long.max": 299.0, "long.mean": 149.5,
    }


# -- non-finite numbers ---------------------------------------------------------------------
def test_nan_and_infinities_become_null_and_are_named() -> None:
    """NaN, +Inf and -Inf (Python, numpy, in lists) become null, named in meta.nonfinite_*."""
    event, _ = emit({
        "nan": float("nan"), "pinf": float("inf"), "ninf": -math.inf,
        "np_nan": np.float32("nan"), "arr": np.array([1.0, np.nan, 3.0]),
        "items": [float("inf"), 2.0], "fine": 1.25,
    })
    assert user_fields(event) == {
        "nan": None, "pinf": None, "ninf": None, "np_nan": None,
        "arr": [1.0, None, 3.0], "items": [None, 2.0], "fine": 1.25,
    }
    assert sorted(event["meta.nonfinite_fields"]) == ["arr", "items", "nan", "ninf", "np_nan",
                                                       "pinf"]
    assert event["meta.nonfinite_count"] == 6


def test_nonfinite_json_line_has_null_not_nan(file_events: FileEvents) -> None:
    """The JSON line holds null for NaN/Inf and parses with a strict stdlib parser."""
    (line,) = file_events.emit({"nan": float("nan"), "inf": np.float64("inf")})
    obj = parse_line(line)
    assert (obj["nan"], obj["inf"]) == (None, None)
    assert sorted(obj["meta.nonfinite_fields"]) == ["inf", "nan"]
    assert obj["meta.nonfinite_count"] == 2


# -- nesting --------------------------------------------------------------------------------
def test_nested_mappings_flatten_to_dotted_keys() -> None:
    """Nested dicts become dotted keys; non-dict mappings too."""
    event, _ = emit({
        "request": {"id": "r-1", "headers": {"count": 3}},
        "ordered": collections.OrderedDict([("a", 1), ("b", {"c": True})]),
    })
    assert user_fields(event) == {
        "request.id": "r-1", "request.headers.count": 3, "ordered.a": 1, "ordered.b.c": True,
    }


def test_nesting_deeper_than_five_becomes_a_json_string() -> None:
    """Five levels of mappings under a field flatten; a sixth is kept as a JSON string."""
    five = {"k1": {"k2": {"k3": {"k4": {"k5": {"k6": 7}}}}}}
    six = {"d1": {"d2": {"d3": {"d4": {"d5": {"d6": {"d7": 8, "x": [1]}}}}}}}
    event, _ = emit({**five, **six})
    fields = user_fields(event)
    assert fields["k1.k2.k3.k4.k5.k6"] == 7
    assert json.loads(fields["d1.d2.d3.d4.d5.d6"]) == {"d7": 8, "x": [1]}
    assert set(fields) == {"k1.k2.k3.k4.k5.k6", "d1.d2.d3.d4.d5.d6"}
    assert event["meta.truncated_fields"] == ["d1.d2.d3.d4.d5.d6"]


# -- other types ----------------------------------------------------------------------------
def test_datetimes_become_rfc3339_utc() -> None:
    """Naive datetimes are taken as UTC, aware ones converted to UTC, microseconds kept."""
    plus2 = dt.timezone(dt.timedelta(hours=2))
    event, _ = emit({
        "naive": dt.datetime(2024, 1, 2, 3, 4, 5, 6),
        "aware": dt.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=plus2),
        "utc": dt.datetime(2024, 12, 31, 23, 59, 59, tzinfo=dt.UTC),
        "np_us": np.datetime64("2024-01-02T03:04:05.123456"),
    })
    assert user_fields(event) == {
        "naive": "2024-01-02T03:04:05.000006Z",
        "aware": "2024-01-02T01:04:05.000006Z",
        "utc": "2024-12-31T23:59:59.000000Z",
        "np_us": "2024-01-02T03:04:05.123456Z",
    }


def test_event_timestamp_is_rfc3339_utc_with_microseconds() -> None:
    """The event's own timestamp is RFC 3339 UTC with microseconds, close to now."""
    before = dt.datetime.now(dt.UTC)
    event, _ = emit({})
    assert RFC3339_UTC.match(event["timestamp"])
    stamp = dt.datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))
    assert abs((stamp - before).total_seconds()) < 60


def test_numpy_nanosecond_datetime_becomes_rfc3339() -> None:
    """A nanosecond numpy datetime64 (as pandas produces) becomes RFC 3339 UTC, not an int."""
    event, _ = emit({"ns": np.datetime64("2024-01-02T03:04:05.123456789")})
    assert event["ns"] == "2024-01-02T03:04:05.123456Z"


def test_decimal_becomes_a_number() -> None:
    """Decimals become JSON numbers (int when integral); NaN decimals null and named."""
    event, _ = emit({"half": decimal.Decimal("1.5"), "whole": decimal.Decimal("42"),
                     "neg": decimal.Decimal("-0.125"), "nan": decimal.Decimal("NaN")})
    got = {k: (type(v).__name__, v) for k, v in user_fields(event).items()}
    assert got == {"half": ("float", 1.5), "whole": ("int", 42), "neg": ("float", -0.125),
                   "nan": ("NoneType", None)}
    assert event["meta.nonfinite_fields"] == ["nan"]


def test_decimal_beyond_float_range_is_not_a_silent_null() -> None:
    """A Decimal too large for a float never leaves an infinite float or an unnamed null."""
    event, _ = emit({"huge": decimal.Decimal("1e400")})
    value = event["huge"]
    assert isinstance(value, str) or (value is None and "huge" in event["meta.nonfinite_fields"])


def test_uuid_enum_and_path_become_strings() -> None:
    """UUID, a string-valued Enum and paths become strings."""
    uid = uuid.UUID("12345678-1234-5678-1234-567812345678")
    event, _ = emit({"uid": uid, "color": Color.RED, "point": Color.POINT,
                     "path": pathlib.Path("/srv/models/ranker.onnx"),
                     "pure": pathlib.PurePosixPath("data/x.parquet")})
    assert user_fields(event) == {
        "uid": "12345678-1234-5678-1234-567812345678", "color": "red", "point": "POINT",
        "path": "/srv/models/ranker.onnx", "pure": "data/x.parquet",
    }


def test_bytes_become_length_and_sha256_prefix() -> None:
    """bytes, bytearray and memoryview become their length and a SHA-256 prefix."""
    blob = bytes(range(256)) * 4096  # 1 MiB
    event, _ = emit({"abc": b"abc", "ba": bytearray(b"\x00\xff"), "mv": memoryview(b"xyz"),
                     "blob": blob})
    for key, raw in (("abc", b"abc"), ("ba", b"\x00\xff"), ("mv", b"xyz"), ("blob", blob)):
        m = BYTES_SUMMARY.match(event[key])
        assert m is not None, event[key]
        assert int(m.group(1)) == len(raw)
        assert hashlib.sha256(raw).hexdigest().startswith(m.group(2))


def test_integers_beyond_64_bits_become_strings() -> None:
    """Integers outside the 64-bit range become decimal strings; 64-bit ones stay numbers."""
    event, _ = emit({"i63max": 2**63 - 1, "i64min": -(2**63), "u64max": 2**64 - 1,
                     "over": 2**64, "under": -(2**63) - 1, "huge": 10**40,
                     "mixed": [2**70, 1]})
    assert user_fields(event) == {
        "i63max": 9223372036854775807, "i64min": -9223372036854775808,
        "u64max": 18446744073709551615, "over": "18446744073709551616",
        "under": "-9223372036854775809", "huge": "1" + "0" * 40,
        "mixed": ["1180591620717411303424", 1],
    }


def test_lone_surrogates_become_replacement_characters(file_events: FileEvents) -> None:
    """Lone surrogates in values, keys, nested keys and list items become U+FFFD."""
    (line,) = file_events.emit({"v": "a\ud800b", "k\udfff": 1, "n": {"x\ud83d": 2},
                                "items": ["\udc00"]})
    obj = parse_line(line)
    assert {k: obj[k] for k in ("v", "k\ufffd", "n.x\ufffd", "items")} == {
        "v": "a\ufffdb", "k\ufffd": 1, "n.x\ufffd": 2, "items": ["\ufffd"],
    }


def test_non_string_keys_become_str() -> None:
    """Non-string keys are converted with str(), at the top level and nested."""
    event, _ = emit({1: "a", (1, 2): "b", None: "c", 2.5: "d", "m": {7: "x"}})
    assert user_fields(event) == {"1": "a", "(1, 2)": "b", "None": "c", "2.5": "d", "m.7": "x"}


# -- hostile objects ------------------------------------------------------------------------
def test_objects_whose_dunders_raise_become_a_bounded_repr() -> None:
    """Values whose repr/str/eq/hash raise become a string naming their type; nothing raises."""
    with capture_events() as events:
        with wideevents.event("values", kw=Hostile()) as ev:
            ev.add({"v": Hostile(), "in_list": [Hostile(), 1], "nested": {"h": Hostile()}})
            ev.add(k=Hostile())
            ev["item"] = Hostile()
            wideevents.add({"module": Hostile()})
    (event,) = events
    for key in ("kw", "v", "k", "item", "module", "nested.h"):
        assert isinstance(event[key], str) and "Hostile" in event[key], (key, event[key])
    assert len(event["in_list"]) == 2 and event["in_list"][1] == 1
    json.dumps(event, allow_nan=False)


def test_huge_and_odd_reprs_are_bounded() -> None:
    """A 5 MB repr and an object whose __getattr__ raises become bounded strings."""
    event, _ = emit({"huge": HugeRepr(), "odd": RaisingGetattr()})
    assert event["huge"].startswith("<xxxx")
    assert len(event["huge"].encode()) <= MAX_STRING_BYTES
    assert isinstance(event["odd"], str) and "RaisingGetattr" in event["odd"]


def test_key_whose_str_raises_still_gives_a_string_key() -> None:
    """A key whose str() and repr() raise becomes some string key; the value is kept."""
    event, _ = emit({HostileKey(): 1})
    fields = user_fields(event)
    assert list(fields.values()) == [1]
    assert all(type(k) is str for k in fields)


def test_adding_an_array_instead_of_a_mapping_does_not_raise() -> None:
    """ev.add(array) and wideevents.add(array) are contained (logged), never raised."""
    with capture_events() as events:
        with wideevents.event("values") as ev:
            ev.add(np.array([1, 2]))  # type: ignore[arg-type]
            wideevents.add(np.array([3, 4]))  # type: ignore[arg-type]
            ev.add(ok=1)
    assert events[0]["ok"] == 1


def test_adding_a_mapping_whose_len_raises_does_not_raise() -> None:
    """ev.add(mapping) with a raising __bool__/__len__ never raises into the caller."""
    with capture_events() as events:
        with wideevents.event("values") as ev:
            ev.add(FalsyBoom(a=1))
            ev.add(ok=1)
    assert events[0]["ok"] == 1


def test_incr_with_a_hostile_amount_does_not_raise() -> None:
    """ev.incr(key, by=obj) never raises, whatever obj's arithmetic does."""
    with capture_events() as events:
        with wideevents.event("values") as ev:
            ev.incr("hits", RaisingAdd())  # type: ignore[arg-type]
            ev.add(ok=1)
    assert events[0]["ok"] == 1


def test_recursive_containers_do_not_raise() -> None:
    """Self-referencing lists and dicts give a bounded, JSON-ready event."""
    loop_list: list[Any] = [1]
    loop_list.append(loop_list)
    loop_dict: dict[str, Any] = {"a": 1}
    loop_dict["self"] = loop_dict
    mutual: dict[str, Any] = {"items": []}
    mutual["items"].append(mutual)
    event, _ = emit({"list": loop_list, "dict": loop_dict, "mutual": mutual})
    text = json.dumps(event, allow_nan=False)
    assert len(text) < 100_000
    assert event["list"][0] == 1
    assert event["dict.a"] == 1
    assert any(k.startswith("mutual") for k in event)


# -- limits ---------------------------------------------------------------------------------
def test_megabyte_string_is_truncated_to_64_kb_and_counted() -> None:
    """A 1 MB string becomes its first 64 KB, named in meta and counted in stats()."""
    event, stats = emit({"big": "a" * 1_048_576, "edge": "b" * MAX_STRING_BYTES})
    assert event["big"] == "a" * MAX_STRING_BYTES
    assert event["edge"] == "b" * MAX_STRING_BYTES
    assert event["meta.truncated_fields"] == ["big"]
    assert event["meta.truncated_count"] == 1
    assert sum(stats["fields"]["truncated"].values()) == 1


def test_multibyte_string_is_cut_on_a_character_boundary() -> None:
    """Truncation of 2- and 4-byte characters keeps a valid UTF-8 prefix of at most 64 KB."""
    two = "é" * 600_000
    four = "😀" * 300_000
    event, stats = emit({"two": two, "four": four})
    for key, original in (("two", two), ("four", four)):
        value = event[key]
        size = len(value.encode("utf-8"))
        assert MAX_STRING_BYTES - 4 < size <= MAX_STRING_BYTES
        assert original.startswith(value)
    assert sum(stats["fields"]["truncated"].values()) == 2


def test_ten_thousand_fields_are_capped_at_2000_keeping_identity() -> None:
    """10,000 fields: at most 2,000 (meta included), identity kept, drops named and counted."""
    with capture_events() as events:
        with wideevents.event("values") as ev:
            ev.add({f"f{i}": i for i in range(10_000)})
            trace_id, span_id = ev.trace_id, ev.span_id
        stats = wideevents.stats()
    (event,) = events
    assert len(event) <= MAX_FIELDS
    assert event["name"] == "values"
    assert (event["trace.trace_id"], event["trace.span_id"]) == (trace_id, span_id)
    assert RFC3339_UTC.match(event["timestamp"])
    assert event["service.name"]
    kept = [k for k in event if re.fullmatch(r"f\d+", k)]
    assert all(event[k] == int(k[1:]) for k in kept)
    assert len(kept) + event["meta.dropped_count"] == 10_000
    assert 0 < len(event["meta.dropped_fields"]) <= 20
    assert not set(event["meta.dropped_fields"]) & set(kept)
    assert sum(stats["fields"]["dropped"].values()) == event["meta.dropped_count"]


def test_ten_thousand_nested_fields_are_capped_at_2000() -> None:
    """A nested mapping that flattens to 10,000 fields is capped the same way."""
    event, stats = emit({"wide": {str(i): i for i in range(10_000)}})
    assert len(event) <= MAX_FIELDS
    kept = [k for k in event if k.startswith("wide.")]
    assert len(kept) + event["meta.dropped_count"] == 10_000
    assert sum(stats["fields"]["dropped"].values()) == event["meta.dropped_count"]


def test_field_cap_holds_for_fields_under_identity_prefixes() -> None:
    """The 2,000-field cap holds even when the extra fields sit under model.*."""
    event, _ = emit({f"model.weight_{i}": i for i in range(10_000)})
    assert len(event) <= MAX_FIELDS


def test_event_over_one_megabyte_is_cut_below_it_and_counted(file_events: FileEvents) -> None:
    """Twenty 60 KB fields (1.2 MB) give a JSON line under 1 MB; drops named and counted."""
    blobs = {f"blob{i}": chr(ord("a") + i) * 60_000 for i in range(20)}
    (line,) = file_events.emit(blobs)
    assert len(line) < MAX_EVENT_BYTES
    obj = parse_line(line)
    kept = [k for k in blobs if k in obj]
    assert all(obj[k] == blobs[k] for k in kept)
    assert len(kept) + obj["meta.dropped_count"] == 20
    assert obj["meta.dropped_count"] >= 4  # 200 KB over the limit, 60 KB each
    assert set(obj["meta.dropped_fields"]) == set(blobs) - set(kept)
    assert obj["name"] == "values" and "trace.trace_id" in obj
    assert sum(wideevents.stats()["fields"]["dropped"].values()) == obj["meta.dropped_count"]


def test_one_megabyte_cap_holds_for_fields_under_identity_prefixes(
        file_events: FileEvents) -> None:
    """Twenty 60 KB strings under model.* still give a JSON line under 1 MB."""
    (line,) = file_events.emit({f"model.blob{i}": "m" * 60_000 for i in range(20)})
    assert len(line) < MAX_EVENT_BYTES


def test_one_megabyte_cap_holds_for_a_huge_key(file_events: FileEvents) -> None:
    """A field whose key is 2 MB long still gives a JSON line under 1 MB."""
    (line,) = file_events.emit({"k" * 2_000_000: 1})
    assert len(line) < MAX_EVENT_BYTES


# -- snapshot semantics ---------------------------------------------------------------------
def test_nested_containers_and_buffers_are_snapshotted() -> None:
    """Mutating nested lists, dicts, bytearrays and array-likes after add() changes nothing."""
    inner = [1, 2]
    outer: dict[str, Any] = {"inner": inner, "arr": np.array([1.0, 2.0])}
    buf = bytearray(b"ab")
    backing = [0.5, 1.5]
    jax_like = JaxLikeArray(backing)
    tup = (inner, 3)
    with capture_events() as events:
        with wideevents.event("values") as ev:
            ev.add({"outer": outer, "buf": buf, "jax": jax_like, "tup": tup})
            inner.append(99)
            outer["arr"][0] = 42.0
            outer["new"] = 1
            buf.extend(b"cd")
            backing[0] = 7.0
    (event,) = events
    fields = user_fields(event)
    buf_summary = BYTES_SUMMARY.match(fields.pop("buf"))
    assert buf_summary is not None and int(buf_summary.group(1)) == 2
    assert hashlib.sha256(b"ab").hexdigest().startswith(buf_summary.group(2))
    assert fields == {"outer.inner": [1, 2], "outer.arr": [1.0, 2.0], "jax": [0.5, 1.5],
                      "tup": ["[1,2]", 3]}


class UserList(list):  # type: ignore[type-arg]
    """A list subclass, as many libraries return."""


@pytest.mark.parametrize("factory, expected", [
    pytest.param(UserList, [1, 2], id="list-subclass"),
    pytest.param(collections.deque, [1, 2], id="deque"),
    pytest.param(list, [1, 2], id="list"),
    pytest.param(tuple, [1, 2], id="tuple"),
])
def test_mutable_sequences_are_snapshotted(factory: Any, expected: Any) -> None:
    """Appending to a sequence after add() does not change the event."""
    seq = factory([1, 2])
    with capture_events() as events:
        with wideevents.event("values") as ev:
            ev.add({"seq": seq})
            if hasattr(seq, "append"):
                seq.append(3)
    assert events[0]["seq"] == expected


# -- property tests -------------------------------------------------------------------------
SURROGATES = st.characters(categories=["Cs"])
TEXT = st.text(st.one_of(st.characters(exclude_categories=()), SURROGATES), max_size=24)
KEYS = st.one_of(TEXT, st.integers(-5, 5), st.none(), st.booleans())
OFFSETS = st.builds(dt.timezone, st.timedeltas(min_value=dt.timedelta(hours=-23),
                                               max_value=dt.timedelta(hours=23)))
NUMPY_DTYPES = st.one_of(hnp.scalar_dtypes(), hnp.unicode_string_dtypes(max_len=4),
                         hnp.byte_string_dtypes(max_len=4))
NUMPY_ARRAYS = hnp.arrays(dtype=NUMPY_DTYPES,
                          shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=7))
NUMPY_SCALARS = hnp.arrays(dtype=hnp.scalar_dtypes(), shape=()).map(lambda a: a[()])
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(-(2**130), 2**130), st.floats(),
    TEXT, st.binary(max_size=40),
    st.datetimes(timezones=st.one_of(st.none(), st.just(dt.UTC), OFFSETS)),
    st.dates(), st.timedeltas(), st.decimals(places=None), st.uuids(),
    st.sampled_from([Color.RED, Color.POINT, pathlib.PurePosixPath("/a/b"), 1 + 2j]),
    st.builds(pathlib.PurePosixPath, st.text(max_size=10)),
    NUMPY_SCALARS, NUMPY_ARRAYS,
    st.lists(st.floats(), min_size=120, max_size=140),
    st.builds(JaxLikeArray, st.lists(st.floats(), max_size=140)),
    st.builds(Hostile), st.builds(RaisingGetattr),
)
VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.tuples(children, children),
        st.dictionaries(KEYS, children, max_size=4),
    ),
    max_leaves=12,
)
EVENT_FIELDS = st.dictionaries(KEYS, VALUES, max_size=6)
PROPERTY_SETTINGS = settings(
    max_examples=150, derandomize=True, deadline=None, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                           HealthCheck.large_base_example],
)


# Arrays of huge floats overflow numpy's sum (the known .mean bug above); its warning is noise here.
@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_any_value_gives_one_valid_json_line(tmp_path: Path) -> None:
    """Any mix of section 4's value types gives exactly one strict-JSON line, never raising."""
    sink = FileEvents(tmp_path / "property.jsonl")

    @PROPERTY_SETTINGS
    @given(EVENT_FIELDS)
    def check(fields: dict[Any, Any]) -> None:
        lines = sink.emit(fields)
        assert len(lines) == 1
        obj = parse_line(lines[0])
        assert obj["name"] == "values"
        assert RFC3339_UTC.match(obj["timestamp"])
        assert len(lines[0]) < MAX_EVENT_BYTES and len(obj) <= MAX_FIELDS

    try:
        check()
    finally:
        wideevents.shutdown(timeout=2.0)


def test_any_value_gives_flat_json_scalars_in_memory() -> None:
    """Finished events hold only string keys and JSON scalars or flat lists of them."""

    @PROPERTY_SETTINGS
    @given(EVENT_FIELDS.filter(lambda f: not _hits_known_bug(f)))
    def check(fields: dict[Any, Any]) -> None:
        event, _ = emit(fields)
        for key, value in event.items():
            assert type(key) is str
            key.encode("utf-8")  # no lone surrogates
            if type(value) is list:
                assert all(is_json_scalar(x) for x in value), (key, value)
            else:
                assert is_json_scalar(value), (key, value)
            if type(value) is str:
                value.encode("utf-8")
                assert len(value.encode("utf-8")) <= MAX_STRING_BYTES

    check()


def _hits_known_bug(value: Any) -> bool:
    """Inputs of the two known bugs that have their own xfail tests above: a Decimal beyond
    float range, and a summarised array whose values overflow a float sum."""
    if isinstance(value, decimal.Decimal):
        return value.is_finite() and abs(value) > decimal.Decimal("1e300")
    if isinstance(value, dict):
        return any(_hits_known_bug(v) for v in value.values())
    if isinstance(value, (list, tuple, np.ndarray, JaxLikeArray)):
        items = np.asarray(value).ravel().tolist() if not isinstance(value, (list, tuple)) \
            else list(value)
        if len(items) > 128:
            finite = [abs(x) for x in items if type(x) is float and math.isfinite(x)]
            if finite and max(finite) > 1e300:
                return True
        return any(_hits_known_bug(v) for v in items if isinstance(v, (dict, list, tuple)))
    return False
