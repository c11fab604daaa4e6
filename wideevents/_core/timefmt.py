"""RFC 3339 timestamps: the one formatter every part of wideevents writes times with.

Always UTC with a ``Z`` suffix; events carry microseconds
(``2026-11-27T10:57:44.035957Z``), query result buckets whole seconds
(``2026-11-27T10:57:00Z``, as Honeycomb's series do). Naive datetimes are taken as UTC.
The per-second prefix is cached, so the worker formats each event's time with one
integer division and one f-string.
"""

from __future__ import annotations

import calendar
import datetime as _dt
import time

__all__ = ["datetime_ns", "rfc3339", "rfc3339_ns"]

_cache: tuple[int, str] = (-1, "")


def _prefix(sec: int) -> str:
    global _cache
    cached_sec, prefix = _cache  # one tuple: atomic for concurrent callers
    if sec != cached_sec:
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
    """A datetime (naive = UTC) as Unix nanoseconds, exact to the microsecond."""
    if value.tzinfo is not None:
        value = value.astimezone(_dt.UTC)
    return (calendar.timegm(value.timetuple()) * 1_000_000_000 + value.microsecond * 1000)


def rfc3339(value: float | _dt.datetime | None = None, *, fraction: bool = True) -> str:
    """Unix seconds or a datetime (naive = UTC; None = now) as RFC 3339 UTC.

    ``fraction=False`` writes whole seconds (``...:00Z``), as query series times are shown.
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
