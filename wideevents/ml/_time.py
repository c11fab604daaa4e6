"""Points in time as the ML helpers accept them: the core's one rule
(:func:`wideevents._core.timefmt.unix_ns`), in Unix seconds."""

from __future__ import annotations

from typing import Any

from .._core.timefmt import unix_ns

__all__ = ["unix_seconds"]


def unix_seconds(value: Any) -> float | None:
    """``value`` as Unix seconds, or None if it is not a point in time in the years 0001-9999.

    A datetime without a time zone is taken as UTC (how training metadata is usually
    written); a date means its midnight UTC; strings are ISO 8601; numbers are read in the
    unit their magnitude says (at least 1e17 nanoseconds, 1e14 microseconds, 1e11
    milliseconds, else seconds: docs/schema.md, ``timestamp``). pandas ``Timestamp``,
    numpy ``datetime64`` and objects with a ``.timestamp()`` method are accepted.
    """
    ns = unix_ns(value)
    return None if ns is None else ns / 1_000_000_000  # int / int: correctly rounded
