"""Configuration-time checks shared by the samplers (each raises a fix-it message)."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from typing import Any

from wideevents._errors import ConfigurationError

__all__ = ["SamplerFn", "check_int", "check_number", "check_rate", "sampler_name"]

# What the pipeline calls: the finished, normalised event -> 0 (drop) or its weight N >= 1.
SamplerFn = Callable[[Mapping[str, Any]], int]


def check_int(value: object, what: str, *, minimum: int, meaning: str, example: str) -> int:
    """An integer >= ``minimum`` (int or an integer type such as numpy.int64; not bool/float)."""
    number: int | None = None
    if not isinstance(value, (bool, float)):
        try:
            number = operator.index(value)  # type: ignore[arg-type]
        except TypeError:
            number = None
    if number is None:
        raise ConfigurationError(
            f"{what} must be a whole number >= {minimum} ({meaning}), got {value!r}; "
            f"write e.g. {what}={example}"
        )
    if number < minimum:
        raise ConfigurationError(
            f"{what} must be >= {minimum} ({meaning}), got {number}; write e.g. {what}={example}"
        )
    return number


def check_rate(value: object, what: str) -> int:
    """A sample rate: an integer >= 1, the N in "keep 1 event in N"."""
    if type(value) is int and value == 0:
        raise ConfigurationError(
            f"{what} must be >= 1 (keep 1 event in N; 1 keeps every event), got 0; write e.g. "
            f"{what}=10, or drop events with a RulesSampler rule whose sample_rate is 'drop'"
        )
    return check_int(
        value, what, minimum=1, meaning="keep 1 event in N; 1 keeps every event", example="10"
    )


def check_number(
    value: object, what: str, *, minimum: float, inclusive: bool = True, example: str = "1"
) -> float:
    """A finite real number above ``minimum`` (inclusive or not); never bool."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    number = float(value) if ok else math.nan  # type: ignore[arg-type]
    if (
        not ok
        or not math.isfinite(number)
        or number < minimum
        or (not inclusive and number == minimum)
    ):
        bound = ">=" if inclusive else ">"
        raise ConfigurationError(
            f"{what} must be a finite number {bound} {minimum:g}, got {value!r}; "
            f"write e.g. {what}={example}"
        )
    return number


def sampler_name(sampler: object) -> str:
    """The key under ``stats()["samplers"]``: its ``name`` attribute, else the class name."""
    name = getattr(sampler, "name", None)
    return name if isinstance(name, str) and name else type(sampler).__name__
