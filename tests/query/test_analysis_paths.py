"""The faster paths of the analysis commands give the answers of their definitions
(docs/analysis.md): the feedback join's choice of prediction (the earliest by
``timestamp``, nulls last: ``wideevents/query/_join.py`` module doc), an event on both sides
of ``compare`` or of ``drift --baseline`` counted on each, the key listing of ``compare``
over lines that are not objects, and a repeated run answered from the column store without
reading the JSON again."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from wideevents.query import calibration, compare, drift
from wideevents.query._join import join_feedback


def _write(path: Path, lines: list[Any]) -> Path:
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


def _pred(pid: str, version: str, ts: str | None) -> dict[str, Any]:
    ev: dict[str, Any] = {"name": "predict", "prediction.id": pid, "model.version": version,
                          "prediction.p_positive": 0.75, "prediction.label": "yes"}
    if ts is not None:
        ev["timestamp"] = ts
    return ev


def _feedback(pid: str, **fields: Any) -> dict[str, Any]:
    return {"name": "feedback", "prediction.id": pid, "feedback.label": "yes",
            "timestamp": "2025-01-02T00:00:00Z", **fields}


def test_join_takes_the_earliest_prediction_nulls_last(tmp_path: Path) -> None:
    """Several predictions with one id: the earliest by timestamp wins, one without a
    timestamp only when no other has one; across files and whatever the line order."""
    first = _write(tmp_path / "a.jsonl", [
        _pred("a", "late", "2025-01-01T00:00:09Z"), _pred("a", "none", None),
        _pred("b", "only-null", None), _feedback("a"), _feedback("b"),
        _feedback("c", **{"model.version": "carried"}),
    ])  # fmt: skip
    second = _write(tmp_path / "b.jsonl", [_pred("a", "early", "2025-01-01T00:00:01Z")])
    rows = {r["prediction.id"]: (r["joined"], r["model.version"])
            for r in join_feedback([first, second], cache=False)}
    assert {"a": (True, "early"), "b": (True, "only-null"), "c": (False, "carried")} == rows


def test_calibration_reads_the_earliest_prediction(tmp_path: Path) -> None:
    """calibration groups a row by the earliest prediction's fields (the same join)."""
    path = _write(tmp_path / "e.jsonl", [
        _pred("a", "v2", "2025-01-01T00:00:09Z"), _pred("a", "v1", "2025-01-01T00:00:01Z"),
        _feedback("a"),
    ])  # fmt: skip
    result = calibration([path], breakdown="model.version", cache=False)
    assert [("v1", 1.0)] == [(g["group"], g["count"]) for g in result.groups]


def _both_sides() -> list[dict[str, Any]]:
    """Events 0-9: x < 6 selected, x >= 4 baseline, so 4 and 5 are on both sides."""
    return [{"x": i, "colour": "red" if i % 2 else "blue", "samplerate": 1 + i % 3}
            for i in range(10)]


def test_compare_counts_an_event_on_both_sides_on_each(tmp_path: Path) -> None:
    """--where and --baseline overlap: an overlapping event is in both sides' shares."""
    events = _both_sides()
    path = _write(tmp_path / "e.jsonl", events)
    result = compare([path], where="x < 6", baseline="x >= 4", cache=False).to_dict()
    sel = [e for e in events if e["x"] < 6]
    base = [e for e in events if e["x"] >= 4]

    def share(side: list[dict[str, Any]], colour: str) -> float:
        return sum(e["samplerate"] for e in side if e["colour"] == colour) / sum(
            e["samplerate"] for e in side)

    tvd = 0.5 * sum(abs(share(sel, c) - share(base, c)) for c in ("red", "blue"))
    colour = next(f for f in result["fields"] if f["column"] == "colour")
    assert (sum(e["samplerate"] for e in sel), sum(e["samplerate"] for e in base)) == (
        result["selection_count"], result["baseline_count"])
    assert math.isclose(tvd, colour["score"], rel_tol=1e-12)


def test_drift_baseline_counts_an_event_in_target_and_baseline(tmp_path: Path) -> None:
    """drift --baseline with an overlapping --target: PSI (empty buckets at 0.0001) of the
    target's weighted shares against the baseline's, the overlap counted in both."""
    events = [{"name": "predict", "x": i, "feature.colour": c, "samplerate": w}
              for i, (c, w) in enumerate([("red", 1), ("red", 2), ("blue", 1), ("blue", 3),
                                          ("green", 1), ("red", 2)])]
    path = _write(tmp_path / "e.jsonl", events)
    result = drift([path], baseline="x < 4", target="x >= 2", cache=False).to_dict()
    base = [e for e in events if e["x"] < 4]
    target = [e for e in events if e["x"] >= 2]

    def shares(side: list[dict[str, Any]]) -> list[float]:
        total = sum(e["samplerate"] for e in side)
        return [max(sum(e["samplerate"] for e in side if e["feature.colour"] == c) / total,
                    0.0001) for c in ("blue", "green", "red")]

    psi = sum((t - r) * math.log(t / r) for t, r in zip(shares(target), shares(base),
                                                       strict=True))
    (feature,) = result["features"]
    assert ("feature.colour", sum(e["samplerate"] for e in target)) == (
        feature["feature"], feature["count"])
    assert math.isclose(psi, feature["psi"], rel_tol=1e-9)


def test_compare_lists_the_keys_of_objects_only(tmp_path: Path) -> None:
    """Lines that are arrays, scalars, not JSON or blank add no column to compare."""
    path = _write(tmp_path / "e.jsonl", [
        {"x": 1, "a": "p"}, '[{"arr": 1}]', '"text"', "42", "{not json", "",
        {"x": 9, "b": "q"}, {"x": 2, "a": "r"},
    ])  # fmt: skip
    result = compare([path], where="x > 1", cache=False)
    assert ["a", "b"] == sorted(f["column"] for f in result.fields)
    assert 4 == result.skipped_lines


def test_a_repeated_compare_does_not_read_the_json_again(tmp_path: Path) -> None:
    """Second run on an unchanged file (same size and mtime, the cache's key: docs/query.md)
    answers from the column store: rewriting the bytes behind its back changes nothing."""
    events = _both_sides()
    path = _write(tmp_path / "e.jsonl", events)
    cache = tmp_path / "cache"
    first = compare([path], where="x < 6", cache=str(cache)).to_dict()
    st = os.stat(path)
    text = path.read_text()
    path.write_text(text.replace('"red"', '"tan"').replace('"blue"', '"navy"'))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert st.st_size == os.stat(path).st_size
    again = compare([path], where="x < 6", cache=str(cache)).to_dict()
    assert first == again
