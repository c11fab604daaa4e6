"""``wideevents.query.compare`` against answers computed here from the definitions of
docs/analysis.md ("compare"): weighted shares per bucket, total variation distance
``0.5 * sum |s - b|``, numeric bins between the deciles of the union, missing values as
their own bucket, identity and unique columns left out."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support.query import write_events
from wideevents import ConfigurationError
from wideevents.query import compare

DECILES = np.arange(1, 10) / 10


def _events(n: int = 400, seed: int = 5) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        slow = rng.random() < 0.3
        ev: dict[str, Any] = {
            "timestamp": f"2025-01-01T00:00:{i % 60:02d}Z", "request.id": f"r{i}",
            "note": f"free text {i}", "slow": slow,
            # region: the selection is mostly "ap"; baseline spread evenly
            "region": "ap" if slow and rng.random() < 0.8 else rng.choice(["us", "eu", "ap"]),
            # latency: 20 distinct values, each 20 times in stored order (edges unambiguous)
            "latency": (i // 20) if not slow else min(19, (i // 20) + 2),
            "samplerate": rng.choice([1, 1, 3]),
        }  # fmt: skip
        if rng.random() < (0.6 if slow else 0.2):
            ev["flag"] = rng.random() < 0.5
        out.append(ev)
    return out


def _shares(values: list[Any], weights: list[float], keys: list[Any]) -> np.ndarray:
    w = np.array(weights, dtype=float)
    return np.array([w[[v == k and type(v) is type(k) for v in values]].sum() for k in keys]) / w.sum()


def _tvd(sel: list[Any], sw: list[float], base: list[Any], bw: list[float]) -> float:
    keys = list({(type(v), v): v for v in sel + base}.values())
    return float(0.5 * np.abs(_shares(sel, sw, keys) - _shares(base, bw, keys)).sum())


def _expected(events: list[dict[str, Any]]) -> dict[str, float]:
    """Each compared column's score, from the definitions."""
    sel = [e for e in events if e["slow"]]
    base = [e for e in events if not e["slow"]]
    sw, bw = [e["samplerate"] for e in sel], [e["samplerate"] for e in base]
    latency = [e["latency"] for e in events]
    edges = np.unique(np.quantile(latency, DECILES, method="inverted_cdf"))
    # The data is chosen so that the decile rule does not matter (inverted_cdf == lower).
    assert np.array_equal(edges, np.unique(np.quantile(latency, DECILES, method="lower")))

    def binned(es: list[dict[str, Any]]) -> list[Any]:
        return [int(np.searchsorted(edges, e["latency"], side="right")) for e in es]

    return {
        "region": _tvd([e["region"] for e in sel], sw, [e["region"] for e in base], bw),
        "flag": _tvd([e.get("flag") for e in sel], sw, [e.get("flag") for e in base], bw),
        "latency": _tvd(binned(sel), sw, binned(base), bw),
        "name": 0.0,
    }


def test_compare_ranks_columns_by_weighted_total_variation(tmp_path: Path) -> None:
    """Scores are the weighted TVD of each column; the order is best first; ids, timestamps,
    free text and the selection's own column are left out."""
    events = _events()
    for e in events:
        e["name"] = "GET /x"
    path = write_events(tmp_path / "e.jsonl", events)
    expected = _expected(events)
    result = compare([path], where="slow = true", cache=False)
    got = {f["column"]: f["score"] for f in result.to_dict()["fields"]}
    assert sorted(expected) == sorted(got)
    for column, score in expected.items():
        assert score == pytest.approx(got[column], abs=1e-12), column
    assert sorted(expected, key=lambda c: (-expected[c], c)) == list(got)
    kinds = {f["column"]: f["kind"] for f in result.fields}
    assert {"latency": "numeric", "region": "categorical", "flag": "categorical"} == {
        c: kinds[c] for c in ("latency", "region", "flag")}
    sel_weight = sum(e["samplerate"] for e in events if e["slow"])
    assert sel_weight == result.selection_count


def test_compare_top_values_carry_both_weighted_shares(tmp_path: Path) -> None:
    """The region entry lists each value with its selection and baseline shares, the
    largest difference first; a missing flag is a bucket of its own."""
    events = _events()
    path = write_events(tmp_path / "e.jsonl", events)
    result = compare([path], where="slow = true", cache=False)
    fields = {f["column"]: f for f in result.fields}
    sel = [e for e in events if e["slow"]]
    base = [e for e in events if not e["slow"]]
    want = {}
    for region in ("ap", "eu", "us"):
        s = sum(e["samplerate"] for e in sel if e["region"] == region) / sum(
            e["samplerate"] for e in sel)
        b = sum(e["samplerate"] for e in base if e["region"] == region) / sum(
            e["samplerate"] for e in base)
        want[region] = (s, b)
    top = fields["region"]["top"]
    assert sorted(want, key=lambda r: -abs(want[r][0] - want[r][1])) == [t["value"] for t in top]
    for t in top:
        assert want[t["value"]] == pytest.approx((t["selection"], t["baseline"]))
    missing = [t for t in fields["flag"]["top"] if t.get("missing")]
    s_missing = sum(e["samplerate"] for e in sel if "flag" not in e) / sum(
        e["samplerate"] for e in sel)
    assert [pytest.approx(s_missing)] == [m["selection"] for m in missing]


def test_samplerate_weighs_like_repeated_events(tmp_path: Path) -> None:
    """A file where an event has samplerate 3 gives the same scores as one where it is
    written three times unsampled (the numeric column is left out: its bin edges are
    deciles of the stored events, which differ between the two files)."""
    events = _events(300, seed=9)
    for e in events:
        del e["latency"]
    expanded = [dict(e, samplerate=1, note=f"{e['note']} copy {k}")
                for e in events for k in range(e["samplerate"])]
    a = compare([write_events(tmp_path / "a.jsonl", events)], where="slow = true", cache=False)
    b = compare([write_events(tmp_path / "b.jsonl", expanded)], where="slow = true", cache=False)
    assert [(f["column"], pytest.approx(f["score"])) for f in b.fields] == [
        (f["column"], f["score"]) for f in a.fields]
    assert b.selection_count == a.selection_count


def test_explicit_baseline_may_overlap_the_selection(tmp_path: Path) -> None:
    """With --baseline, an event in both slices counts on both sides: comparing a slice
    with itself scores every column 0."""
    path = write_events(tmp_path / "e.jsonl", _events())
    result = compare([path], where="slow = true", baseline="slow = true", cache=False)
    assert [0.0] * len(result.fields) == [f["score"] for f in result.fields]
    assert result.selection_count == result.baseline_count


def test_compare_needs_a_selection_and_names_a_misspelled_column(tmp_path: Path) -> None:
    """No --where is a configuration error that says what to pass; a filter column no event
    has gives a warning with the nearest column."""
    path = write_events(tmp_path / "e.jsonl", _events(50))
    with pytest.raises(ConfigurationError, match="where="):
        compare([path], where=None)
    result = compare([path], where="slwo = true", cache=False)
    assert any("did you mean 'slow'" in w for w in result.warnings)


def test_many_rare_values_are_lumped_and_kinds_stay_apart(tmp_path: Path) -> None:
    """A column of 60 values keeps its 20 most common (by weight over both sides) and
    lumps the rest into one 'other' bucket; 200 and "200" are two values."""
    events = []
    for i in range(600):
        events.append({"slow": i % 2 == 0, "code": 200 if i % 3 else "200",
                       "tag": f"t{i % 60}",
                       "samplerate": 1 + (i % 60 < 20)})
    path = write_events(tmp_path / "e.jsonl", events)
    result = compare([path], where="slow = true", top=30, cache=False)
    fields = {f["column"]: f for f in result.fields}
    tag = fields["tag"]["top"]
    values = {t["value"] for t in tag if not t.get("other")}
    assert {f"t{k}" for k in range(20)} == values  # the 20 heaviest (samplerate 2)
    assert 1 == sum(1 for t in tag if t.get("other"))
    assert sum(t["selection"] for t in tag) == pytest.approx(1.0)
    assert [200, "200"] == sorted((t["value"] for t in fields["code"]["top"]), key=str)


def test_columns_distributed_the_same_take_one_rank(tmp_path: Path) -> None:
    """A root event rolls up into itself (Beeline rollups): `calls` and `rollup.calls`
    hold the same value on every event, and ranking both wasted a place of --limit (found
    in the demo: `http.client.*` and `rollup.http.client.*` took two ranks each). The
    column later by name is listed in `same_as` of the first; a column with the same
    shares but other values (`region_copy` renamed) keeps its own rank, and the text
    output names the merged column."""
    from wideevents.query._analysis_text import compare_text

    events = _events()
    for e in events:
        e["calls"] = e["rollup.calls"] = e["latency"] % 3
        e["region_code"] = {"ap": "A", "us": "U", "eu": "E"}[e["region"]]
    path = write_events(tmp_path / "e.jsonl", events)
    result = compare([path], where="slow = true", limit=20, cache=False)
    got = {f["column"]: f for f in result.fields}
    assert "rollup.calls" not in got
    assert ["rollup.calls"] == got["calls"]["same_as"]
    assert "same_as" not in got["region"] and "same_as" not in got["region_code"]
    assert got["region"]["score"] == pytest.approx(got["region_code"]["score"], abs=1e-12)
    sel = [e["calls"] for e in events if e["slow"]]
    base = [e["calls"] for e in events if not e["slow"]]
    assert _tvd(sel, [e["samplerate"] for e in events if e["slow"]], base,
                [e["samplerate"] for e in events if not e["slow"]]) == pytest.approx(
        got["calls"]["score"], abs=1e-12)
    assert any(line.startswith("calls (= rollup.calls)") for line in compare_text(result))
