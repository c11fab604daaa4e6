"""``drift --honeycomb`` and ``calibration --honeycomb`` against a loopback Query Data API
that computes its answers from the events as Honeycomb stores them: the same numbers as the
local commands over the same events, in few queries (docs/analysis.md, "In Honeycomb").

The fake (tests/query/honeycomb_engine.py) computes, from Honeycomb's documentation and independently of wideevents: an
event stands for ``samplerate`` events (COUNT sums the rates, SUM sums rate x value over
the events with a number); a query's filters and a calculation's own ``filters`` are ANDed
("Query Specification": calculation ``filters`` narrow that calculation only); operators
``=``, ``!=``, ``exists``, ``does-not-exist``; rows are the groups of the breakdowns."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from tests.query.honeycomb_engine import KEY, ComputingHoneycomb
from wideevents.query import HoneycombQueryClient, calibration, drift
from wideevents.query._analysis_honeycomb import calibration_honeycomb, drift_honeycomb


def _stored(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events as Honeycomb stores what the SDK sends: the fields, and the sample rate."""
    return [{"data": {k: v for k, v in e.items() if k != "samplerate"},
             "samplerate": e.get("samplerate", 1)} for e in events]


EDGES = [-1.28, -0.84, -0.52, -0.25, 0.0, 0.25, 0.52, 0.84, 1.28]
PROFILE = {"format": "wideevents.profile", "version": 2, "features": [
    {"name": "x", "kind": "numeric", "count": 100, "null_rate": 0.0, "min": -3.0, "max": 3.0,
     "edges": EDGES, "bin_fractions": [0.1] * 10},
    {"name": "c", "kind": "categorical", "count": 100, "null_rate": 0.0,
     "categories": ["a", "b"], "frequencies": [0.7, 0.3]}],
    "score": {"kind": "binary", "count": 100, "null_rate": 0.0, "bin_fractions": [0.1] * 10}}


def _events(seed: int = 1) -> list[dict[str, Any]]:
    """SDK-shaped prediction events (features with bins, scores) and feedback events that
    carry the prediction's fields and feedback.correct."""
    import numpy as np

    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    for i in range(400):
        x = rng.gauss(0.5 if i % 2 else 0.0, 1.0)
        p = rng.random()
        label = "yes" if p >= 0.5 else "no"
        pred = {"name": "predict", "prediction.id": f"p{i}", "samplerate": rng.choice([1, 3]),
                "slice.tenant": rng.choice(["t1", "t2"]), "data.null_count": 0,
                "feature.x": x, "feature_bin.x": int(np.searchsorted(EDGES, x, side="right")),
                "feature.c": rng.choice(["a", "b", "z"]), "prediction.p_positive": p,
                "prediction.score": p, "prediction.label": label, "score.bin": min(int(p * 10), 9),
                "model.version": rng.choice(["v1", "v2"])}
        out.append(pred)
        if i % 2:
            observed = "yes" if rng.random() < min(1.0, p * 1.3) else "no"
            fb = {k: pred[k] for k in ("prediction.id", "prediction.p_positive", "prediction.score",
                                       "prediction.label", "score.bin", "model.version")}
            out.append(fb | {"name": "feedback", "feedback.label": observed,
                             "feedback.correct": observed == label,
                             "samplerate": rng.choice([1, 2])})
    return out


@pytest.fixture
def setup(tmp_path: Path) -> Any:
    events = _events()
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    stored = _stored(events)
    fake = ComputingHoneycomb(lambda: stored)
    yield path, fake, HoneycombQueryClient(api_key=KEY, api_host=fake.url)
    fake.close()


def test_drift_in_honeycomb_equals_local(setup: Any) -> None:
    """PSI and JS per feature and group from Honeycomb equal the local drift over the same
    events, in one query (three features: under the calculation cap)."""
    path, fake, client = setup
    local = drift([path], profile=PROFILE, breakdown="slice.tenant", cache=False).to_dict()
    remote, queries = drift_honeycomb(client, "ds", profile=PROFILE, breakdown="slice.tenant")
    assert 1 == len(queries) == len(fake.queries)
    assert 604800 == fake.queries["q-0"]["time_range"]
    got = {g["group"]: {f["feature"]: (f["psi"], f["js"]) for f in g["features"]}
           for g in remote.to_dict()["groups"]}
    want = {g["group"]: {f["feature"]: (f["psi"], f["js"]) for f in g["features"]}
            for g in local["groups"]}
    assert sorted(want) == sorted(got)
    for group, features in want.items():
        assert sorted(features) == sorted(got[group])
        for name, value in features.items():
            assert value == pytest.approx(got[group][name], rel=1e-9), (group, name)


def test_calibration_in_honeycomb_equals_local(setup: Any) -> None:
    """ECE, accuracy, counts and the reliability table per version from one Honeycomb query
    equal the local calibration; the Brier score is null there (docs/analysis.md)."""
    path, fake, client = setup
    local = {g["group"]: g for g in calibration([path], breakdown="model.version",
                                                 cache=False).to_dict()["groups"]}
    result, queries = calibration_honeycomb(client, "ds", breakdown="model.version")
    remote = {g["group"]: g for g in result.to_dict()["groups"]}
    assert 1 == len(queries)
    assert "yes" == result.positive
    assert sorted(local) == sorted(remote)
    for version, want in local.items():
        got = remote[version]
        assert (want["kind"], want["count"]) == (got["kind"], got["count"])
        assert want["ece"] == pytest.approx(got["ece"], rel=1e-9)
        assert want["accuracy"] == pytest.approx(got["accuracy"], rel=1e-9)
        assert None is got["brier"]
        assert [(b["count"], b["mean_predicted"], b["observed_rate"]) for b in want["bins"]] == [
            (b["count"], pytest.approx(b["mean_predicted"]) if b["count"] else None,
             pytest.approx(b["observed_rate"]) if b["count"] else None) for b in got["bins"]]


def test_command_line_honeycomb_json_and_links(setup: Any, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """`drift --honeycomb DATASET --profile P --json --link` prints the Honeycomb result and
    the links of the queries it ran; the API key appears nowhere; without --profile it is a
    usage error (exit 2) saying what to add."""
    from wideevents._cli import main

    path, fake, client = setup
    profile = tmp_path / "profile.json"
    profile.write_text(json.dumps(PROFILE))
    monkeypatch.setenv("HONEYCOMB_API_KEY", KEY)
    monkeypatch.setenv("HONEYCOMB_API_HOST", fake.url)
    assert 0 == main(["drift", "--honeycomb", "ds", "--profile", str(profile), "--json",
                      "--link", "--team", "acme"])
    out, err = capsys.readouterr()
    doc = json.loads(out)
    want = drift_honeycomb(client, "ds", profile=PROFILE)[0].to_dict()
    assert want == {k: v for k, v in doc.items() if k != "links"}
    assert 1 == len(doc["links"]) and "ui.honeycomb.io/acme/datasets/ds?query=" in doc["links"][0]
    assert KEY not in out + err
    assert 0 == main(["calibration", "--honeycomb", "ds"])
    assert "ECE" in capsys.readouterr().out
    assert 2 == main(["drift", "--honeycomb", "ds", "--baseline", "model.version = v1"])
    assert "--profile" in capsys.readouterr().err
