"""Containment for the ML helpers: bad input is counted, never raised.

Every helper collects what went wrong in a :class:`Problems` and writes it into its fields as
``meta.ml_error_count`` (how many problems) and ``meta.ml_error_reasons`` (distinct short
reasons, at most :data:`MAX_REASONS`). Reasons are fixed phrases without numbers, so they stay
low-cardinality in queries; the numbers go to the log, once per reason.
"""

from __future__ import annotations

import math
import operator
from typing import Any

from .._core.log import log_once
from .._core.normalize import safe_repr

__all__ = ["COUNT_KEY", "MAX_REASONS", "REASONS_KEY", "Problems", "as_float", "as_index",
           "merge_counts"]

COUNT_KEY = "meta.ml_error_count"
REASONS_KEY = "meta.ml_error_reasons"
MAX_REASONS = 10


_DETAIL_CHARS = 200


# A user's value converts through its own hooks (__index__, __float__), which may raise
# anything: any failure means "not a number here", a problem to count, not an internal
# error that would lose the helper's other fields.
def as_index(value: Any) -> int | None:
    """``operator.index(value)``, or None when the value is not an integer."""
    try:
        return operator.index(value)
    except Exception:  # noqa: BLE001 - a user value's __index__ may raise anything
        return None


def as_float(value: Any) -> float:
    """``float(value)``, or NaN when the value is not a number."""
    try:
        return float(value)
    except Exception:  # noqa: BLE001 - a user value's __float__ may raise anything
        return math.nan


class _Detail:
    """Formats the offending value lazily: only a message that is logged pays for it."""

    __slots__ = ("value",)

    def __init__(self, value: object) -> None:
        self.value = value

    def __str__(self) -> str:
        value = self.value
        if type(value) is str:
            return value[:_DETAIL_CHARS]
        return safe_repr(value, _DETAIL_CHARS)


class Problems:
    """The problems one helper call ran into."""

    __slots__ = ("count", "reasons")

    def __init__(self) -> None:
        self.count = 0
        self.reasons: list[str] = []

    def add(self, reason: str, detail: object = None, *, log: bool = True) -> None:
        """Count one problem; log ``reason`` (with ``detail``) the first time it is seen.

        ``detail`` is any object (the offending value, an exception); it is turned into a
        short string only if the message is actually logged, and that never raises.
        ``log=False``: the caller logs it its own way.
        """
        self.count += 1
        if reason not in self.reasons and len(self.reasons) < MAX_REASONS:
            self.reasons.append(reason)
        if not log:
            return
        if detail is None:
            log_once("ml:" + reason, "wideevents.ml: %s", reason)
        else:
            log_once("ml:" + reason, "wideevents.ml: %s (%s)", reason, _Detail(detail))

    def absorb(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Move another call's accounting out of ``fields`` into this collector."""
        self.count += fields.pop(COUNT_KEY, 0)
        for reason in fields.pop(REASONS_KEY, ()):
            if reason not in self.reasons and len(self.reasons) < MAX_REASONS:
                self.reasons.append(reason)
        return fields

    def into(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Add the accounting fields to ``fields`` (only when something went wrong)."""
        if self.count:
            fields[COUNT_KEY] = self.count
            fields[REASONS_KEY] = list(self.reasons)
        return fields


def merge_counts(
    old_count: Any, old_reasons: Any, count: int, reasons: list[str]
) -> tuple[int, list[str]]:
    """Accumulate one call's accounting into what an event already holds."""
    total = (old_count if type(old_count) is int else 0) + count
    merged = list(old_reasons) if isinstance(old_reasons, list) else []
    for reason in reasons:
        if reason not in merged and len(merged) < MAX_REASONS:
            merged.append(reason)
    return total, merged
