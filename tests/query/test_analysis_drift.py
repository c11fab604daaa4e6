"""``wideevents.query.drift`` against answers computed here from the definitions of
docs/analysis.md ("drift"): PSI = sum (t - r) ln(t / r) with empty shares at 0.0001 (as
Evidently's ``psi`` stattest), Jensen-Shannon distance base 2 (``scipy.spatial.distance.
jensenshannon(p, q, base=2)``), profile bins by ``numpy.searchsorted(edges, x,
side="right")`` (the rule of ``feature_bin.*``, docs/schema.md), shares weighted by
``samplerate``."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon

from tests.support.query import write_events
from wideevents import ConfigurationError
from wideevents.query import drift

EPS = 1e-4
EDGES = [-1.28, -0.84, -0.52, -0.25, 0.0, 0.25, 0.52, 0.84, 1.28]


def _psi(t: np.ndarray, r: np.ndarray) -> float:
    t, r = np.where(t == 0, EPS, t), np.where(r == 0, EPS, r)
    return float(np.sum((t - r) * np.log(t / r)))


def _js(t: np.ndarray, r: np.ndarray) -> float:
    return float(jensenshannon(t, r, base=2))


def _profile(**overrides: Any) -> dict[str, Any]:
    x = {"name": "x", "kind": "numeric", "count": 1000, "null_rate": 0.05, "min": -3.0,
         "max": 3.0, "edges": EDGES, "bin_fractions": [0.1] * 10}
    c = {"name": "c", "kind": "categorical", "count": 1000, "null_rate": 0.0,
         "categories": ["a", "b", "c"], "frequencies": [0.5, 0.3, 0.2]}
    score = {"kind": "binary", "count": 1000, "null_rate": 0.0,
             "bin_fractions": [0.05, 0.05, 0.1, 0.1, 0.2, 0.2, 0.1, 0.1, 0.05, 0.05]}
    doc = {"format": "wideevents.profile", "version": 2, "features": [x, c], "score": score}
    return doc | overrides


def _events(n: int = 600, seed: int = 2) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    for i in range(n):
        ev: dict[str, Any] = {"name": "predict", "prediction.id": f"p{i}",
                              "samplerate": rng.choice([1, 2, 5]),
                              "slice.tenant": rng.choice(["t1", "t2"]),
                              "score.bin": rng.choice([0, 1, 5, 5, 9])}
        if rng.random() > 0.1:
            ev["feature.x"] = round(rng.gauss(0.4, 1.0), 3)
        ev["feature.c"] = rng.choice(["a", "a", "b", "z"])
        out.append(ev)
        if i % 7 == 0:  # feedback copies score.bin; it is not a prediction: never in drift
            out.append({"name": "feedback", "prediction.id": f"p{i}", "score.bin": 9})
    return out


def _weighted(values: list[Any], weights: list[int], keys: list[Any]) -> np.ndarray:
    w = np.array(weights, dtype=float)
    return np.array([w[[v == k for v in values]].sum() for k in keys]) / w.sum()


def _predictions(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in events if e["name"] != "feedback"]


def test_profile_numeric_categorical_and_score(tmp_path: Path) -> None:
    """Against a Profile v2: PSI and JS of feature.x (profile deciles, null_rate as the
    missing bucket), feature.c (frequencies; an unseen value in the 'other' bucket) and
    score.bin (the score reference), feedback events left out."""
    events = _events()
    path = write_events(tmp_path / "e.jsonl", events)
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps(_profile()))
    preds = _predictions(events)
    w = [e["samplerate"] for e in preds]
    # feature.x: bins 0..9, then missing
    xs = [int(np.searchsorted(EDGES, e["feature.x"], side="right")) if "feature.x" in e else "m"
          for e in preds]
    t_x = _weighted(xs, w, [*range(10), "m"])
    r_x = np.array([0.1 * 0.95] * 10 + [0.05])
    cs = [e["feature.c"] if e["feature.c"] in "abc" else "other" for e in preds]
    t_c = _weighted(cs, w, ["a", "b", "c", "other"])
    r_c = np.array([0.5, 0.3, 0.2, 0.0])
    t_s = _weighted([e["score.bin"] for e in preds], w, list(range(10)))
    r_s = np.array(_profile()["score"]["bin_fractions"])
    expected = {"feature.x": (t_x, r_x), "feature.c": (t_c, r_c), "score.bin": (t_s, r_s)}
    result = drift([path], profile=profile, cache=False)
    got = {f["feature"]: f for f in result.to_dict()["features"]}
    assert sorted(expected) == sorted(got)
    for name, (t, r) in expected.items():
        assert _psi(t, r) == pytest.approx(got[name]["psi"], rel=1e-9), name
        assert _js(t, r) == pytest.approx(got[name]["js"], rel=1e-9), name
        assert sorted(t.tolist()) == pytest.approx(sorted(b["target"] for b in got[name]["bins"]))
    order = sorted(expected, key=lambda k: -_psi(*expected[k]))
    assert order == [f["feature"] for f in result.features or []]
    other = [b for b in got["feature.c"]["bins"] if b.get("other")]
    assert [pytest.approx(t_c[3])] == [b["target"] for b in other]


def test_profile_with_breakdown_per_group(tmp_path: Path) -> None:
    """With --breakdown against a profile, each group's shares are its own events' (the
    features with few bins share a grouping set with the group in it: nothing leaks from
    one group or one feature into another)."""
    events = _events(900, seed=5)
    for n, e in enumerate(events):
        if e["name"] != "feedback":
            e["slice.tenant"] = ["t1", "t2", "t3"][n % 3]
    path = write_events(tmp_path / "e.jsonl", events)
    result = drift([path], profile=_profile(), breakdown="slice.tenant", cache=False)
    groups = {g["group"]: g for g in result.to_dict()["groups"]}
    assert ["t1", "t2", "t3"] == sorted(groups)
    r_x = np.array([0.1 * 0.95] * 10 + [0.05])
    r_c = np.array([0.5, 0.3, 0.2, 0.0])
    r_s = np.array(_profile()["score"]["bin_fractions"])
    for tenant, group in groups.items():
        preds = [e for e in _predictions(events) if e["slice.tenant"] == tenant]
        w = [e["samplerate"] for e in preds]
        xs = [int(np.searchsorted(EDGES, e["feature.x"], side="right"))
              if "feature.x" in e else "m" for e in preds]
        t_x = _weighted(xs, w, [*range(10), "m"])
        t_c = _weighted([e["feature.c"] if e["feature.c"] in "abc" else "other" for e in preds],
                        w, ["a", "b", "c", "other"])
        t_s = _weighted([e["score.bin"] for e in preds], w, list(range(10)))
        got = {f["feature"]: f for f in group["features"]}
        for name, t, r in (("feature.x", t_x, r_x), ("feature.c", t_c, r_c),
                           ("score.bin", t_s, r_s)):
            assert _psi(t, r) == pytest.approx(got[name]["psi"], rel=1e-9), (tenant, name)
            assert _js(t, r) == pytest.approx(got[name]["js"], rel=1e-9), (tenant, name)
        assert sum(w) == group["count"]


def test_feature_bin_is_used_when_the_events_carry_it(tmp_path: Path) -> None:
    """feature_bin.x, what the SDK computed (in the training dtype's precision), wins over
    rebinning feature.x: here they disagree on purpose and the bins follow feature_bin."""
    events = [{"name": "p", "feature.x": 5.0, "feature_bin.x": b} for b in [0, 0, 1, 2, 2, 2]]
    path = write_events(tmp_path / "e.jsonl", events)
    doc = _profile(score=None)
    doc["features"][0]["null_rate"] = 0.0
    result = drift([path], profile=doc, cache=False)
    x = next(f for f in result.features or [] if f["feature"] == "feature.x")
    t = np.array([2, 1, 3, 0, 0, 0, 0, 0, 0, 0]) / 6
    assert _psi(t, np.full(10, 0.1)) == pytest.approx(x["psi"])
    assert t.tolist() == pytest.approx([b["target"] for b in x["bins"]])


def test_collapsed_deciles_empty_on_both_sides_add_nothing(tmp_path: Path) -> None:
    """Equal edges make bins no value can fall in: with the 0.0001 rule such a bin adds
    exactly 0, so PSI equals the PSI over the bins that can hold values."""
    edges = [0.0, 0.0, 0.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    fractions = [0.3, 0.0, 0.0, 0.0, 0.2, 0.1, 0.1, 0.1, 0.1, 0.1]
    doc = _profile(score=None)
    doc["features"] = [{"name": "x", "kind": "numeric", "count": 10, "null_rate": 0.0,
                        "min": -1.0, "max": 6.0, "edges": edges, "bin_fractions": fractions}]
    values = [-0.5] * 10 + [0.0] * 40 + [1.5] * 20 + [2.5] * 10 + [3.5] * 10 + [4.5] * 5 + [5.5] * 5
    path = write_events(tmp_path / "e.jsonl", [{"name": "p", "feature.x": v} for v in values])
    t = np.bincount(np.searchsorted(edges, values, side="right"), minlength=10) / len(values)
    r = np.array(fractions)
    live = [0, 4, 5, 6, 7, 8, 9]
    result = drift([path], profile=doc, cache=False)
    (x,) = result.features or []
    assert _psi(t, r) == pytest.approx(x["psi"])
    assert _psi(t[live], r[live]) == pytest.approx(x["psi"])
    assert [0.0, 0.0, 0.0] == [b["psi"] for b in x["bins"][1:4]]


def test_baseline_slice_with_breakdown(tmp_path: Path) -> None:
    """Against a baseline slice: bins between the baseline's deciles, categories by value;
    with --breakdown one entry per group of the target, each against the whole baseline."""
    rng = random.Random(4)
    events = []
    for i in range(400):
        version = "v1" if i < 200 else "v2"
        # 20 distinct values, 10 of each in the baseline: its deciles are unambiguous
        value = (i % 200) // 10 if version == "v1" else rng.choice([0, 5, 18, 19, 25])
        events.append({"name": "p", "model.version": version, "feature.n": value,
                       "feature.cat": rng.choice(["x", "y"] if version == "v1" else ["y"]),
                       "slice.region": rng.choice(["eu", "us"]),
                       "samplerate": 1 if version == "v1" else rng.choice([1, 4])})
    path = write_events(tmp_path / "e.jsonl", events)
    base = [e for e in events if e["model.version"] == "v1"]
    edges = np.unique(np.quantile([e["feature.n"] for e in base], np.arange(1, 10) / 10,
                                  method="inverted_cdf"))
    result = drift([path], baseline="model.version = v1", breakdown="slice.region", cache=False)
    groups = {g["group"]: g for g in result.to_dict()["groups"]}
    assert ["eu", "us"] == sorted(groups)
    bins = len(edges) + 1
    r_n = _weighted([int(np.searchsorted(edges, e["feature.n"], side="right")) for e in base],
                    [1] * len(base), list(range(bins)))
    r_c = _weighted([e["feature.cat"] for e in base], [1] * len(base), ["x", "y"])
    for region, group in groups.items():
        target = [e for e in events if e["model.version"] == "v2" and e["slice.region"] == region]
        w = [e["samplerate"] for e in target]
        t_n = _weighted([int(np.searchsorted(edges, e["feature.n"], side="right"))
                         for e in target], w, list(range(bins)))
        t_c = _weighted([e["feature.cat"] for e in target], w, ["x", "y"])
        got = {f["feature"]: f for f in group["features"]}
        assert _psi(t_n, r_n) == pytest.approx(got["feature.n"]["psi"])
        assert _js(t_n, r_n) == pytest.approx(got["feature.n"]["js"])
        assert _psi(t_c, r_c) == pytest.approx(got["feature.cat"]["psi"])
        assert sum(w) == group["count"]


def test_levels_and_reference_arguments(tmp_path: Path) -> None:
    """The level follows the documented thresholds (0.1 moderate, 0.25 significant);
    exactly one reference must be given, with a message saying how."""
    path = write_events(tmp_path / "e.jsonl", _events(50))
    result = drift([path], profile=_profile(), cache=False)
    for f in result.features or []:
        want = "significant" if f["psi"] >= 0.25 else "moderate" if f["psi"] >= 0.1 else "none"
        assert want == f["level"]
    with pytest.raises(ConfigurationError, match="exactly one reference"):
        drift([path])
    with pytest.raises(ConfigurationError, match="exactly one reference"):
        drift([path], profile=_profile(), baseline="x = 1")
    with pytest.raises(ConfigurationError, match="not a wideevents profile"):
        drift([path], profile={"features": []})


def test_bins_in_sql_follow_searchsorted_right() -> None:
    """The SQL bin of a value is numpy.searchsorted(edges, x, side="right"), equal edges
    (collapsed deciles) included; NULL stays NULL."""
    import duckdb

    from wideevents.query._frame import numeric_bin_sql

    con = duckdb.connect()
    rng = np.random.default_rng(0)
    for edges in ([0, 0, 0, 0, 1, 2, 3, 4, 5], [1, 2, 3, 4, 5, 6, 7, 8, 9], [2] * 9, [0.5], []):
        xs = np.concatenate([rng.integers(-1, 11, 100).astype(float), np.array(edges, float)])
        got = con.execute(f"SELECT {numeric_bin_sql('x', edges)} FROM (SELECT unnest(?) AS x)",
                          [xs.tolist()]).fetchall()
        assert np.searchsorted(edges, xs, side="right").tolist() == [g[0] for g in got]
    assert (None,) == con.execute(f"SELECT {numeric_bin_sql('x', [1.0])} FROM "
                                  "(SELECT CAST(NULL AS DOUBLE) AS x)").fetchone()


@pytest.mark.parametrize("reference", ["profile", "baseline"])
def test_a_breakdown_by_an_id_computes_the_largest_groups_only(
    tmp_path: Path, reference: str
) -> None:
    """--breakdown by a column with a value per event (an id) once made one group per
    event: 33 s and 2.5 GB for 30,000 events (300,000 were killed for lack of memory). Now
    the `groups` largest groups by weighted count are computed, the missing value being one
    group, with a warning that says how many were left out; a kept group's
    numbers are those computed without the cap."""
    rng = random.Random(9)
    sizes = {"a": 9, "b": 7, "c": 5, "d": 3, "e": 2, "f": 1}  # weighted: a 9 ... f 1
    events: list[dict[str, Any]] = []
    for region, n in sizes.items():
        events += [{"name": "p", "slice.region": region, "feature.x": round(rng.gauss(0, 1), 2),
                    "model.version": "v2"} for _ in range(n)]
    events += [{"name": "p", "feature.x": 0.5, "model.version": "v2"} for _ in range(6)]
    events += [{"name": "p", "feature.x": round(rng.gauss(0, 1), 2), "model.version": "v1",
                "slice.region": "a"} for _ in range(40)]
    path = write_events(tmp_path / "e.jsonl", events)
    if reference == "profile":
        doc = _profile(features=[_profile()["features"][0]], score=None)
        args: dict[str, Any] = {"profile": doc, "target": "model.version = v2"}
    else:
        args = {"baseline": "model.version = v1"}
    whole = drift([path], breakdown="slice.region", cache=False, **args)
    capped = drift([path], breakdown="slice.region", groups=3, cache=False, **args)
    by_group = {g["group"]: g for g in whole.groups or []}
    assert {"a", "b", "c", "d", "e", "f", None} == set(by_group)
    # a: 9 target events (the 40 of v1 are the reference, not the target), missing: 6.
    kept = [g["group"] for g in capped.groups or []]
    assert {"a", "b", None} == set(kept), kept
    for g in capped.groups or []:
        assert by_group[g["group"]] == g
    assert ["'slice.region' has 7 values: computed the 3 with the most events (weighted), "
            "left out the other 4; groups=N (--groups N) for more"] == capped.warnings
    assert [] == whole.warnings
    with pytest.raises(ConfigurationError, match="groups must be a positive integer"):
        drift([path], breakdown="slice.region", groups=0, cache=False, **args)
