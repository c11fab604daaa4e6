"""Feature fields: what went into the model, and how it compares with the training data.

:func:`feature_fields` reads one row (:mod:`._rows`: a dict, a one-row DataFrame, a Series,
an array, a tensor, a sparse row) and records ``feature.<name>`` for scalars (numbers,
booleans, strings cut to :data:`MAX_STRING` characters, short lists of strings) and
``feature.<name>.dim`` / ``feature.<name>.norm`` (L2) for vectors such as embeddings.
Non-finite numbers are recorded as ``None``; missing values (None, NaN in a categorical
feature, pandas' NA and NaT, numpy's NaT) are not recorded.

Integrity counts, over every feature given (and, with a profile, the profile's features that
are missing, which count as null): ``data.null_count`` (missing), ``data.nan_count`` (NaN in
a numeric feature), ``data.inf_count`` (+-Inf). A vector containing NaN counts once as NaN,
else once as Inf when it contains one. With a :class:`~wideevents.ml.Profile`:
``data.oor_count`` (finite values outside the training [min, max], in the training dtype's
precision) with ``data.oor_features`` (their names, at most :data:`MAX_OOR_NAMES`; only
when there are some), ``data.unseen_category_count`` (categories compared by value,
:mod:`._values`) and ``feature_bin.<name>`` (the training-decile bin 0-9 of each finite
numeric value). A boolean is recorded as a boolean and, for a numeric feature of the
profile, checked as 0 or 1 (how numpy and scikit-learn read it).

Bad input, one rule per kind: input that is not one row (:mod:`._rows`), or a positional
row whose length differs from its names (or the profile's), records no ``feature.*`` or
``data.*`` field and one problem; a value of an unsupported type is one problem, and that
feature is left out (for a profile, neither null nor out of range).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ._arrays import as_float_array
from ._problems import Problems
from ._profile import Profile
from ._rows import check_names, read_row
from ._values import category_key, is_missing

__all__ = ["MAX_OOR_NAMES", "MAX_STRING", "feature_fields"]

MAX_STRING = 128
MAX_OOR_NAMES = 20
_MAX_STRING_LIST = 32
_MISSING = object()  # a missing value (null)
_OTHER = object()  # a value that is recorded but is not a number (a string, a vector)
_BAD = object()  # a value that could not be recorded (counted as a problem)
_NUMBERS = frozenset({float, int})


def feature_fields(
    values: Any, *, names: Sequence[str] | None = None, profile: Profile | None = None
) -> dict[str, Any]:
    """``feature.*``, ``feature_bin.*`` and ``data.*`` fields for one model input.

    ``values`` is one row (see the module doc); a positional one is named by ``names``,
    else by the input's own labels (DataFrame columns, Series index), else by
    ``profile.names``, else by position. Never raises: bad input is recorded in
    ``meta.ml_error_count`` / ``meta.ml_error_reasons``.
    """
    problems = Problems()
    fields: dict[str, Any] = {}
    if profile is not None and not isinstance(profile, Profile):
        problems.add("features: profile is not a Profile", type(profile).__name__)
        profile = None
    try:
        _features_into(fields, problems, values, check_names(names, problems), profile)
    except Exception as exc:  # noqa: BLE001 - containment: a helper never raises
        problems.add("features: internal error", exc)
    return problems.into(fields)


def _features_into(
    fields: dict[str, Any],
    problems: Problems,
    values: Any,
    names: list[str] | None,
    profile: Profile | None,
) -> None:
    if (isinstance(values, Mapping) and profile is not None and profile.all_numeric
            and len(values) == len(profile.names)):
        plain = [values.get(name, _MISSING) for name in profile.names]
        if _NUMBERS.issuperset(map(type, plain)):
            try:
                x = np.array(plain, dtype=np.float64)
            except OverflowError:  # an int beyond float range: the general path copes
                pass
            else:
                _numeric_row(fields, x, None, profile, plain)
                return
    row = read_row(values, problems)
    if row is None:
        return
    kind, data, own = row
    if kind == "pairs":
        _general(fields, problems, data, profile)
        return
    n = len(data)
    use = names if names is not None else own
    if use is None:
        use = list(profile.names) if profile is not None else [str(i) for i in range(n)]
    if len(use) != n:
        problems.add("features: names length mismatch", f"{len(use)} names, {n} values")
        return
    if kind == "array" and _fast_path_fits(use, profile):
        _numeric_row(fields, data.astype(np.float64, copy=False), use, profile)
        return
    items = data.tolist() if kind == "array" else data
    _general(fields, problems, list(zip(use, items, strict=True)), profile)


def _fast_path_fits(names: list[str], profile: Profile | None) -> bool:
    if profile is None:
        return True
    return profile.all_numeric and tuple(names) == profile.names


def _numeric_row(
    fields: dict[str, Any],
    x: np.ndarray[Any, np.dtype[np.float64]],
    names: Sequence[str] | None,
    profile: Profile | None,
    plain: list[Any] | None = None,
) -> None:
    """A 1-D numeric row in the profile's order (or unprofiled, named): all vectorised.

    ``plain`` holds the values as given (kept as fields), when not simply ``x.tolist()``.
    """
    if plain is None:
        plain = x.tolist()
    finite = np.isfinite(x)
    all_finite = int(np.count_nonzero(finite)) == x.size
    nan_count = inf_count = 0
    if not all_finite:
        bad = np.flatnonzero(~finite)
        nan_count = int(np.count_nonzero(np.isnan(x[bad])))
        inf_count = bad.size - nan_count
        for i in bad.tolist():
            plain[i] = None
    if profile is None:
        assert names is not None
        fields.update(zip(["feature." + n for n in names], plain, strict=True))
    else:
        fields.update(zip(profile.feature_keys, plain, strict=True))
    fields["data.null_count"] = 0
    fields["data.nan_count"] = nan_count
    fields["data.inf_count"] = inf_count
    if profile is not None:
        _check_numeric(fields, profile, x, finite, all_finite and profile.all_edges)
        fields["data.unseen_category_count"] = 0


def _check_numeric(
    fields: dict[str, Any],
    profile: Profile,
    x: np.ndarray[Any, np.dtype[np.float64]],
    usable: np.ndarray[Any, np.dtype[np.bool_]],
    all_usable: bool,
) -> None:
    """Range and bin checks for the positions of ``x`` (profile order) marked ``usable``.

    ``usable`` must be false where the value is missing, non-finite or not numeric.
    """
    x = profile.as_compared(x)
    # Comparisons with NaN (missing values, features without a range) are simply false.
    oor = (x < profile.mins) | (x > profile.maxs)
    if not all_usable:
        oor &= usable
    n_oor = int(np.count_nonzero(oor))
    fields["data.oor_count"] = n_oor
    if n_oor:
        oor_index = np.flatnonzero(oor)[:MAX_OOR_NAMES].tolist()
        fields["data.oor_features"] = [profile.names[i] for i in oor_index]
    if all_usable:
        bins = (profile.edges_t <= x).sum(axis=0)
        fields.update(zip(profile.bin_key_list, bins.tolist(), strict=True))
        return
    binned = np.flatnonzero(usable & profile.has_edges)
    if binned.size:
        bins = (profile.edges[binned] <= x[binned, None]).sum(axis=1)
        fields.update(zip(profile.bin_keys[binned].tolist(), bins.tolist(), strict=True))


def _general(
    fields: dict[str, Any],
    problems: Problems,
    pairs: list[tuple[str, Any]],
    profile: Profile | None,
) -> None:
    """Any mix of value types, feature by feature; profile checks vectorised at the end."""
    counts = [0, 0, 0]  # null, nan, inf
    if profile is not None:
        x = np.full(len(profile.names), np.nan)
        usable = np.zeros(len(profile.names), dtype=bool)
        seen = np.zeros(len(profile.names), dtype=bool)
        unseen = 0
        index = profile.index
        categories = profile.categories
        numeric = profile.numeric
        legacy = profile.legacy_categories
    for name, value in pairs:
        number = _record(fields, problems, counts, name, value)
        if profile is None:
            continue
        pos = index.get(name, -1)
        if pos < 0:
            continue
        seen[pos] = True
        if number is _MISSING or number is _BAD:
            continue
        if numeric[pos]:
            if number is _OTHER:
                problems.add("features: non-numeric value for a numeric feature", name)
            else:
                x[pos] = number
                usable[pos] = math.isfinite(number)
        elif number is not _OTHER and math.isnan(number):
            counts[1] -= 1  # a NaN category is pandas' "missing": a null, not a NaN
            counts[0] += 1
        elif (_legacy_category(value) if legacy else category_key(value)) not in categories[pos]:
            unseen += 1
    if profile is not None:
        counts[0] += len(profile.names) - int(np.count_nonzero(seen))
    fields["data.null_count"] = counts[0]
    fields["data.nan_count"] = counts[1]
    fields["data.inf_count"] = counts[2]
    if profile is not None:
        usable &= numeric
        _check_numeric(fields, profile, x, usable, False)
        fields["data.unseen_category_count"] = unseen


def _legacy_category(value: Any) -> str:
    """A category as version 1 profiles compare it: its ``str()``."""
    if isinstance(value, np.generic):
        value = value.item()
    return value if isinstance(value, str) else str(value)


def _record(
    fields: dict[str, Any], problems: Problems, counts: list[int], name: str, value: Any
) -> Any:
    """Record one feature; return its value as a float when it is a number, else
    :data:`_MISSING`, :data:`_OTHER` (recorded, not a number) or :data:`_BAD`."""
    key = "feature." + name
    kind = type(value)
    if kind is float or kind is bool:
        number = float(value)
    elif kind is int:
        # An int beyond a float's range is +-inf to the checks (the event keeps its text).
        number = float(value) if -(2**1023) < value < 2**1023 else math.copysign(math.inf, value)
    elif value is None:
        counts[0] += 1
        return _MISSING
    elif isinstance(value, str):
        fields[key] = value[:MAX_STRING] if len(value) > MAX_STRING else str(value)
        return _OTHER
    elif isinstance(value, np.generic) and value.ndim == 0 and value.dtype.kind in "fiub":
        value = value.item()
        number = float(value)
    elif is_missing(value):
        counts[0] += 1
        return _MISSING
    elif isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
        if len(value) <= _MAX_STRING_LIST:
            fields[key] = [v[:MAX_STRING] for v in value]
            return _OTHER
        problems.add("features: string list too long", name)
        return _BAD
    else:
        return _record_array(fields, problems, counts, name, value)
    if math.isfinite(number):
        fields[key] = value
    else:
        fields[key] = None
        counts[1 if math.isnan(number) else 2] += 1
    return number


def _record_array(
    fields: dict[str, Any], problems: Problems, counts: list[int], name: str, value: Any
) -> Any:
    arr = as_float_array(value)
    if arr is None:
        problems.add("features: unsupported value type", f"{name}: {type(value).__name__}")
        return _BAD
    if arr.ndim == 0:
        return _record(fields, problems, counts, name, float(arr))
    flat = arr.reshape(-1)
    fields["feature." + name + ".dim"] = int(flat.size)
    with np.errstate(over="ignore", invalid="ignore"):
        norm = math.sqrt(float(np.dot(flat, flat))) if flat.size else 0.0
    if math.isinf(norm) and bool(np.isfinite(flat).all()):
        # The sum of squares overflowed although every value is finite: scale first.
        top = float(np.abs(flat).max())
        scaled = flat / top
        norm = top * math.sqrt(float(np.dot(scaled, scaled)))
    if math.isfinite(norm):
        fields["feature." + name + ".norm"] = norm
    else:
        fields["feature." + name + ".norm"] = None
        counts[1 if bool(np.isnan(flat).any()) else 2] += 1
    return _OTHER
