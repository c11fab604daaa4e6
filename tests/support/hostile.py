"""Objects that fight a serialiser: the values and keys the value and fuzz tests put into
events (their fallback text must still name the class)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


class Hostile:
    """Raises from every hook a serialiser might call."""

    def __repr__(self) -> str:
        raise RuntimeError("repr")

    def __str__(self) -> str:
        raise RuntimeError("str")

    def __format__(self, spec: str) -> str:
        raise RuntimeError("format")

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("eq")

    def __hash__(self) -> int:
        raise RuntimeError("hash")

    def __len__(self) -> int:
        raise RuntimeError("len")

    def __iter__(self) -> Iterator[Any]:
        raise RuntimeError("iter")

    def __bool__(self) -> bool:
        raise RuntimeError("bool")

    def __float__(self) -> float:
        raise RuntimeError("float")

    def __index__(self) -> int:
        raise RuntimeError("index")

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(f"getattr {name}")


class HostileKey:
    """Hashable (so it can be a dict key), but converting it to text raises."""

    def __hash__(self) -> int:
        return 7

    def __eq__(self, other: object) -> bool:
        return other is self

    def __repr__(self) -> str:
        raise ValueError("repr")

    def __str__(self) -> str:
        raise ValueError("str")
