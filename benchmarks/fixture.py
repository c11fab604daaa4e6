"""The shared benchmark event: a 63-field ML inference event built from numpy inputs.

12 request-context fields, model name and version, 32 features, the top-5 of a
1,000-class softmax with labels, the predicted label and score, and 5 stage timings.
Every contender (wideevents, libhoney, OpenTelemetry, structlog, json...) builds the same
dict with :func:`build_event`; "build the dict only" is the baseline they are measured
against.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

N_FEATURES = 32
N_CLASSES = 1_000
TOP_K = 5
FEATURE_KEYS = [f"feature.f{i:02d}" for i in range(N_FEATURES)]
LABELS = [f"class_{i:04d}" for i in range(N_CLASSES)]
TIMING_KEYS = [f"timing.{s}_ms" for s in ("parse", "feature_fetch", "inference", "postprocess",
                                            "serialize")]
TOP_KEYS = [(f"score.top{i + 1}", f"score.top{i + 1}.label") for i in range(TOP_K)]
REGIONS = ["us-east-1", "us-west-2", "eu-west-1", "ap-south-1"]
TENANTS = [f"tenant-{i:03d}" for i in range(50)]


@dataclass
class Inputs:
    features: np.ndarray  # (n, 32) float64
    probs: np.ndarray  # (n, 1000) softmax rows
    timings: np.ndarray  # (n, 5) ms
    user_ids: np.ndarray  # (n,) int64


def make_inputs(n: int, seed: int = 0) -> Inputs:
    """Pre-generate everything random so that building an event costs only dict work."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, N_CLASSES)) * 3.0
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)
    return Inputs(
        features=rng.normal(size=(n, N_FEATURES)),
        probs=probs,
        timings=rng.gamma(2.0, 3.0, size=(n, 5)),
        user_ids=rng.integers(1, 10_000_000, size=n),
    )


def build_event(inputs: Inputs, i: int) -> dict[str, Any]:
    """The 63 fields of inference ``i`` (plain Python values, as serving code produces)."""
    p = inputs.probs[i]
    top = np.argpartition(p, -TOP_K)[-TOP_K:]
    top = top[np.argsort(p[top])[::-1]].tolist()
    scores = p[top].tolist()
    uid = int(inputs.user_ids[i])
    ev: dict[str, Any] = {
        "request.id": f"req-{i:08d}",
        "user.id": uid,
        "slice.tenant": TENANTS[uid % 50],
        "slice.region": REGIONS[uid % 4],
        "http.request.method": "POST",
        "http.route": "/v1/predict",
        "url.path": "/v1/predict",
        "http.response.status_code": 200,
        "client.address": "10.1.2.3",
        "user_agent.original": "python-httpx/0.28.1",
        "http.request.body.size": 1843,
        "http.response.body.size": 312,
        "model.name": "intent-classifier",
        "model.version": "2024-11-03",
    }
    ev.update(zip(FEATURE_KEYS, inputs.features[i].tolist()))
    for (score_key, label_key), cls, score in zip(TOP_KEYS, top, scores):
        ev[score_key] = score
        ev[label_key] = LABELS[cls]
    ev["prediction.label"] = LABELS[top[0]]
    ev["prediction.score"] = scores[0]
    ev.update(zip(TIMING_KEYS, inputs.timings[i].tolist()))
    return ev


assert len(build_event(make_inputs(1), 0)) == 63
