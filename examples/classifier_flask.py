"""A Flask service serving a numpy classifier, one wide event per request.

    pip install -e '.[dev]'            # flask + a WSGI server
    WIDEEVENTS_SINK=file:events.jsonl flask --app examples.classifier_flask run --port 5000
    curl -X POST localhost:5000/predict -H 'content-type: application/json' \\
         -d '{"features": {"age": 41, "income": 52000, "tenure_months": 7, "plan": "pro"}}'

Every request's event carries the HTTP fields (from the middleware), the model identity, the
features checked against a reference profile (`data.*`, `feature_bin.*`) and the score shape
(`prediction.*`, `score.*`); the response returns the `prediction_id` so that feedback can be
joined later with `wideevents.feedback()`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from flask import Flask, jsonify, request

import wideevents
from wideevents.integrations.wsgi import WideEventsWSGIMiddleware
from wideevents.ml import Profile

NUMERIC = ["age", "income", "tenure_months"]
PLANS = ["free", "pro", "team"]
LABELS = ["stay", "downgrade", "churn"]
MODEL_VERSION = "2024-11-03"

_rng = np.random.default_rng(0)
_train = np.column_stack([_rng.integers(18, 80, 2000), _rng.lognormal(10.8, 0.4, 2000),
                          _rng.integers(0, 120, 2000)]).astype(float)
PROFILE = Profile.fit(_train, NUMERIC)
_MEAN, _STD = _train.mean(axis=0), _train.std(axis=0)
WEIGHTS = _rng.normal(size=(len(NUMERIC) + len(PLANS), len(LABELS)))


def predict_proba(features: dict[str, Any]) -> np.ndarray:
    x = (np.array([float(features[n]) for n in NUMERIC]) - _MEAN) / _STD
    plan = np.array([1.0 if features.get("plan") == p else 0.0 for p in PLANS])
    logits = np.concatenate([x, plan]) @ WEIGHTS
    e = np.exp(logits - logits.max())
    return e / e.sum()


app = Flask(__name__)


@app.post("/predict")
def predict() -> Any:
    ev = wideevents.current_event()
    features = (request.get_json(silent=True) or {}).get("features", {})
    ev.model("churn-classifier", MODEL_VERSION, stage="production")
    ev.features({n: features.get(n) for n in NUMERIC}, profile=PROFILE)
    ev.add({"feature.plan": str(features.get("plan"))})
    try:
        with ev.timer("inference"):
            probs = predict_proba(features)
    except (KeyError, TypeError, ValueError) as exc:
        ev.add({"error": True, "error.type": "InvalidFeatures", "error.message": str(exc)})
        return jsonify({"error": "invalid features", "prediction_id": ev.prediction_id}), 422
    ev.scores(probs, labels=LABELS, k=3)
    return jsonify({"label": LABELS[int(probs.argmax())], "probabilities": probs.round(4).tolist(),
                    "prediction_id": ev.prediction_id})


@app.get("/health")
def health() -> Any:
    return {"status": "ok"}


app.wsgi_app = WideEventsWSGIMiddleware(app.wsgi_app, exclude_paths=["/health"],  # type: ignore[method-assign]
                                        prediction_id_header="X-Prediction-ID")
