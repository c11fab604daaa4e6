"""Hypothesis strategies for hostile event contents, shared by the fuzz and property suites.

Values of every kind a user can put in an event (numpy scalars and arrays, NaN/Inf,
datetimes, bytes, lone surrogates, huge strings, recursive containers, objects whose
dunder methods raise, 400-deep nesting) and keys of every kind.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import strategies as st

from .hostile import Hostile, HostileKey

__all__ = [
    "WeirdStr", "any_text", "huge_text", "keys", "nested", "object_array", "plain_text",
    "recursive_dict", "recursive_list", "scalars", "values",
]


class WeirdStr(str):
    def __str__(self) -> str:
        raise RuntimeError("str")


class Color(enum.Enum):
    RED = "red"


def recursive_list() -> list[Any]:
    a: list[Any] = [1]
    a.append(a)
    return a


def recursive_dict() -> dict[str, Any]:
    d: dict[str, Any] = {"x": 1}
    d["self"] = d
    return d


def nested(depth: int) -> dict[str, Any]:
    root: dict[str, Any] = {}
    cur = root
    for _ in range(depth):
        cur["k"] = {}
        cur = cur["k"]
    cur["leaf"] = 1
    return root


def object_array() -> Any:
    arr = np.empty(2, dtype=object)
    arr[0] = Hostile()
    arr[1] = recursive_list()
    return arr


# Hypothesis leaves out surrogates: lone ones are spliced in explicitly.
plain_text = st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF), max_size=40)
any_text = st.one_of(plain_text, st.builds(lambda a, s, b: a + s + b, plain_text,
                                           st.sampled_from(["\ud800", "\udfff", "\udc80\ud83d"]),
                                           plain_text))
huge_text = st.builds(lambda c, n: c * n, st.sampled_from(["x", "é", "\U0001F600", "\ud800"]),
                      st.integers(0, 300_000))
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**80), 2**80), st.floats(allow_nan=True),
    any_text, st.binary(max_size=64),
    st.builds(lambda: Hostile()), st.builds(lambda: WeirdStr("w")), st.just(Color.RED),
    st.just(decimal.Decimal("NaN")), st.just(decimal.Decimal("1e400")), st.just(1 + 2j),
    st.builds(uuid.UUID, st.uuids().map(str)), st.just(Path("/tmp/x")),
    st.datetimes(timezones=st.none() | st.just(datetime.UTC)),
    st.builds(recursive_list), st.builds(recursive_dict), st.builds(object_array),
    st.integers(1, 400).map(nested),
    st.lists(st.floats(allow_nan=True), max_size=300).map(np.array),
)
# Huge strings as values and list items, not deeper inside containers: see
# test_containers_written_as_json_strings_respect_the_string_limit.
values = st.one_of(
    st.recursive(scalars, lambda inner: st.one_of(
        st.lists(inner, max_size=6), st.dictionaries(any_text, inner, max_size=6),
        st.frozensets(st.integers(), max_size=4)), max_leaves=20),
    huge_text, st.lists(huge_text | any_text, max_size=3))
keys = st.one_of(any_text, st.integers(), st.none(), st.floats(allow_nan=True),
                 st.tuples(st.integers(), any_text), st.builds(HostileKey),
                 st.integers(200, 2000).map(lambda n: "k" * n))
