"""The search mixer: the service whose misbehaviour wide events make visible.

Each ``/search`` request fans out concurrently to three search backends (real HTTP services
on loopback, :mod:`wideevents._demo.backends`, called with one shared ``httpx.AsyncClient``
whose calls the client instrumentation records as ``http.client.<backend>.*``), merges
and de-duplicates their candidates, computes features checked against a reference
:class:`~wideevents.ml.Profile`, re-ranks with a numpy model (a champion, a canary for a
share of users, and a shadow scored in the dark on every request) and returns the top 10
with the ``prediction.id``. One wide event per request carries all of it.

Four incidents can be switched on, each invisible in averaged metrics:

- ``slow_vector_region``: the vector backend slows down (and times out) for one region;
- ``zero_feature_tenant``: the click-through prior silently becomes 0 for one tenant;
- ``canary_nonfinite``: the canary model emits non-finite scores on long queries;
- ``canary_overconfident``: the canary's click probability (``ev.scores``) is
  over-confident: only the clicks that come back as feedback reveal it (calibration).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import wideevents
from wideevents.ml import Profile

from .backends import BACKENDS, CORPUS, Backend, BackendServers

__all__ = ["BACKENDS", "CANARY", "CHAMPION", "CORPUS", "FEATURES", "REGIONS", "SHADOW",
           "TENANTS", "WORDS", "Backend", "Incidents", "Mixer", "click_probability",
           "create_app"]

TENANTS = ["acme", "globex", "initech", "umbrella"]
REGIONS = ["us-east-1", "eu-west-1", "ap-south-1"]
FEATURES = ["query_len", "candidates", "lexical_score_mean", "vector_score_mean",
            "kg_score_mean", "recency_days_mean", "ctr_prior_mean"]
CHAMPION, CANARY, SHADOW = "2024-11-03", "2024-11-20", "2024-12-01"
WORDS = ("running shoes red wireless headphones cheap flights lisbon vegan recipes quick "
         "python tutorial async gpu prices used cars electric bikes winter jacket kids "
         "garden tools best coffee grinder noise cancelling laptop stand").split()
MODEL = "mixer-ranker"


@dataclass
class Incidents:
    slow_vector_region: str | None = "ap-south-1"
    zero_feature_tenant: str | None = "globex"
    canary_nonfinite: bool = True
    canary_overconfident: bool = True


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
        self.seed = seed
        self.backend_urls: dict[str, str] = {}
        self._client: Any = None  # the shared httpx.AsyncClient, open while the app runs
        nprng = np.random.default_rng(seed)
        self.corpus = Corpus.make(nprng)
        self.models = Models.make()
        self.incidents = incidents or Incidents()
        self.profile = Profile.fit(self._training_features(nprng, 3_000), FEATURES)

    def bind_backends(self, urls: dict[str, str]) -> None:
        """Where each backend listens: name -> base URL (:class:`.backends.BackendServers`)."""
        self.backend_urls = dict(urls)

    @contextlib.asynccontextmanager
    async def backend_client(self) -> AsyncIterator[None]:
        """One ``httpx.AsyncClient`` shared by every backend call, for the app's lifetime
        (its event loop), closed at shutdown. Each backend gets a connection pool of its own
        (a transport mounted on its URL): httpcore scans every pooled connection for each
        request it schedules, so one pool of (concurrency x backends) connections costs
        several times the CPU of three small ones, and CPU here is latency the event shows."""
        import httpx

        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        mounts = {url: httpx.AsyncHTTPTransport(limits=limits)
                  for url in self.backend_urls.values()}
        async with httpx.AsyncClient(mounts=mounts, limits=limits) as client:
            self._client = client
            try:
                yield
            finally:
                self._client = None

    def _training_features(self, nprng: np.random.Generator, n: int) -> np.ndarray:
        """Request-level features as the model saw them in training (no incident): the same
        fan-out, merge and means as :meth:`search`, so that only an incident drifts."""
        rows = []
        for _ in range(n):
            words = [WORDS[int(i)] for i in nprng.integers(0, len(WORDS), nprng.integers(1, 7))]
            ids, means = [], []
            for b in BACKENDS:
                if nprng.random() < b.error_rate:
                    means.append(0.0)  # a backend that failed contributes no candidates
                    continue
                ids.append(nprng.integers(0, CORPUS, size=b.candidates))
                means.append(float(nprng.beta(5, 2, b.candidates).mean()))
            docs = np.unique(np.concatenate(ids)) if ids else np.array([], dtype=int)
            rows.append([
                float(len(" ".join(words)[:40])), float(docs.size), *means,
                float(self.corpus.recency_days[docs].mean()) if docs.size else 0.0,
                float(self.corpus.ctr_prior[docs].mean()) if docs.size else 0.0,
            ])
        return np.array(rows)

    async def _call_backend(self, backend: Backend, q: str, region: str, key: str
                            ) -> tuple[str, list[tuple[int, float]], float]:
        """GET the backend's ``/search``: (status ``ok``/``error``/``timeout``, hits, ms)."""
        import httpx

        client, url = self._client, self.backend_urls.get(backend.name)
        if client is None or url is None:
            return "error", [], 0.0  # no backends bound (see bind_backends)
        t0 = time.perf_counter()
        try:
            r = await client.get(f"{url}/search", params={"q": q, "region": region, "key": key},
                                 timeout=backend.timeout_ms / 1000.0)
            if r.status_code != 200:
                return "error", [], (time.perf_counter() - t0) * 1000.0
            hits = [(int(doc), float(score)) for doc, score in r.json()["hits"]]
            return "ok", hits, (time.perf_counter() - t0) * 1000.0
        except httpx.TimeoutException:
            return "timeout", [], (time.perf_counter() - t0) * 1000.0
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return "error", [], (time.perf_counter() - t0) * 1000.0

    async def search(self, q: str, tenant: str, region: str, user: int) -> dict[str, Any]:
        ev = wideevents.current_event()
        ev.add({"slice.tenant": tenant, "slice.region": region, "user.id": user,
                "search.query": q[:64]})
        with ev.timer("retrieval"):
            key = f"{q}|{tenant}|{region}|{user}"  # the backends' draws: this request's own
            replies = await asyncio.gather(*(self._call_backend(b, q, region, key)
                                             for b in BACKENDS))
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
        # P(click) as users behave: from the champion's best score on these candidates. The
        # champion serves it as is; the canary's new calibration layer sharpens it.
        p_click = click_probability(self.models.score(CHAMPION, matrix, len(q), False))
        served = p_click
        if version == CANARY and self.incidents.canary_overconfident:
            served = float(1.0 / (1.0 + np.exp(-3.0 * np.log(p_click / (1.0 - p_click)))))
        ev.scores([served], labels=["skip", "click"])
        order: list[int] = (np.argsort(-np.nan_to_num(scores, nan=-np.inf))[:10].tolist()
                            if ids else [])
        return {"results": [f"doc-{ids[i]}" for i in order], "prediction_id": ev.prediction_id,
                "model_version": version, "p_click": p_click}


def click_probability(scores: np.ndarray) -> float:
    """The chance that a user clicks a result list whose best score is ``max(scores)``."""
    finite = scores[np.isfinite(scores)]
    top = float(finite.max()) if finite.size else 0.0
    return float(np.clip(1.0 / (1.0 + np.exp(-3.0 * (top - 1.4))), 0.01, 0.99))


def create_app(mixer: Mixer) -> Any:
    """The FastAPI app, wrapped in WideEventsMiddleware: one event per request. Its lifespan
    opens the backend client (serve it with lifespan events on); when no backends were bound
    (:meth:`Mixer.bind_backends`) it also starts them (:class:`.backends.BackendServers`)
    and instruments the HTTP clients with their peer names, until shutdown."""
    from fastapi import FastAPI, Query

    from wideevents.integrations.asgi import WideEventsMiddleware

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if mixer.backend_urls:  # bound by the caller (wideevents demo)
            async with mixer.backend_client():
                yield
            return
        # Served on its own (examples/mixer/app.py): start the backends for its lifetime.
        from wideevents.integrations import clients

        was_instrumented = bool(clients.instrumented())
        with BackendServers(mixer.seed, mixer.incidents.slow_vector_region) as servers:
            clients.instrument(peer_names=servers.peer_names)
            mixer.bind_backends(servers.urls)
            try:
                async with mixer.backend_client():
                    yield
            finally:
                mixer.bind_backends({})
                if not was_instrumented:
                    clients.uninstrument()

    app = FastAPI(title="search mixer (wideevents demo)", lifespan=lifespan)

    @app.get("/search")
    async def search(q: str = Query(...), tenant: str = "acme", region: str = "us-east-1",
                     user: int = 0) -> dict[str, Any]:
        return await mixer.search(q, tenant, region, user)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return WideEventsMiddleware(app, exclude_paths=["/health"],
                                prediction_id_header="X-Prediction-ID")
