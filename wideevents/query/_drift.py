"""``drift``: per feature, how far the target's distribution is from a reference
(docs/analysis.md, "drift").

The reference is either a training profile (``wideevents.ml.Profile``'s saved JSON, read
here without importing ``wideevents.ml``: the query layer does not depend on it) or a
baseline slice of the events. Every event weighs its ``samplerate``.

**Features.** With a profile: its features and, when it has one, its score. A numeric
feature is bucketed by the profile's decile edges: its ``feature_bin.<name>`` when the
events carry it (what the SDK computed, in the training dtype's precision), else
``feature.<name>`` by the same rule (``searchsorted(edges, x, side="right")``); a
categorical one by its categories (compared by value: numbers as numbers, booleans as
booleans, strings exactly), plus one *other* bucket for values not in the profile; the
score by ``score.bin`` (classifiers) or by the regression's deciles of ``prediction.score``.
The reference shares are the profile's (``bin_fractions``, ``frequencies``) scaled by
``1 - null_rate``, and its ``null_rate`` is the reference share of the *missing* bucket.
With a baseline: every ``feature.*`` column (and ``feature_bin.*`` without its
``feature.*``) plus ``score.bin`` (else ``prediction.score``); numbers are bucketed by the
baseline's deciles (equal deciles merged), anything else by value.

**Events.** The target is the events that pass the ``target`` conditions (default: every
event; with a baseline, every event not in it), that are not ``feedback`` events, and that
carry at least one of the features or the score: a prediction event without a feature
counts in that feature's *missing* bucket.

**Numbers.** PSI with empty buckets at 0.0001 and base-2 Jensen-Shannon distance
(``_divergence``); ``level`` is ``none`` / ``moderate`` (PSI >= 0.1) / ``significant`` (PSI
>= 0.25). ``breakdown`` repeats it per value of a column, against the same reference.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from wideevents._errors import ConfigurationError
from wideevents.query._divergence import js_distance, level, psi, psi_terms
from wideevents.query._frame import (
    MAX_GROUPS,
    MISSING,
    Bucket,
    Frame,
    Paths,
    all_keys,
    bucket_key,
    bucket_value,
    check_groups,
    conditions,
    session,
    too_many_groups,
)
from wideevents.query._hints import missing_column, sampled_columns

__all__ = ["DriftResult", "drift", "load_profile"]

_OTHER: Final = "\x00other"  # not a bucket key the frame writes (those start m, n, s, b, j)
_BASELINE: Final = "\x00baseline"
_TARGET: Final = "\x00target"


@dataclass
class DriftResult:
    """``features`` (no breakdown) or ``groups`` (with one), as in the ``--json`` document."""

    features: list[dict[str, Any]] | None = None
    groups: list[dict[str, Any]] | None = None
    skipped_lines: int = 0
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """The ``wideevents drift --json`` document."""
        if self.groups is not None:
            return {"groups": self.groups}
        return {"features": self.features or []}


@dataclass
class _Feature:
    name: str  # as reported: the event column (feature.x, score.bin, prediction.score)
    kind: str  # numeric | categorical
    column: str  # the column bucketed
    edges: list[float] | None = None  # numeric: bin edges
    lo: float | None = None
    hi: float | None = None
    reference: dict[str, float] | None = None  # profile: shares by bucket key
    categories: list[Any] = field(default_factory=list)  # profile categorical: in order
    legacy: bool = False  # a version 1 profile: categories compared as str()


def load_profile(profile: Any) -> dict[str, Any]:
    """A profile document from a path, a dict, or an object with ``to_dict()`` (a
    ``wideevents.ml.Profile``); ConfigurationError when it is not one."""
    source = "profile"
    if isinstance(profile, (str, os.PathLike)):
        source = f"profile file {os.fspath(profile)!r}"
        try:
            with open(profile, encoding="utf-8") as f:
                profile = json.load(f)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot read {source}: {exc.strerror}; save one with "
                "wideevents.ml.Profile.fit(X, names).save(path) or fix the path"
            ) from None
        except ValueError as exc:
            raise ConfigurationError(f"{source} is not JSON ({exc}); re-save it") from None
    elif hasattr(profile, "to_dict"):
        profile = profile.to_dict()
    ok = (isinstance(profile, dict) and profile.get("format") == "wideevents.profile"
          and profile.get("version") in (1, 2) and isinstance(profile.get("features"), list)
          and all(isinstance(f, dict) and isinstance(f.get("name"), str) and f["name"]
                  for f in profile["features"]))
    if not ok:
        raise ConfigurationError(
            f"{source} is not a wideevents profile (version 1 or 2); create one with "
            "wideevents.ml.Profile.fit(X, names, scores=...).save(path)"
        )
    return profile  # type: ignore[no-any-return]


def drift(
    files: Paths,
    *,
    profile: Any = None,
    baseline: Any = None,
    target: Any = None,
    breakdown: str | None = None,
    groups: int = MAX_GROUPS,
    cache: bool | str = True,
) -> DriftResult:
    """PSI and Jensen-Shannon distance per feature of the target against a profile or a
    baseline slice (module doc). ``profile``: a path, a profile document or a
    ``wideevents.ml.Profile``; ``baseline``/``target``: conditions as ``--where`` text,
    dicts, or lists of them. Exactly one of ``profile`` and ``baseline``. ``groups``: with
    ``breakdown``, the groups with the most target events (weighted) that are computed;
    the others are left out with a warning. Raises ConfigurationError for a bad argument;
    QueryError when DuckDB cannot read a file."""
    if (profile is None) == (baseline is None):
        raise ConfigurationError(
            "drift needs exactly one reference: profile='profile.json' (--profile) or "
            "baseline='model.version = v1' (--baseline)"
        )
    doc = None if profile is None else load_profile(profile)
    base_conds = conditions(baseline, "baseline")
    if profile is None and not base_conds:
        raise ConfigurationError("drift: baseline needs at least one condition")
    target_conds = conditions(target, "target")
    check_groups(groups)
    warnings: list[str] = []
    with session(files, cache) as (con, store, paths):
        used = [c.column for c in (*base_conds, *target_conds)]
        extra = ["name", *used, *([breakdown] if breakdown else [])]
        if doc:
            # The profile names the columns: no pass over the files to list their keys. A
            # numeric feature is read from feature_bin.* when the first lines of the files
            # have it, else from feature.*; the other one only if the first is missing.
            first = _profile_columns(doc, sampled_columns(paths))
            frame = Frame.build(con, store, paths, [*first, *extra])
            absent = [c for c in first if frame.kinds[c] == "missing"]
            other = [t for c in absent if (t := _twin(c)) is not None]
            if other:
                frame = Frame.build(con, store, paths, [*first, *other, *extra])
            keys = {c for c, kind in frame.kinds.items() if kind != "missing"}
            features = _from_profile(doc, keys, warnings)
        else:
            features = _from_events(set(all_keys(store, paths)))
            frame = Frame.build(con, store, paths, [*(f.column for f in features), *extra])
        seen: set[str] | None = None
        for column in dict.fromkeys([*used, *([breakdown] if breakdown else [])]):
            if frame.kinds[column] == "missing":
                seen = sampled_columns(paths) if seen is None else seen
                warnings.append(missing_column(column, "filter or breakdown", seen))
        prediction = (f"{frame.col('name')} IS DISTINCT FROM 'feedback'"
                      if frame.kinds["name"] == "string" else "TRUE")
        carries = " OR ".join(f"{frame.col(f.column)} IS NOT NULL" for f in features) or "FALSE"
        population = f"({prediction} AND ({carries}))"
        base_sql = frame.where(base_conds) if base_conds else "FALSE"
        if target_conds:
            target_sql = frame.where(target_conds)
        else:
            target_sql = "TRUE" if doc else f"NOT {base_sql}"
        # An event's group: against a profile in its own type (no text built per event,
        # made a key after the aggregation), against a baseline as text.
        if not breakdown:
            group, tag = f"'{_TARGET}'", "J"
        elif doc is None:
            group, tag = frame.category(breakdown), "J"
        else:
            group, tag = frame.value_bucket(breakdown)
        if breakdown:
            keep, total = frame.largest(group, f"{population} AND ({target_sql})", groups)
            if total > groups:
                warnings.append(too_many_groups(breakdown, total, groups))
                target_sql = f"(({target_sql}) AND {keep})"
        if doc is None:
            numeric = [f.column for f in features if frame.kinds[f.column] == "number"
                       and not _binned(f.column)]
            stats = frame.stats(numeric, f"{population} AND {base_sql}", numeric)
            for f in features:
                if f.column in stats:
                    f.kind, f.edges = "numeric", sorted(set(stats[f.column]["deciles"]))
                    f.lo, f.hi = stats[f.column]["min"], stats[f.column]["max"]
            side: str | dict[str, str] = (
                _both(base_sql, f"'{_BASELINE}'", target_sql, group) if breakdown
                else {_BASELINE: base_sql, _TARGET: target_sql})  # fmt: skip
            rows = f"{population} AND (({base_sql}) OR ({target_sql}))"
        else:
            rows = f"{population} AND {target_sql}"
            side = group
        buckets = {f.name: _bucket_sql(frame, f) for f in features}
        histograms = frame.histograms(buckets, side, rows, _sizes(features))
        if doc is not None:
            histograms = {(bucket_key(tag, g), name): counts
                          for (g, name), counts in histograms.items()}
        skipped = frame.skipped_lines
    found = sorted({g for g, _ in histograms if g != _BASELINE}, key=_group_order)
    per_group = []
    for g in found:
        entries = []
        for f in features:
            ref_counts = f.reference or histograms.get((_BASELINE, f.name), {})
            entry = _entry(f, ref_counts, histograms.get((g, f.name), {}), doc is not None)
            if entry is not None:
                entries.append(entry)
        entries.sort(key=lambda e: (-e["psi"], -e["js"], e["feature"]))
        count = max((e["count"] for e in entries), default=0.0)
        per_group.append((g, count, entries))
    if breakdown is None:
        only = per_group[0][2] if per_group else []
        if not per_group:
            warnings.append("no event is in the target: check --target, or that the events "
                            "carry feature.* fields")
        return DriftResult(features=only, skipped_lines=skipped, warnings=warnings)
    per_group.sort(key=lambda g: -max((e["psi"] for e in g[2]), default=0.0))
    out = [{"group": bucket_value(g), "count": count, "features": entries}
           for g, count, entries in per_group]  # fmt: skip
    return DriftResult(groups=out, skipped_lines=skipped, warnings=warnings)


def _profile_columns(doc: Mapping[str, Any], seen: set[str]) -> list[str]:
    """The column each of a profile's features (and its score) is read from: for a numeric
    feature ``feature_bin.<name>`` when ``seen`` has it, else ``feature.<name>``."""
    out = []
    for spec in doc["features"]:
        binned = "feature_bin." + spec["name"]
        numeric = spec.get("kind") == "numeric"
        out.append(binned if numeric and binned in seen else "feature." + spec["name"])
    score = doc.get("score") or {}
    return [*out, "prediction.score" if score.get("kind") == "regression" else "score.bin"]


def _twin(column: str) -> str | None:
    """The other column a numeric feature may be read from."""
    if column.startswith("feature_bin."):
        return "feature." + column[len("feature_bin."):]
    if column.startswith("feature."):
        return "feature_bin." + column[len("feature."):]
    return None


def _both(first: str, first_side: str, second: str, second_side: str) -> str:
    """A side expression that puts an event on one side, the other, or both."""
    return (f"unnest(CASE WHEN ({first}) AND ({second}) THEN [{first_side}, {second_side}]"
            f" WHEN {first} THEN [{first_side}] WHEN {second} THEN [{second_side}] ELSE [] END)")


def _sizes(features: list[_Feature]) -> dict[str, int]:
    """About how many buckets each feature has (the profile's or the baseline's bins and
    categories; 0: unknown), so that features with few buckets share a grouping set."""
    return {f.name: len(f.reference) if f.reference else len(f.edges) + 1 if f.edges else 0
            for f in features}


def _binned(column: str) -> bool:
    return column == "score.bin" or column.startswith("feature_bin.")


def _key_order(key: str) -> tuple[int, float, str]:
    if key.startswith("n"):
        return (0, float(key[1:]), "")
    return (1, 0.0, key)


def _group_order(key: str) -> tuple[int, str]:
    return (1, key) if key == MISSING else (0, key)


def _from_events(keys: set[str]) -> list[_Feature]:
    """Baseline mode: the features the events carry, and their score."""
    out = []
    for key in sorted(keys):
        if key.startswith("feature."):
            out.append(_Feature(key, "categorical", key))
        elif key.startswith("feature_bin.") and "feature." + key[12:] not in keys:
            out.append(_Feature(key, "numeric", key))  # already binned: bins by value
    if "score.bin" in keys:
        out.append(_Feature("score.bin", "numeric", "score.bin"))
    elif "prediction.score" in keys:
        out.append(_Feature("prediction.score", "categorical", "prediction.score"))
    return out


def _scaled(shares: Sequence[float], null_rate: float, keys: Sequence[str]) -> dict[str, float]:
    out = {k: float(s) * (1.0 - null_rate) for k, s in zip(keys, shares, strict=True)}
    out[MISSING] = float(null_rate)
    return out


def _from_profile(doc: Mapping[str, Any], keys: set[str], warnings: list[str]) -> list[_Feature]:
    out = []
    legacy = doc.get("version") == 1
    for spec in doc["features"]:
        name, null_rate = spec["name"], float(spec.get("null_rate") or 0.0)
        column = "feature." + name
        if spec.get("kind") == "numeric":
            edges = [float(e) for e in spec.get("edges") or []]
            fractions = spec.get("bin_fractions") or []
            if not edges or len(fractions) != len(edges) + 1:
                warnings.append(f"profile feature {name!r} has no decile edges: left out")
                continue
            binned = "feature_bin." + name
            if binned in keys:
                column = binned
            elif column not in keys:
                warnings.append(f"no event has {column} (nor {binned}): left out")
                continue
            bins = [f"n{i}" for i in range(len(fractions))]
            out.append(_Feature(
                "feature." + name, "numeric", column, edges, spec.get("min"), spec.get("max"),
                _scaled(fractions, null_rate, bins), legacy=legacy,
            ))
        else:
            if column not in keys:
                warnings.append(f"no event has {column}: left out")
                continue
            frequencies = spec.get("frequencies")
            if not isinstance(frequencies, list):
                warnings.append(f"profile feature {name!r} has no category frequencies (a "
                                "version 1 profile): left out; refit and save it")
                continue
            cats = list(spec.get("categories") or [])
            ref = _scaled(frequencies, null_rate, [_category_id(c, legacy) for c in cats])
            out.append(_Feature(column, "categorical", column, reference=ref, categories=cats,
                                legacy=legacy))
    score = doc.get("score")
    if isinstance(score, dict):
        null_rate = float(score.get("null_rate") or 0.0)
        fractions = score.get("bin_fractions") or []
        bins = [f"n{i}" for i in range(len(fractions))]
        if score.get("kind") == "regression":
            edges = [float(e) for e in score.get("edges") or []]
            if "prediction.score" in keys and edges:
                out.append(_Feature("prediction.score", "numeric", "prediction.score", edges,
                                    score.get("min"), score.get("max"),
                                    _scaled(fractions, null_rate, bins)))
        elif "score.bin" in keys and fractions:
            out.append(_Feature("score.bin", "numeric", "score.bin",
                                [i / 10 for i in range(1, 10)], 0.0, 1.0,
                                _scaled(fractions, null_rate, bins)))
    return out


def _category_id(value: Any, legacy: bool) -> str:
    """A category in one comparable form: numbers by value, booleans, strings exactly."""
    if legacy:
        return "s" + str(value)
    if isinstance(value, bool):
        return "btrue" if value else "bfalse"
    if isinstance(value, (int, float)):
        return "j" + json.dumps(float(value))
    if isinstance(value, str):
        return "s" + value
    return "j" + json.dumps(value, separators=(",", ":"))


def _bucket_sql(frame: Frame, f: _Feature) -> Bucket:
    if _binned(f.column) and frame.kinds[f.column] == "number":  # already a bin number
        return frame.stored_bin(f.column)
    if f.kind == "numeric" and f.edges is not None:
        return frame.bin_bucket(f.column, f.edges)
    return frame.value_bucket(f.column)


def _canonical(key: str, legacy: bool) -> str:
    """A frame's bucket key as :func:`_category_id` writes the value it stands for."""
    if key == MISSING or key.startswith("n"):
        return key
    value = bucket_value(key)
    if legacy:
        text = ("True" if value else "False") if isinstance(value, bool) else str(value)
        return "s" + (text if isinstance(value, str) else json.dumps(value)
                      if isinstance(value, (list, dict)) else text)
    return _category_id(value, False)


def _entry(f: _Feature, reference: Mapping[str, float], target: Mapping[str, float],
           profile: bool) -> dict[str, Any] | None:
    if f.kind == "categorical" and f.reference is not None:  # a profile's categories
        merged: dict[str, float] = {}
        for key, weight in target.items():
            k = _canonical(key, f.legacy)
            k = k if k in reference else _OTHER
            merged[k] = merged.get(k, 0.0) + weight
        target = merged
    total_t, total_r = sum(target.values()), sum(reference.values())
    if total_t <= 0 or total_r <= 0:
        return None
    if f.kind == "numeric" and f.edges is not None:
        keys = [f"n{i}" for i in range(len(f.edges) + 1)]
    elif f.reference is not None:
        keys = [_category_id(c, f.legacy) for c in f.categories]
    else:
        keys = sorted((set(reference) | set(target)) - {MISSING}, key=_key_order)
    for extra in (_OTHER, MISSING):
        if extra not in keys and (target.get(extra, 0.0) > 0 or reference.get(extra, 0.0) > 0):
            keys.append(extra)
    t = [target.get(k, 0.0) / total_t for k in keys]
    r = [reference.get(k, 0.0) / total_r for k in keys]
    terms = psi_terms(t, r)
    bins = []
    for i, key in enumerate(keys):
        b: dict[str, Any]
        if key == MISSING:
            b = {"value": None, "missing": True}
        elif key == _OTHER:
            b = {"value": None, "other": True}
        elif f.kind == "numeric" and f.edges is not None:
            lower = f.edges[i - 1] if i > 0 else f.lo
            upper = f.edges[i] if i < len(f.edges) else f.hi
            b = {"range": [_num(lower), _num(upper)]}
        elif f.reference is not None:
            b = {"value": f.categories[i]}
        else:
            b = {"value": bucket_value(key)}
        bins.append(b | {"reference": r[i], "target": t[i], "psi": terms[i]})
    value = psi(t, r)
    return {"feature": f.name, "kind": f.kind, "psi": value, "js": js_distance(t, r),
            "level": level(value), "count": total_t, "bins": bins}


def _num(value: Any) -> float | None:
    if value is None:
        return None
    as_float = float(value)
    return as_float if math.isfinite(as_float) else None
