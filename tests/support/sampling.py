"""Shared helpers for the sampling tests: an injectable clock, synthetic traffic and an
independent re-implementation of the beelines' deterministic rule."""

from __future__ import annotations

import hashlib
import random
import struct
from collections.abc import Iterator, Sequence
from fractions import Fraction
from typing import Any

MAX_UINT32 = 4294967295  # 2**32 - 1, written out


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def reference_keep(value: str, rate: int, salt: str = "") -> bool:
    """The beelines' rule as written in issue 7, in exact arithmetic."""
    if rate == 1:
        return True
    (first,) = struct.unpack(">I", hashlib.sha1((value + salt).encode("utf-8")).digest()[:4])
    return Fraction(first) < Fraction(MAX_UINT32, rate)


def trace_ids(n: int, seed: int) -> list[str]:
    """n W3C-style trace ids (32 hex digits) from a seeded generator."""
    rng = random.Random(seed)
    return [f"{rng.getrandbits(128):032x}" for _ in range(n)]


def keyed_traffic(
    mix: Sequence[tuple[tuple[str, int], float]], n: int, seed: int
) -> Iterator[dict[str, Any]]:
    """n events whose (name, status) key is drawn from ``mix`` (key, probability)."""
    rng = random.Random(seed)
    keys = [k for k, _ in mix]
    weights = [w for _, w in mix]
    for key in rng.choices(keys, weights=weights, k=n):
        yield {"name": key[0], "http.response.status_code": key[1], "duration_ms": 12.5}
