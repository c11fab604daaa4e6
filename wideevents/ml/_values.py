"""How the ML helpers read single values: what is missing, and when two categories are equal.

Missing values (:func:`is_missing`), of every kind ML code holds: ``None``, a float NaN
(Python, numpy), pandas' ``NA`` and ``NaT``, numpy's ``NaT`` (``datetime64`` /
``timedelta64``). pandas is never imported: its two markers are recognised by their type.

The canonical form of a category (:func:`category_key`), used by ``Profile.fit`` and the
unseen-category check, so a category is the same value wherever it comes from:

- numbers compare by value: ``1``, ``1.0``, ``numpy.int64(1)`` and ``numpy.float32(1)`` are
  one category (pandas turns an integer column with a missing value into floats);
- booleans are booleans: ``True`` is not the category ``1``, nor ``"True"``;
- strings compare exactly as given: ``"1"`` is not ``1``, ``"DE"`` is not ``"de"``;
- anything else (a datetime, an enum) compares by its ``str()``, and so does a float
  infinity (``"inf"``: a profile file is strict JSON).

:func:`same_value` is the same rule for two single values (``feedback.correct``).
"""

from __future__ import annotations

import math
from typing import Any

__all__ = [
    "category_json",
    "category_key",
    "category_sort_key",
    "is_missing",
    "is_pandas_missing",
    "plain_scalar",
    "same_value",
]

_PANDAS_MISSING = frozenset({"NAType", "NaTType"})


class _Bool:
    """A boolean category: equal only to the same boolean (``True == 1`` in Python)."""

    __slots__ = ("value",)

    def __init__(self, value: bool) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Bool) and other.value is self.value

    def __hash__(self) -> int:
        return hash((_Bool, self.value))

    def __repr__(self) -> str:
        return repr(self.value)


_TRUE, _FALSE = _Bool(True), _Bool(False)


def is_missing(value: Any) -> bool:
    """True for None, NaN, pandas' NA and NaT, and numpy's NaT. Never raises."""
    if value is None:
        return True
    kind = type(value)
    if kind is float:
        return bool(value != value)
    if kind is str or kind is int or kind is bool:
        return False
    if is_pandas_missing(value):
        return True
    dtype = getattr(value, "dtype", None)
    if dtype is not None and getattr(value, "ndim", None) == 0:
        try:
            if dtype.kind == "f":
                return bool(value != value)
            if dtype.kind in "mM":
                return str(value) == "NaT"
        except Exception:  # noqa: BLE001 - a foreign scalar's comparison may raise
            return False
    return False


def is_pandas_missing(value: Any) -> bool:
    """True for pandas' ``NA`` and ``NaT`` (recognised by type, pandas not imported)."""
    kind = type(value)
    return kind.__name__ in _PANDAS_MISSING and kind.__module__.startswith("pandas")


def plain_scalar(value: Any) -> Any:
    """numpy scalars unwrapped to Python (without importing numpy); others unchanged."""
    if type(value) in (str, int, float, bool) or value is None:
        return value
    if getattr(value, "ndim", None) == 0 and callable(getattr(value, "item", None)):
        try:
            return value.item()
        except Exception:  # noqa: BLE001 - a foreign scalar's item() may raise
            return value
    return value


def category_key(value: Any) -> Any:
    """The canonical, hashable form of a category (see the module doc); None if missing."""
    value = plain_scalar(value)
    kind = type(value)
    if kind is str:
        return value
    if kind is bool:
        return _TRUE if value else _FALSE
    if kind is int:
        return value
    if kind is float:
        if value != value:
            return None
        if math.isinf(value):
            return str(value)  # "inf" / "-inf": JSON has no infinity to store
        # An integral float is its int, so 1.0 and 1 are one key even beyond 2**53.
        return int(value) if value.is_integer() else value
    if is_missing(value):
        return None
    if isinstance(value, bool):
        return _TRUE if value else _FALSE
    if isinstance(value, str):
        return str(value)
    if isinstance(value, (int, float)):
        return category_key(float(value) if isinstance(value, float) else int(value))
    return str(value)


def category_json(key: Any) -> Any:
    """A canonical key as the JSON scalar a profile file stores."""
    return key.value if isinstance(key, _Bool) else key


def category_sort_key(key: Any) -> tuple[int, Any]:
    """Booleans, then numbers by value, then strings: a stable order for a profile file."""
    if isinstance(key, _Bool):
        return 0, int(key.value)
    if isinstance(key, (int, float)):
        return 1, key
    return 2, str(key)


def same_value(a: Any, b: Any) -> bool | None:
    """Whether two labels are the same by the canonical rule; None if either is missing."""
    ka, kb = category_key(a), category_key(b)
    if ka is None or kb is None:
        return None
    return bool(ka == kb)
