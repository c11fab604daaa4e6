"""Points in time as the ML helpers accept them: datetimes, Unix seconds, ISO 8601 strings."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from typing import Any

__all__ = ["unix_seconds"]


def unix_seconds(value: Any) -> float | None:
    """``value`` as Unix seconds, or None if it is not a point in time.

    A datetime without a time zone is taken as UTC (how training metadata is usually
    written); a date means its midnight UTC; numbers are Unix seconds; strings are ISO 8601.
    Objects with a ``.timestamp()`` method (pandas ``Timestamp``) are accepted as they are.
    """
    try:
        if isinstance(value, bool):
            return None
        if isinstance(value, (int, float)):
            seconds = float(value)
            return seconds if math.isfinite(seconds) else None
        if isinstance(value, str):
            value = datetime.fromisoformat(value.strip())
        elif isinstance(value, date) and not isinstance(value, datetime):
            value = datetime(value.year, value.month, value.day, tzinfo=UTC)
        if isinstance(value, datetime):
            if value.tzinfo is None:
                value = value.replace(tzinfo=UTC)
            return float(value.timestamp())
        stamp = getattr(value, "timestamp", None)
        if callable(stamp):
            seconds = float(stamp())  # may be Any-typed
            return seconds if math.isfinite(seconds) else None
    except Exception:  # noqa: BLE001 - a user's timestamp() or __float__ may raise anything
        pass
    return None
