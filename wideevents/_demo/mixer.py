"""The search mixer: the service whose misbehaviour wide events make visible.

Each ``/search`` request fans out concurrently to three simulated search backends, merges
and de-duplicates their candidates, computes features checked against a reference
:class:`~wideevents.ml.Profile`, re-ranks with a numpy model (a champion, a canary for a
share of users, and a shadow scored in the dark on every request) and returns the top 10
with the ``prediction.id``. One wide event per request carries all of it.

Three incidents can be switched on, each invisible in averaged metrics:

- ``slow_vector_region``: the vector backend slows down (and times out) for one region;
- ``zero_feature_tenant``: the click-through prior silently becomes 0 for one tenant;
- ``canary_nonfinite``: the canary model emits non-finite scores on long queries.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import wideevents
from wideevents.ml import Profile

CORPUS = 5_000
TENANTS = ["acme", "globex", "initech", "umbrella"]
REGIONS = ["us-east-1", "eu-west-1", "ap-south-1"]
FEATURES = ["query_len", "candidates", "lexical_score_mean", "vector_score_mean",
            "kg_score_mean", "recency_days_mean", "ctr_prior_mean"]
CHAMPION, CANARY, SHADOW = "2024-11-03", "2024-11-20", "2024-12-01"
MODEL = "mixer-ranker"


@dataclass(frozen=True)
class Backend:
    name: str
    mean_ms: float
    shape: float
    error_rate: float
    candidates: int
    timeout_ms: float = 80.0


BACKENDS = (
    Backend("lexical", mean_ms=10.0, shape=3.0, error_rate=0.01, candidates=30),
    Backend("vector", mean_ms=22.0, shape=4.0, error_rate=0.005, candidates=40),
    Backend("knowledge_graph", mean_ms=15.0, shape=1.5, error_rate=0.03, candidates=15),
)


@dataclass
class Incidents:
    slow_vector_region: str | None = "ap-south-1"
    zero_feature_tenant: str | None = "globex"
    canary_nonfinite: bool = True


@dataclass
class Corpus:
    recency_days: np.ndarray
    ctr_prior: np.ndarray

    @classmethod
    def make(cls, rng: np.random.Generator) -> Corpus:
        return cls(recency_days=rng.uniform(0, 365, CORPUS), ctr_prior=rng.beta(2.0, 30.0, CORPUS))


@dataclass
class Models:
    """Linear re-rankers over the candidate feature matrix (5 columns)."""

    weights: dict[str, np.ndarray] = field(default_factory=dict)

    @classmethod
    def make(cls) -> Models:
        return cls({
            CHAMPION: np.array([0.9, 1.1, 0.6, -0.004, 6.0]),
            CANARY: np.array([0.8, 1.3, 0.5, -0.003, 7.0]),
            SHADOW: np.array([1.0, 0.9, 0.9, -0.006, 5.0]),
        })

    def score(self, version: str, matrix: np.ndarray, query_len: int, buggy: bool) -> np.ndarray:
        scores: np.ndarray = np.asarray(matrix @ self.weights[version])
        if version == CANARY and buggy:
            # The canary's new length normalisation: log(34 - len) is NaN/-inf past 33 chars.
            with np.errstate(invalid="ignore", divide="ignore"):
                scores = scores + 0.01 * np.log(np.float64(34 - query_len))
        return scores


class Mixer:
    """The service state: corpus, models, profile and the incident switches."""

    def __init__(self, seed: int = 7, incidents: Incidents | None = None) -> None:
        self.rng = random.Random(seed)
        nprng = np.random.default_rng(seed)
        self.corpus = Corpus.make(nprng)
        self.models = Models.make()
        self.incidents = incidents or Incidents()
        self.profile = Profile.fit(self._training_features(nprng, 3_000), FEATURES)

    def _training_features(self, nprng: np.random.Generator, n: int) -> np.ndarray:
        """Request-level features as the model saw them in training (no incident)."""
        rows = []
        for _ in range(n):
            ids = nprng.integers(0, CORPUS, size=70)
            # A backend that failed contributes no candidates: its mean score is 0.
            means = [0.0 if nprng.random() < 2 * b.error_rate + 0.01 else float(nprng.beta(5, 2))
                     for b in BACKENDS]
            rows.append([
                float(nprng.integers(5, 41)), float(nprng.integers(40, 86)), *means,
                float(self.corpus.recency_days[ids].mean()),
                float(self.corpus.ctr_prior[ids].mean()),
            ])
        return np.array(rows)

    async def _call_backend(self, backend: Backend, region: str) -> tuple[str, list[tuple[int, float]], float]:
        rng = self.rng
        latency = rng.gammavariate(backend.shape, backend.mean_ms / backend.shape)
        if backend.name == "vector" and region == self.incidents.slow_vector_region:
            latency *= 6.0
        wait = min(latency, backend.timeout_ms)
        await asyncio.sleep(wait / 1000.0)
        if latency > backend.timeout_ms:
            return "timeout", [], wait
        if rng.random() < backend.error_rate:
            return "error", [], wait
        hits = [(rng.randrange(CORPUS), rng.betavariate(5, 2)) for _ in range(backend.candidates)]
        return "ok", hits, wait

    async def search(self, q: str, tenant: str, region: str, user: int) -> dict[str, Any]:
        ev = wideevents.current_event()
        ev.add({"slice.tenant": tenant, "slice.region": region, "user.id": user,
                "search.query": q[:64]})
        with ev.timer("retrieval"):
            replies = await asyncio.gather(*(self._call_backend(b, region) for b in BACKENDS))
        merged: dict[int, dict[str, float]] = {}
        for backend, (status, hits, ms) in zip(BACKENDS, replies):
            ev.retrieval(backend.name, candidates=len(hits), status=status, duration_ms=ms)
            for doc, score in hits:
                merged.setdefault(doc, {})[backend.name] = score
        ids = list(merged)
        with ev.timer("features"):
            matrix = np.array([[merged[d].get("lexical", 0.0), merged[d].get("vector", 0.0),
                                merged[d].get("knowledge_graph", 0.0),
                                self.corpus.recency_days[d], self.corpus.ctr_prior[d]]
                               for d in ids]).reshape(-1, 5)
            if tenant == self.incidents.zero_feature_tenant:
                matrix[:, 4] = 0.0  # the feature pipeline silently lost the CTR join
            present = [matrix[matrix[:, j] > 0, j] for j in range(3)]
            features = [len(q), len(ids)] + [float(p.mean()) if p.size else 0.0 for p in present] \
                + [float(matrix[:, 3].mean()) if ids else 0.0,
                   float(matrix[:, 4].mean()) if ids else 0.0]
        ev.features(features, names=FEATURES, profile=self.profile)
        version = CANARY if user % 5 == 0 else CHAMPION
        ev.model(MODEL, version, stage="canary" if version == CANARY else "production")
        buggy = self.incidents.canary_nonfinite
        with ev.timer("rerank"):
            scores = self.models.score(version, matrix, len(q), buggy)
        ev.add({"ranking.nonfinite_count": int(np.size(scores) - np.isfinite(scores).sum())})
        ev.ranking(ids, scores, k=10)
        t0 = time.perf_counter()
        shadow = self.models.score(SHADOW, matrix, len(q), buggy)
        ev.shadow(SHADOW, ids=ids, scores=shadow, k=10,
                  duration_ms=(time.perf_counter() - t0) * 1000.0)
        order: list[int] = (np.argsort(-np.nan_to_num(scores, nan=-np.inf))[:10].tolist()
                            if ids else [])
        return {"results": [f"doc-{ids[i]}" for i in order], "prediction_id": ev.prediction_id,
                "model_version": version}


def create_app(mixer: Mixer) -> Any:
    """The FastAPI app, wrapped in WideEventsMiddleware: one event per request."""
    from fastapi import FastAPI, Query

    from wideevents.integrations.asgi import WideEventsMiddleware

    app = FastAPI(title="search mixer (wideevents demo)")

    @app.get("/search")
    async def search(q: str = Query(...), tenant: str = "acme", region: str = "us-east-1",
                     user: int = 0) -> dict[str, Any]:
        return await mixer.search(q, tenant, region, user)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return WideEventsMiddleware(app, exclude_paths=["/health"],
                                prediction_id_header="X-Prediction-ID")
