"""Ranking fields and the agreement between two rankings.

:func:`ranking_fields` records a ranked result (a search mixer's output, a recommender's
slate): ``result.count`` (candidates given), ``result.ids`` (the top k, best first; ties keep
the input order, non-finite scores rank last with a ``None`` score), ``result.{i}.id`` and
``result.{i}.score`` for the first three and ``result.{i}.gap`` (score i - score i+1).

:func:`compare_rankings` measures how far a shadow model agrees with the primary, over the
top ``k`` of each list (duplicates after the first occurrence ignored):

- ``shadow.top1_same``: the first items are equal.
- ``shadow.overlap_at_k``: shared items / the longer list's length (k when both are full).
- ``shadow.kendall_tau``: Kendall's tau-b over the union of the two lists, an item missing
  from a list ranked at that list's bottom (all such items tied); None when undefined.
- ``shadow.rbo``: extrapolated rank-biased overlap (Webber, Moffat, Zobel 2010, eq. 32 for
  lists of unequal length; eq. 30 when equal) with persistence p = 0.9 at depth k.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Hashable
from typing import Any

import numpy as np

from ._arrays import as_float_array, is_sparse, label_of, resolve_k, sparse_row, top_order
from ._problems import Problems

__all__ = ["RBO_P", "compare_rankings", "ranking_fields", "rbo_ext"]

RBO_P = 0.9
_SHOWN = 3


def _plain_id(value: Any) -> Hashable:
    plain = label_of(value)
    return plain if isinstance(plain, Hashable) else str(plain)


def _as_list(values: Any, problems: Problems, what: str) -> list[Any] | None:
    if isinstance(values, np.ndarray):
        return values.reshape(-1).tolist()
    if isinstance(values, (str, bytes)):
        problems.add(f"{what}: ids must be a sequence, not a string")
        return None
    try:
        return list(values)
    except Exception:  # noqa: BLE001 - a user's __iter__ may raise anything
        problems.add(f"{what}: ids is not a sequence", type(values).__name__)
        return None


def ranking_fields(ids: Any, scores: Any = None, *, k: int = 10) -> dict[str, Any]:
    """``result.*`` fields for a ranked list (see the module doc). Never raises.

    Without ``scores``, ``ids`` are taken as already ranked.
    """
    return ranking_fields_top(ids, scores, k=k)[0]


def ranking_fields_top(
    ids: Any, scores: Any = None, *, k: int = 10
) -> tuple[dict[str, Any], list[Hashable] | None]:
    """:func:`ranking_fields` plus the top-k ids (None when nothing was ranked)."""
    problems = Problems()
    fields: dict[str, Any] = {}
    top: list[Hashable] | None = None
    try:
        top = _ranking_into(fields, problems, ids, scores, k)
    except Exception as exc:  # noqa: BLE001 - containment: a helper never raises
        problems.add("ranking: internal error", exc)
    return problems.into(fields), top


def _ranking_into(
    fields: dict[str, Any], problems: Problems, ids: Any, scores: Any, k: Any
) -> list[Hashable] | None:
    items = _as_list(ids, problems, "ranking")
    if items is None:
        return None
    kk = resolve_k(k, problems, "ranking")
    values: Any = None
    if scores is not None:
        # A sparse row (implicit entries 0) is read like the dense one; a matrix is not.
        values = sparse_row(scores) if is_sparse(scores) else as_float_array(scores)
        if values is None:
            problems.add("ranking: scores are not numeric", type(scores).__name__)
        else:
            values = values.reshape(-1)
            if values.size != len(items):
                problems.add(
                    "ranking: ids and scores length mismatch",
                    f"{len(items)} ids, {values.size} scores",
                )
                n = min(values.size, len(items))
                items, values = items[:n], values[:n]
    fields["result.count"] = len(items)
    if values is None:
        top = [_plain_id(x) for x in items[:kk]]
        fields["result.ids"] = top
        for i, item in enumerate(top[:_SHOWN], 1):
            fields[f"result.{i}.id"] = item
        return top
    finite = np.isfinite(values)
    if not finite.all():
        problems.add("ranking: non-finite scores",  # the detail says what the line is about
                     f"{values.size - int(finite.sum())} of {values.size} scores are NaN or "
                     "infinite: those results are ranked last with a null score; counted in "
                     "meta.ml_error_count, logged once")
        values = np.where(finite, values, -np.inf)
    order, ranked = top_order(values, min(kk, len(items))) if items else ([], [])
    top = [_plain_id(items[i]) for i in order]
    top_scores: list[float | None] = [v if math.isfinite(v) else None for v in ranked]
    fields["result.ids"] = top
    for i in range(min(_SHOWN, len(top))):
        fields[f"result.{i + 1}.id"] = top[i]
        fields[f"result.{i + 1}.score"] = top_scores[i]
        if i + 1 < len(top):
            this, after = top_scores[i], top_scores[i + 1]
            if this is not None and after is not None:
                fields[f"result.{i + 1}.gap"] = this - after
    return top


_PLAIN_IDS = frozenset({str, int})


def _top_unique(ids: list[Any], k: int) -> tuple[list[Hashable], bool]:
    """The first k distinct ids, and whether a duplicate was skipped."""
    head = ids[:k]
    if _PLAIN_IDS.issuperset(map(type, head)) and len(set(head)) == len(head):
        return head, False
    out: list[Hashable] = []
    seen: set[Hashable] = set()
    duplicate = False
    for raw in ids:
        item = _plain_id(raw)
        if item in seen:
            duplicate = True
            continue
        seen.add(item)
        out.append(item)
        if len(out) == k:
            break
    return out, duplicate


def compare_rankings(primary_ids: Any, shadow_ids: Any, k: int = 10) -> dict[str, Any]:
    """``shadow.top1_same``, ``shadow.overlap_at_k``, ``shadow.kendall_tau``, ``shadow.rbo``.

    See the module doc for the definitions. Never raises.
    """
    problems = Problems()
    fields: dict[str, Any] = {}
    try:
        _compare_into(fields, problems, primary_ids, shadow_ids, k)
    except Exception as exc:  # noqa: BLE001 - containment: a helper never raises
        problems.add("shadow: internal error", exc)
    return problems.into(fields)


def _compare_into(
    fields: dict[str, Any], problems: Problems, primary_ids: Any, shadow_ids: Any, k: Any
) -> None:
    kk = resolve_k(k, problems, "shadow")
    primary_list = _as_list(primary_ids, problems, "shadow")
    shadow_list = _as_list(shadow_ids, problems, "shadow")
    if primary_list is None or shadow_list is None:
        return
    primary, dup_p = _top_unique(primary_list, kk)
    shadow, dup_s = _top_unique(shadow_list, kk)
    if dup_p or dup_s:
        problems.add("shadow: duplicate ids")
    if not primary and not shadow:
        problems.add("shadow: both rankings are empty")
        fields.update(
            {
                "shadow.top1_same": None,
                "shadow.overlap_at_k": None,
                "shadow.kendall_tau": None,
                "shadow.rbo": None,
            }
        )
        return
    fields["shadow.top1_same"] = bool(primary and shadow and primary[0] == shadow[0])
    shared = len(set(primary).intersection(shadow))
    fields["shadow.overlap_at_k"] = shared / max(len(primary), len(shadow))
    fields["shadow.kendall_tau"] = _tau_b_top(primary, shadow)
    fields["shadow.rbo"] = rbo_ext(primary, shadow, RBO_P)


def _tau_b_top(primary: list[Hashable], shadow: list[Hashable]) -> float | None:
    """Kendall tau-b over the union, items missing from a list tied at its bottom.

    The only ties are the items missing from a list, so the untied pair counts are
    closed-form; the concordance is counted walking the union in primary order with a sorted
    list of the shadow positions seen so far (O(m log m) comparisons, no m x m matrix).
    """
    pos_s = {item: i for i, item in enumerate(shadow)}
    n_p, n_s = len(primary), len(shadow)
    in_primary = set(primary)
    shadow_only = [i for i, item in enumerate(shadow) if item not in in_primary]
    m = n_p + len(shadow_only)
    tied_p, tied_s = m - n_p, m - n_s
    untied_p = m * (m - 1) // 2 - tied_p * (tied_p - 1) // 2
    untied_s = m * (m - 1) // 2 - tied_s * (tied_s - 1) // 2
    if untied_p == 0 or untied_s == 0:
        return None
    seen: list[int] = []
    concordance = 0
    for item in primary:  # every item seen so far ranks above this one in the primary
        b = pos_s.get(item, n_s)
        below, above = bisect_left(seen, b), bisect_right(seen, b)
        concordance += below - (len(seen) - above)
        seen.insert(above, b)
    # Shadow-only items are tied at the primary's bottom: below every primary item, and
    # tied (no contribution) with each other.
    for b in shadow_only:
        below, above = bisect_left(seen, b), bisect_right(seen, b)
        concordance += below - (n_p - above)
    return concordance / math.sqrt(untied_p * untied_s)


def rbo_ext(first: list[Hashable], second: list[Hashable], p: float = RBO_P) -> float:
    """Extrapolated RBO of two lists of distinct items (Webber et al. 2010, eq. 32)."""
    short, long_ = (first, second) if len(first) <= len(second) else (second, first)
    s, length = len(short), len(long_)
    if length == 0:
        return 1.0
    seen_short: set[Hashable] = set()
    seen_long: set[Hashable] = set()
    overlap = 0
    weighted = 0.0
    overlap_at_s = 0
    power = 1.0
    for d in range(1, length + 1):
        power *= p
        item_l = long_[d - 1]
        if d <= s:
            item_s = short[d - 1]
            if item_s == item_l:
                overlap += 1
            else:
                overlap += (item_s in seen_long) + (item_l in seen_short)
            seen_short.add(item_s)
        elif item_l in seen_short:
            overlap += 1
        seen_long.add(item_l)
        weighted += overlap / d * power
        if d == s:
            overlap_at_s = overlap
        elif d > s:
            weighted += overlap_at_s * (d - s) / (s * d) * power if s else 0.0
    tail = ((overlap - overlap_at_s) / length + (overlap_at_s / s if s else 0.0)) * power
    return (1.0 - p) / p * weighted + tail
