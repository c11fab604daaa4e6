"""The one sample-rate rule, used by the pipeline, every sink and both query engines.

An event's ``samplerate`` says how many events it stands for. Honeycomb's Events API
takes an integer, OTLP's ``SampleRate`` attribute is an integer, and queries weight each
event by it. The rule (docs/sampling.md, "Sample rates"):

- a number, or a string that is a decimal number (``"2.6"``, ``" 3 "``, ``"1e2"``), is
  rounded to the nearest integer, halves up (``2.5`` -> 3), and is at least 1 (0 or a
  negative number count as 1, as Honeycomb counts a missing or 0 rate) and at most
  2**63 - 1;
- anything else (a bool, NaN, infinity, ``"abc"``, a list...) counts as 1, and the
  pipeline counts it as a field problem (``stats()["fields"]["dropped"]["bad_samplerate"]``)
  and removes the field.

:data:`NUMERIC_PATTERN` is the same "decimal number" test as a regular expression, for
the SQL of the local query engine.
"""

from __future__ import annotations

import math
import numbers
import re
from typing import Any

__all__ = ["MAX_RATE", "NUMERIC_PATTERN", "coerce", "sample_rate"]

MAX_RATE = 2**63 - 1
NUMERIC_PATTERN = r"[ \t\n\r]*[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[ \t\n\r]*"
_NUMERIC = re.compile(NUMERIC_PATTERN + r"\Z")


def coerce(value: Any) -> int | None:
    """The integer rate ``value`` stands for, or None when it is not a number (rule above)."""
    if type(value) is int:
        return 1 if value < 1 else (value if value <= MAX_RATE else MAX_RATE)
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        if len(value) > 64 or not _NUMERIC.match(value):
            return None
        number = float(value)
    elif isinstance(value, numbers.Real):
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError):
            return None
    else:
        return None
    if not math.isfinite(number):
        return None
    if number < 1.5:
        return 1
    if number >= MAX_RATE:
        return MAX_RATE
    return math.floor(number + 0.5)


def sample_rate(value: Any) -> int:
    """``value`` as a sample rate: :func:`coerce`, and 1 for anything that is not a number."""
    rate = coerce(value)
    return 1 if rate is None else rate
