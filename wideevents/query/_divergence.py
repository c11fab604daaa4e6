"""Distances between two distributions over the same buckets (docs/analysis.md).

Every function takes two lists of *shares* (non-negative, each summing to 1, or all zero for
an empty side), bucket by bucket:

- :func:`total_variation`: ``0.5 * sum |p - q|``, in [0, 1]: the share of events that would
  have to move bucket for the two to agree (``compare``'s score).
- :func:`psi`: the population stability index ``sum (t - r) * ln(t / r)`` (target ``t``,
  reference ``r``), where a share of 0 is replaced by :data:`PSI_EPSILON` (0.0001, as
  Evidently's ``psi`` stattest does: ``np.where(x == 0, 0.0001, x)``), so an empty bin
  contributes a finite amount and a bin empty on both sides contributes exactly 0: the
  empty bins that collapsed deciles (equal edges) make in the reference never inflate it.
  Unbounded; 0.1 and 0.25 are the usual "moderate" and "significant" thresholds.
- :func:`js_distance`: the Jensen-Shannon distance with base-2 logarithms (``scipy.spatial.
  distance.jensenshannon(p, q, base=2)``), in [0, 1], needing no epsilon (``0 * log 0 = 0``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Final

__all__ = [
    "MODERATE",
    "PSI_EPSILON",
    "SIGNIFICANT",
    "js_distance",
    "level",
    "psi",
    "psi_terms",
    "shares",
    "total_variation",
]

PSI_EPSILON: Final = 1e-4
MODERATE: Final = 0.1
SIGNIFICANT: Final = 0.25


def shares(counts: Mapping[str, float], keys: Sequence[str]) -> list[float]:
    """The weighted counts of ``keys`` as shares of the total over ``counts`` (all 0 when
    the total is 0)."""
    total = sum(counts.values())
    if total <= 0:
        return [0.0] * len(keys)
    return [counts.get(k, 0.0) / total for k in keys]


def total_variation(p: Sequence[float], q: Sequence[float]) -> float:
    return min(1.0, 0.5 * sum(abs(a - b) for a, b in zip(p, q, strict=True)))


def psi_terms(target: Sequence[float], reference: Sequence[float]) -> list[float]:
    """Each bucket's PSI contribution (see the module doc for the empty-bucket rule)."""
    out = []
    for t, r in zip(target, reference, strict=True):
        t, r = max(t, PSI_EPSILON), max(r, PSI_EPSILON)
        out.append((t - r) * math.log(t / r))
    return out


def psi(target: Sequence[float], reference: Sequence[float]) -> float:
    return math.fsum(psi_terms(target, reference))


def js_distance(p: Sequence[float], q: Sequence[float]) -> float:
    """sqrt of the Jensen-Shannon divergence in bits; 0 when either side is empty."""
    if sum(p) <= 0 or sum(q) <= 0:
        return 0.0
    divergence = 0.0
    for a, b in zip(p, q, strict=True):
        m = (a + b) / 2
        if a > 0:
            divergence += 0.5 * a * math.log2(a / m)
        if b > 0:
            divergence += 0.5 * b * math.log2(b / m)
    return math.sqrt(min(1.0, max(0.0, divergence)))


def level(value: float) -> str:
    """``none`` below 0.1 PSI, ``moderate`` below 0.25, else ``significant``."""
    if value >= SIGNIFICANT:
        return "significant"
    return "moderate" if value >= MODERATE else "none"
