"""Text answers of ``compare``, ``drift`` and ``calibration`` for people: aligned tables
whose every cell is escaped (``_cli._cell``), shares as percentages."""

from __future__ import annotations

from typing import Any

from wideevents._core.terminal import escape
from wideevents.query._cli import _align, _cell
from wideevents.query._divergence import MODERATE, SIGNIFICANT

__all__ = ["bucket_label", "calibration_text", "compare_text", "drift_text"]


def _pct(share: float | None) -> str:
    return "-" if share is None else f"{share * 100:.1f}%"


def bucket_label(entry: dict[str, Any]) -> str:
    """``[lo, hi)``, a value, ``(missing)`` or ``(other)``."""
    if entry.get("missing"):
        return "(missing)"
    if entry.get("other"):
        return "(other)"
    if "range" in entry:
        lo, hi = entry["range"]
        return f"[{_cell(lo)}, {_cell(hi)})"
    value = entry.get("value")
    return _cell(value) if not isinstance(value, str) else escape(value)


def compare_text(result: Any) -> list[str]:
    lines = [f"selection: {_cell(result.selection_count)} events; baseline: "
             f"{_cell(result.baseline_count)} events (weighted by samplerate)", ""]
    body = []
    for f in result.fields:
        tops = "; ".join(f"{bucket_label(t)}: {_pct(t['selection'])} vs {_pct(t['baseline'])}"
                         for t in f["top"][:3])
        same = f.get("same_as", [])
        name = escape(f["column"]) + (f" (= {', '.join(escape(c) for c in same)})"
                                      if same else "")
        body.append([name, f["kind"], f"{f['score']:.3f}", tops])
    if not body:
        return [*lines, "(no column to compare)"]
    lines += _align(["column", "kind", "score", "selection vs baseline (largest differences)"],
                    body, [False, False, True, False])
    lines += ["", "score: total variation distance of the weighted shares, 0 (same) to 1 "
              "(disjoint)"]
    if any(f.get("same_as") for f in result.fields):
        lines.append("(= ...): columns distributed exactly the same, listed once")
    return lines


def _features(entries: list[dict[str, Any]], limit: int) -> list[str]:
    body = []
    for f in entries[:limit]:
        worst = max(f["bins"], key=lambda b: abs(b["psi"]), default=None)
        where = "" if worst is None else (
            f"{bucket_label(worst)}: {_pct(worst['target'])} vs {_pct(worst['reference'])}")
        body.append([escape(f["feature"]), f["kind"], f"{f['psi']:.3f}", f"{f['js']:.3f}",
                     f["level"], where])
    if not body:
        return ["(no feature)"]
    return _align(["feature", "kind", "PSI", "JS", "drift", "largest bin: target vs reference"],
                  body, [False, False, True, True, False, False])


def drift_text(result: Any, limit: int) -> list[str]:
    note = (f"PSI < {MODERATE} none, {MODERATE} to {SIGNIFICANT} moderate, >= {SIGNIFICANT} "
            "significant; JS: Jensen-Shannon distance (base 2), 0 to 1")
    if result.groups is None:
        return [*_features(result.features or [], limit), "", note]
    lines: list[str] = []
    for g in result.groups:
        lines += [f"== {_cell(g['group'])} ({_cell(g['count'])} events)",
                  *_features(g["features"], limit), ""]
    return [*(lines or ["(no group)", ""]), note]


def calibration_text(result: Any) -> list[str]:
    if not result.groups:
        return ["(no labelled feedback)"]
    body = [[_cell(g["group"]), g["kind"], _cell(g["count"]), f"{g['ece']:.4f}",
             "-" if g["brier"] is None else f"{g['brier']:.4f}",
             "-" if g["accuracy"] is None else f"{g['accuracy']:.3f}"]
            for g in result.groups]  # fmt: skip
    lines = _align(["group", "kind", "count", "ECE", "Brier", "accuracy"], body,
                   [False, False, True, True, True, True])
    for g in result.groups:
        lines += ["", f"reliability: {_cell(g['group'])} ({g['kind']})"]
        rows = [[f"[{b['lower']:.2f}, {b['upper']:.2f})", _cell(b["count"]),
                 _pct(b["mean_predicted"]), _pct(b["observed_rate"]),
                 _bar(b["mean_predicted"], b["observed_rate"])]
                for b in g["bins"] if b["count"]]  # fmt: skip
        lines += _align(["p", "count", "predicted", "observed", "gap"], rows,
                        [False, True, True, True, False])
    if result.positive is not None:
        lines += ["", f"positive class: {_cell(result.positive)}"]
    return lines


def _bar(predicted: float | None, observed: float | None, width: int = 20) -> str:
    """``>>>`` over-confident (predicted above observed), ``<<<`` under-confident."""
    if predicted is None or observed is None:
        return ""
    gap = predicted - observed
    n = min(width, round(abs(gap) * width * 2))
    return (">" if gap > 0 else "<") * n
