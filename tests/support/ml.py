"""Shared helpers for the ML tests: a fake event and independent reference implementations.

The references are written from the definitions (issue 3, docs/schema.md), with scipy where
it has the formula, and deliberately share no code with ``wideevents.ml``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.special
import scipy.stats

from wideevents._core.ids import uuid7


class FakeEvent:
    """Exactly the event interface the ML helpers may rely on."""

    def __init__(self, recording: bool = True) -> None:
        self.recording = recording
        self.fields: dict[str, Any] = {}
        self._ml: Any = None
        self.id_reads = 0

    def add(self, mapping: dict[str, Any], /) -> FakeEvent:
        for key, value in mapping.items():
            self.fields[key] = list(value) if isinstance(value, list) else value
        return self

    def get(self, key: str, default: Any = None, /) -> Any:
        return self.fields.get(key, default)

    @property
    def prediction_id(self) -> str:
        self.id_reads += 1
        if "prediction.id" not in self.fields:
            self.fields["prediction.id"] = uuid7()
        return str(self.fields["prediction.id"])


class BrokenEvent(FakeEvent):
    """An event whose ``add`` and ``get`` raise: the helpers must still not raise."""

    def add(self, mapping: dict[str, Any], /) -> FakeEvent:
        raise RuntimeError("add is broken")

    def get(self, key: str, default: Any = None, /) -> Any:
        raise RuntimeError("get is broken")


def close(expected: Any, actual: Any, rel: float = 1e-9, abs_tol: float = 1e-12) -> bool:
    """Equality, with floats compared approximately (recursively through lists and dicts)."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        return expected.keys() == actual.keys() and all(
            close(expected[k], actual[k], rel, abs_tol) for k in expected
        )
    if isinstance(expected, list) and isinstance(actual, list):
        return len(expected) == len(actual) and all(
            close(e, a, rel, abs_tol) for e, a in zip(expected, actual, strict=True)
        )
    if isinstance(expected, float) and isinstance(actual, float):
        return math.isclose(expected, actual, rel_tol=rel, abs_tol=abs_tol)
    return bool(expected == actual) and type(expected) is type(actual)


def assert_close(expected: Any, actual: Any, rel: float = 1e-9) -> None:
    """Assert :func:`close`, showing the differing keys of two dicts."""
    if close(expected, actual, rel):
        return
    if isinstance(expected, dict) and isinstance(actual, dict):
        diff = {
            k: (expected.get(k, "<missing>"), actual.get(k, "<missing>"))
            for k in set(expected) | set(actual)
            if not close(expected.get(k, "<missing>"), actual.get(k, "<missing>"), rel)
        }
        raise AssertionError(f"fields differ (expected, actual): {diff}")
    raise AssertionError(f"{expected!r} != {actual!r}")


def ref_bin(p: float) -> int:
    """Reference ``score.bin``: the decile i with i/10 <= p < (i+1)/10 (1.0 in bin 9)."""
    return min(int(math.floor(p * 10)), 9)


def ref_score_fields(
    values: Any,
    labels: list[Any] | None = None,
    k: int = 5,
    logits: bool = False,
    kind: str = "auto",
    threshold: float | None = None,
    positive: Any = None,
) -> dict[str, Any]:
    """The score fields, from the definitions of docs/schema.md (no error accounting)."""
    v = np.asarray(values, dtype=float).reshape(-1)
    if kind == "auto":
        if v.size >= 3:
            kind = "multiclass"
        elif v.size == 2:
            kind = "binary" if threshold is not None or positive is not None else "multiclass"
        elif threshold is not None or positive is not None or (
            labels is not None and len(labels) == 2
        ):
            kind = "binary"
        else:
            kind = "regression"
    if kind == "regression":
        x = float(v[0])
        ok = math.isfinite(x)
        return {
            "prediction.score": x if ok else None,
            "prediction.nonfinite": not ok,
            "score.nonfinite_count": 0 if ok else 1,
        }
    if kind == "binary":
        return _ref_binary(v, labels, logits, threshold, positive)
    return _ref_multiclass(v, labels, k, logits, positive)


def _ref_binary(
    v: np.ndarray[Any, Any],
    labels: list[Any] | None,
    logits: bool,
    threshold: float | None,
    positive: Any,
) -> dict[str, Any]:
    names = labels if labels is not None else [0, 1]
    pos = 1 if positive is None else names.index(positive)
    with np.errstate(all="ignore"):
        if v.size == 2:
            p = float(scipy.special.softmax(v)[pos]) if logits else float(v[pos])
        else:
            p = float(scipy.special.expit(v[0])) if logits else float(v[0])
    chosen = pos if p >= (0.5 if threshold is None else threshold) else 1 - pos
    bad = int(np.sum(~np.isfinite(v)))
    out: dict[str, Any] = {
        "prediction.label": names[chosen],
        "prediction.nonfinite": bad > 0,
        "score.nonfinite_count": bad,
    }
    if bad:
        out["prediction.score"] = None
        return out
    out["prediction.score"] = p
    if logits:
        ok = True
    elif v.size == 2:
        ok = bool(((v >= 0) & (v <= 1)).all()) and abs(float(v.sum()) - 1) <= 0.01
    else:
        ok = 0.0 <= p <= 1.0
    if ok:
        out["prediction.p_positive"] = p
        out["score.margin"] = abs(max(p, 1 - p) - min(p, 1 - p))
        h = float(scipy.stats.entropy([1 - p, p]))
        out["score.entropy"] = h
        out["score.entropy_norm"] = h / math.log(2)
        out["score.bin"] = ref_bin(p)
    return out


def _ref_multiclass(
    v: np.ndarray[Any, Any], labels: list[Any] | None, k: int, logits: bool, positive: Any
) -> dict[str, Any]:
    finite = np.isfinite(v)
    masked = (v == -np.inf) if logits else np.zeros(v.size, dtype=bool)
    bad = int(np.sum(~finite & ~masked))
    names_all = labels if labels is not None else list(range(v.size))
    if bad or masked.all():
        return {
            "prediction.label": names_all[int(np.argmax(v))],
            "prediction.score": None,
            "prediction.nonfinite": bad > 0,
            "score.nonfinite_count": bad,
        }
    out: dict[str, Any] = {"prediction.nonfinite": False, "score.nonfinite_count": 0}
    valid_index = [i for i in range(v.size) if finite[i]]
    probs = np.zeros(v.size)
    if logits:
        probs[valid_index] = scipy.special.softmax(v[valid_index])
        ok = True
    else:
        probs[valid_index] = v[valid_index]
        ok = bool(v.min() >= 0 and v.max() <= 1 and abs(v.sum() - 1) <= 0.01)
    order = sorted(valid_index, key=lambda i: (-v[i], i))
    shown = order[: min(k, len(order))]
    names = [names_all[i] for i in shown]
    out["prediction.label"] = names[0]
    out["prediction.score"] = float(probs[order[0]])
    for rank, (i, name) in enumerate(zip(shown, names, strict=True), 1):
        out[f"score.top{rank}"] = float(probs[i])
        out[f"score.top{rank}.label"] = name
    out["score.topk.labels"] = names
    out["score.topk.scores"] = [float(probs[i]) for i in shown]
    if len(order) >= 2:
        out["score.margin"] = float(probs[order[0]] - probs[order[1]])
    if ok:
        valid = probs[valid_index]
        h = float(scipy.stats.entropy(valid))
        out["score.entropy"] = h
        out["score.entropy_norm"] = h / math.log(len(valid)) if len(valid) >= 2 else None
        out["score.bin"] = ref_bin(float(probs[order[0]]))
        if positive is not None:
            out["prediction.p_positive"] = float(probs[names_all.index(positive)])
    return out


def ref_rbo_ext(first: list[Any], second: list[Any], p: float = 0.9) -> float:
    """Extrapolated RBO, Webber, Moffat & Zobel (2010) eq. 32, computed naively from sets."""
    s_list, l_list = (first, second) if len(first) <= len(second) else (second, first)
    s, ell = len(s_list), len(l_list)

    def overlap(d: int) -> int:
        return len(set(s_list[:d]) & set(l_list[:d]))

    x_s = overlap(s)
    x_l = overlap(ell)
    total = sum(overlap(d) / d * p**d for d in range(1, ell + 1))
    total += sum(x_s * (d - s) / (s * d) * p**d for d in range(s + 1, ell + 1)) if s else 0.0
    tail = ((x_l - x_s) / ell + (x_s / s if s else 0.0)) * p**ell
    return (1 - p) / p * total + tail


def ref_tau_b(primary: list[Any], shadow: list[Any]) -> float | None:
    """Kendall tau-b (scipy) over the union, missing items tied at the list's bottom."""
    union = list(dict.fromkeys(primary + shadow))
    a = [primary.index(x) if x in primary else len(primary) for x in union]
    b = [shadow.index(x) if x in shadow else len(shadow) for x in union]
    if len(union) < 2:
        return None
    tau = scipy.stats.kendalltau(a, b).statistic
    return None if math.isnan(tau) else float(tau)


def ref_compare(primary: list[Any], shadow: list[Any], k: int) -> dict[str, Any]:
    """The shadow agreement fields from the definitions (lists assumed distinct)."""
    p, s = primary[:k], shadow[:k]
    return {
        "shadow.top1_same": bool(p and s and p[0] == s[0]),
        "shadow.overlap_at_k": len(set(p) & set(s)) / max(len(p), len(s)),
        "shadow.kendall_tau": ref_tau_b(p, s),
        "shadow.rbo": ref_rbo_ext(p, s),
    }


def ref_feature_bin(edges: list[float], x: float) -> int:
    """Reference decile bin: how many edges are <= x."""
    return sum(1 for e in edges if e <= x)
