"""``wideevents.query.calibration`` against answers computed here from the definitions of
docs/analysis.md ("calibration"): feedback joined to its prediction by ``prediction.id``,
weighted by the feedback's ``samplerate``; bin i holds i/B <= p < (i+1)/B (1.0 in the last,
``score.bin``'s rule, docs/schema.md); ECE = sum_b W_b/W |mean p_b - rate_b| (Naeini et
al. 2015; Guo et al. 2017, eq. 3), Brier = weighted mean of (p - y)^2 (Brier 1950)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support.query import write_events
from wideevents import ConfigurationError
from wideevents.query import calibration


def _expected(p: list[float], y: list[int], w: list[int], correct: list[bool],
              bins: int = 10) -> dict[str, Any]:
    pa, ya, wa = np.array(p), np.array(y, dtype=float), np.array(w, dtype=float)
    b = np.minimum((pa * bins).astype(int), bins - 1)
    total = wa.sum()
    ece = 0.0
    table = []
    for i in range(bins):
        m = b == i
        if wa[m].sum():
            mean_p = np.average(pa[m], weights=wa[m])
            rate = np.average(ya[m], weights=wa[m])
            ece += wa[m].sum() / total * abs(mean_p - rate)
            table.append((i, wa[m].sum(), mean_p, rate))
    return {"count": total, "ece": ece, "brier": float(np.average((pa - ya) ** 2, weights=wa)),
            "accuracy": float(np.average(np.array(correct, dtype=float), weights=wa)),
            "table": table}


def _binary(seed: int = 3) -> tuple[list[dict[str, Any]], dict[str, tuple[list[Any], ...]]]:
    """Two model versions; v2 over-confident. Some feedback carries the prediction's fields
    itself (its prediction is not in the file: another process, a sampled-away event)."""
    rng = random.Random(seed)
    events: list[dict[str, Any]] = []
    truth: dict[str, tuple[list[Any], ...]] = {"v1": ([], [], [], []), "v2": ([], [], [], [])}
    for i in range(500):
        version = rng.choice(["v1", "v2"])
        true_p = rng.random()
        p = true_p if version == "v1" else min(1.0, max(0.0, 0.5 + 1.6 * (true_p - 0.5)))
        label = "yes" if p >= 0.5 else "no"
        pred = {"name": "predict", "prediction.id": f"id{i}", "model.version": version,
                "prediction.p_positive": p, "prediction.score": p, "prediction.label": label,
                "score.bin": min(int(p * 10), 9)}
        if rng.random() < 0.7:
            continue_ = rng.random() < 0.2
            observed = "yes" if rng.random() < true_p else "no"
            rate = rng.choice([1, 1, 4])
            fb: dict[str, Any] = {"name": "feedback", "prediction.id": f"id{i}",
                                  "feedback.label": observed, "samplerate": rate}
            if continue_:  # cross-process: the prediction event is elsewhere
                fb |= {k: v for k, v in pred.items() if k not in ("name", "prediction.id")}
            else:
                events.append(pred)
            events.append(fb)
            t = truth[version]
            t[0].append(p)
            t[1].append(1 if observed == "yes" else 0)
            t[2].append(rate)
            t[3].append(observed == label)
        else:
            events.append(pred)
    rng.shuffle(events)
    return events, truth


def test_binary_reliability_ece_brier_accuracy_per_version(tmp_path: Path) -> None:
    """Per model version: count, ECE, Brier, accuracy and every bin's count, mean predicted
    probability and observed rate equal the definitions computed with numpy."""
    events, truth = _binary()
    path = write_events(tmp_path / "e.jsonl", events)
    result = calibration([path], breakdown="model.version", cache=False)
    groups = {g["group"]: g for g in result.to_dict()["groups"]}
    assert ["v1", "v2"] == sorted(groups)
    assert "yes" == result.positive
    for version, (p, y, w, correct) in truth.items():
        want, got = _expected(p, y, w, correct), groups[version]
        assert "binary" == got["kind"]
        assert want["count"] == got["count"]
        assert want["ece"] == pytest.approx(got["ece"], rel=1e-9)
        assert want["brier"] == pytest.approx(got["brier"], rel=1e-9)
        assert want["accuracy"] == pytest.approx(got["accuracy"], rel=1e-9)
        table = [(b["bin"], b["count"], b["mean_predicted"], b["observed_rate"])
                 for b in got["bins"] if b["count"]]
        assert [i for i, *_ in want["table"]] == [i for i, *_ in table]
        for a, b in zip(want["table"], table, strict=True):
            assert pytest.approx(a) == b
    assert groups["v2"]["ece"] > groups["v1"]["ece"]


def test_explicit_positive_class_gives_the_same_answer(tmp_path: Path) -> None:
    """positive='yes' (stated) and the inferred positive class give the same numbers; the
    other class as positive mirrors p: the Brier score is not the same."""
    events, _ = _binary(seed=8)
    path = write_events(tmp_path / "e.jsonl", events)
    inferred = calibration([path], cache=False).to_dict()
    stated = calibration([path], positive="yes", cache=False).to_dict()
    assert inferred == stated
    flipped = calibration([path], positive="no", cache=False).to_dict()
    assert flipped["groups"][0]["brier"] != pytest.approx(stated["groups"][0]["brier"])


def test_multiclass_top_label_calibration(tmp_path: Path) -> None:
    """Without prediction.p_positive: top-label calibration of prediction.score against
    feedback.correct (computed from the labels when the feedback lacks it), 5 bins."""
    rng = random.Random(11)
    events, p, y, w = [], [], [], []
    for i in range(300):
        top = rng.uniform(0.34, 1.0)
        label = rng.choice(["cat", "dog", "bird"])
        observed = label if rng.random() < top * 0.8 else rng.choice(["cat", "dog", "bird"])
        rate = rng.choice([1, 2])
        events += [{"name": "classify", "prediction.id": i, "prediction.score": top,
                    "prediction.label": label},
                   {"name": "feedback", "prediction.id": i, "feedback.label": observed,
                    "samplerate": rate}]
        p.append(top)
        y.append(int(observed == label))
        w.append(rate)
    path = write_events(tmp_path / "e.jsonl", events)
    (got,) = calibration([path], bins=5, cache=False).to_dict()["groups"]
    want = _expected(p, y, w, [bool(v) for v in y], bins=5)
    assert ("multiclass", want["count"]) == (got["kind"], got["count"])
    assert want["ece"] == pytest.approx(got["ece"])
    assert want["brier"] == pytest.approx(got["brier"])
    assert want["accuracy"] == pytest.approx(got["accuracy"])


def test_where_filters_joined_rows_and_bad_breakdown_says_what_exists(tmp_path: Path) -> None:
    """--where narrows the joined rows; a breakdown on a column a joined row cannot carry
    is a configuration error saying which it can; a misspelled one is a warning."""
    events, truth = _binary(seed=5)
    path = write_events(tmp_path / "e.jsonl", events)
    (only,) = calibration([path], where="model.version = v1", cache=False).to_dict()["groups"]
    p, y, w, correct = truth["v1"]
    assert _expected(p, y, w, correct)["ece"] == pytest.approx(only["ece"])
    with pytest.raises(ConfigurationError, match="slice."):
        calibration([path], breakdown="region", cache=False)
    result = calibration([path], breakdown="model.versoin", cache=False)
    assert any("did you mean 'model.version'" in w for w in result.warnings)
    with pytest.raises(ConfigurationError, match="bins"):
        calibration([path], bins=0, cache=False)


def test_feedback_join_lists_a_files_keys_once_per_version(tmp_path: Path) -> None:
    """The join finds the fields to carry through the column store's key list, kept in the
    cache entry's manifest (it used to parse every line of every file on every call: a
    repeated calibration re-read the whole file); the answer is the same from the cache."""
    from wideevents.query._join import join_feedback

    events, _ = _binary(seed=4)
    path = write_events(tmp_path / "e.jsonl", events)
    cache = tmp_path / "cache"
    first = join_feedback([path], cache=cache)
    (manifest,) = list(cache.glob("v3-*/manifest.json"))
    keys = json.loads(manifest.read_text())["keys"] or []
    assert {"feedback.label", "prediction.p_positive", "model.version"} <= set(keys)
    again = join_feedback([path], cache=cache)
    key = lambda row: row["prediction.id"]  # noqa: E731 - a sort key
    assert sorted(first, key=key) == sorted(again, key=key)


def test_a_breakdown_by_an_id_computes_the_largest_groups_only(tmp_path: Path) -> None:
    """With more values of the breakdown than `groups`, the groups with the most feedback
    (weighted) are computed, each as without the cap, and a warning says how many were left
    out; the positive class is still inferred from every row."""
    events, _ = _binary()
    feedback = [e for e in events if e["name"] == "feedback"]
    for n, e in enumerate(feedback):  # four regions on the feedback rows, of known weight
        e["slice.region"] = ["r1", "r2", "r3", "r4"][n % 4]
    path = write_events(tmp_path / "e.jsonl", events)
    weight = {r: sum(e["samplerate"] for e in feedback if e["slice.region"] == r)
              for r in ["r1", "r2", "r3", "r4"]}
    top = sorted(weight, key=lambda r: (-weight[r], r))[:2]
    whole = calibration([path], breakdown="slice.region", cache=False)
    capped = calibration([path], breakdown="slice.region", groups=2, cache=False)
    assert sorted(top) == sorted(g["group"] for g in capped.groups)
    by_group = {g["group"]: g for g in whole.groups}
    for g in capped.groups:
        assert by_group[g["group"]] == g
    assert whole.positive == capped.positive == "yes"
    assert ["'slice.region' has 4 values: computed the 2 with the most events (weighted), "
            "left out the other 2; groups=N (--groups N) for more"] == capped.warnings
    with pytest.raises(ConfigurationError, match="groups must be a positive integer"):
        calibration([path], breakdown="slice.region", groups=True, cache=False)
