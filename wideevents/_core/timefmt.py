"""RFC 3339 timestamps: the one formatter every part of wideevents writes times with, and
the one rule that reads a user's point in time (:func:`unix_ns`).

Always UTC with a ``Z`` suffix; events carry microseconds
(``2026-11-27T10:57:44.035957Z``), query result buckets whole seconds
(``2026-11-27T10:57:00Z``, as Honeycomb's series do). Naive datetimes are taken as UTC.
The per-second prefix is cached, so the worker formats each event's time with one
integer division and one f-string.

Only years 0001-9999 can be written (RFC 3339 section 5.6: ``date-fullyear = 4DIGIT``):
:func:`unix_ns` returns None outside them, and formatting a time outside them raises
ValueError.
"""

from __future__ import annotations

import calendar
import datetime as _dt
import math
import operator
import sys
import time
from typing import Any

__all__ = ["MAX_NS", "MIN_NS", "datetime_ns", "rfc3339", "rfc3339_ns", "unix_ns"]

_NS_PER_S = 1_000_000_000
_MIN_SEC = -62_135_596_800  # 0001-01-01T00:00:00Z
_MAX_SEC = 253_402_300_799  # 9999-12-31T23:59:59Z
MIN_NS = _MIN_SEC * _NS_PER_S
MAX_NS = (_MAX_SEC + 1) * _NS_PER_S - 1

# How a bare number is read, by magnitude (docs/schema.md, ``timestamp``): today is about
# 1.7e9 s = 1.7e12 ms = 1.7e15 us = 1.7e18 ns, so each unit owns three decades around it.
# Seconds up to 1e11 reach the year 5138; milliseconds from 1e11 start in 1973.
_NS_FROM = 1e17
_US_FROM = 1e14
_MS_FROM = 1e11

_cache: tuple[int, str] = (-1, "")


def _prefix(sec: int) -> str:
    global _cache
    cached_sec, prefix = _cache  # one tuple: atomic for concurrent callers
    if sec != cached_sec:
        if not _MIN_SEC <= sec <= _MAX_SEC:
            raise ValueError(f"{sec} s after the epoch is outside the years 0001-9999")
        tm = time.gmtime(sec)
        prefix = (f"{tm.tm_year:04d}-{tm.tm_mon:02d}-{tm.tm_mday:02d}"
                  f"T{tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d}")
        _cache = (sec, prefix)
    return prefix


def rfc3339_ns(ns: int) -> str:
    """Unix nanoseconds as RFC 3339 UTC with microseconds (the worker's per-event call)."""
    sec, rem = divmod(ns, 1_000_000_000)
    cached_sec, prefix = _cache
    if sec != cached_sec:
        prefix = _prefix(sec)
    return f"{prefix}.{rem // 1000:06d}Z"


def datetime_ns(value: _dt.datetime) -> int:
    """A datetime (naive = UTC) as Unix nanoseconds, exact to the microsecond.

    Computed from the fields and the UTC offset, not with ``astimezone`` (which raises
    OverflowError for ``datetime.max`` west of UTC): the result may lie outside
    [MIN_NS, MAX_NS], for the caller to check.
    """
    offset = value.utcoffset()
    ns = (calendar.timegm(value.timetuple()) * _NS_PER_S + value.microsecond * 1000)
    if offset is not None:
        ns -= (offset // _dt.timedelta(microseconds=1)) * 1000
    return ns


def rfc3339(value: float | _dt.datetime | None = None, *, fraction: bool = True) -> str:
    """Unix seconds or a datetime (naive = UTC; None = now) as RFC 3339 UTC.

    ``fraction=False`` writes whole seconds (``...:00Z``), as query series times are shown.
    Raises ValueError for a time outside the years 0001-9999.
    """
    if value is None:
        ns = time.time_ns()
    elif isinstance(value, _dt.datetime):
        ns = datetime_ns(value)
    else:
        ns = round(value * 1e6) * 1000
    if fraction:
        return rfc3339_ns(ns)
    return f"{_prefix(ns // 1_000_000_000)}Z"


# -- reading a user's point in time ----------------------------------------------------------
def unix_ns(value: Any) -> int | None:
    """``value`` as Unix nanoseconds, or None when it is not a point in time RFC 3339 can
    write (years 0001-9999). Never raises.

    Accepted: a number (its unit read from its magnitude: at least 1e17 nanoseconds, 1e14
    microseconds, 1e11 milliseconds, else seconds; numpy numbers and Decimal included), a
    ``datetime`` (naive = UTC; pandas ``Timestamp`` included), a ``date`` (its midnight
    UTC), ISO 8601 text, a numpy ``datetime64``, or an object with a ``timestamp()`` method
    returning Unix seconds. Rejected: bools, NaN, infinities, NaT, anything else.
    """
    try:
        ns = _to_ns(value)
    except Exception:  # noqa: BLE001 - a user value's hooks (__float__, utcoffset) may raise anything
        return None
    if ns is None or not MIN_NS <= ns <= MAX_NS:
        return None
    return ns


def _int_ns(value: int) -> int:
    """A whole number of seconds, milliseconds, microseconds or nanoseconds, by magnitude."""
    size = abs(value)
    if size >= _NS_FROM:
        return value
    if size >= _US_FROM:
        return value * 1000
    if size >= _MS_FROM:
        return value * 1_000_000
    return value * _NS_PER_S


def _float_ns(value: float) -> int | None:
    """:func:`_int_ns` for a float, rounded to the microsecond (what RFC 3339 text shows:
    a float holds today's Unix microseconds exactly, not its nanoseconds)."""
    if not math.isfinite(value):
        return None
    size = abs(value)
    if size >= _NS_FROM:
        return round(value / 1000) * 1000
    if size >= _US_FROM:
        return round(value) * 1000
    if size >= _MS_FROM:
        return round(value * 1e3) * 1000
    return round(value * 1e6) * 1000


def _to_ns(value: Any) -> int | None:
    t = type(value)
    if t is int:
        return _int_ns(value)
    if t is float:
        return _float_ns(value)
    if t is bool or value is None:
        return None
    if isinstance(value, _dt.datetime):
        return datetime_ns(value)
    if isinstance(value, _dt.date):
        return calendar.timegm((value.year, value.month, value.day, 0, 0, 0)) * _NS_PER_S
    if isinstance(value, str):
        return datetime_ns(_dt.datetime.fromisoformat(value.strip()))
    if isinstance(value, (bytes, bytearray, memoryview, list, tuple, dict, set, frozenset)):
        return None
    if getattr(t, "__module__", None) == "numpy":
        name = t.__name__
        if name == "datetime64":
            return _datetime64_ns(value)
        if name in ("bool", "bool_", "timedelta64"):
            return None
    if isinstance(value, int):  # an int subclass (bool is handled above)
        return _int_ns(int(value))
    if isinstance(value, float):
        return _float_ns(float(value))
    stamp = getattr(value, "timestamp", None)
    if callable(stamp):  # by its contract, Unix seconds (arrow, pendulum, ...)
        seconds = float(stamp())
        return round(seconds * 1e6) * 1000 if math.isfinite(seconds) else None
    try:
        return _int_ns(operator.index(value))  # numpy integers
    except TypeError:
        pass
    return _float_ns(float(value))  # numpy floats, Decimal, Fraction


_UNIT_NS = {"W": 7 * 86_400 * _NS_PER_S, "D": 86_400 * _NS_PER_S, "h": 3_600 * _NS_PER_S,
            "m": 60 * _NS_PER_S, "s": _NS_PER_S, "ms": 1_000_000, "us": 1_000, "ns": 1}
_SUB_NS = {"ps": 1_000, "fs": 1_000_000, "as": 1_000_000_000}


def _datetime64_ns(value: Any) -> int | None:
    """A numpy datetime64 of any unit, in exact integer arithmetic (no numpy import: a
    datetime64 exists only when numpy is loaded). NaT and years outside 1-9999 give None."""
    np = sys.modules["numpy"]
    if np.isnat(value):
        return None
    unit, count = np.datetime_data(value.dtype)
    raw = int(value.astype("int64")) * int(count)  # how many units after the epoch
    if unit in _UNIT_NS:
        return raw * _UNIT_NS[unit]
    if unit in _SUB_NS:
        return raw // _SUB_NS[unit]
    if unit == "Y":
        year, month = 1970 + raw, 1
    elif unit == "M":
        year, month = 1970 + raw // 12, raw % 12 + 1
    else:
        return None
    if not 1 <= year <= 9999:
        return None
    return calendar.timegm((year, month, 1, 0, 0, 0)) * _NS_PER_S
