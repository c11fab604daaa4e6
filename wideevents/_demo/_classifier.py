"""The core demo: a numpy intent classifier behind a simulated request loop.

Two model versions serve traffic (a canary gets 20%); the canary is miscalibrated on one
tenant. Feature fetches have a long tail and sometimes time out. Every inference is one
wide event, written to ``events.jsonl``; the summary at the end is computed from that file,
the same way you would slice it in Honeycomb.
"""

from __future__ import annotations

import math
import sys
import time
from collections import defaultdict
from typing import Any

import numpy as np
import orjson

import wideevents
from wideevents._core.terminal import escape
from wideevents.sinks import FileSink
from wideevents.sinks._stdout import _renderer, render_pretty

LABELS = ["billing", "cancel", "upgrade", "support", "other"]
FEATURES = [f"f{i}" for i in range(8)]
TENANTS = ["acme", "globex", "initech", "umbrella"]


class FeatureStoreTimeout(Exception):
    """The simulated feature store did not answer in time."""


def _model(rng: np.random.Generator) -> np.ndarray:
    return rng.normal(size=(len(FEATURES), len(LABELS)))


def run_demo(*, requests: int = 400, seed: int = 7, out: str = "events.jsonl",
             extra_sinks: list[str] | None = None, show: int = 3) -> int:
    rng = np.random.default_rng(seed)
    weights = {"2024-11-03": _model(rng), "2024-11-20-canary": _model(rng) * 3.0}
    sinks: list[Any] = [FileSink(out)]
    for spec in extra_sinks or []:
        from wideevents._config import sinks_from_spec

        sinks.extend(sinks_from_spec(spec))
    wideevents.configure(service_name="wideevents-demo", sinks=sinks)
    print(f"wideevents demo: serving {requests} simulated inferences -> {escape(out)}",
          file=sys.stderr)
    t0 = time.perf_counter()
    for i in range(requests):
        tenant = TENANTS[int(rng.integers(len(TENANTS)))]
        version = "2024-11-20-canary" if rng.random() < 0.2 else "2024-11-03"
        try:
            with wideevents.event("predict") as ev:
                ev.add({"request.id": f"req-{seed}-{i:05d}", "user.id": int(rng.integers(1, 500)),
                        "slice.tenant": tenant, "slice.region": "eu" if i % 3 else "us"})
                ev.model("intent-classifier", version, stage="canary" if "canary" in version
                         else "production")
                with ev.timer("feature_fetch"):
                    delay = float(rng.gamma(1.5, 0.6)) / 1000.0
                    time.sleep(delay)
                    if rng.random() < 0.03:
                        raise FeatureStoreTimeout("feature store timed out after 50 ms")
                x = rng.normal(size=len(FEATURES))
                if tenant == "initech":
                    x[3] = 0.0  # a silently missing feature for one tenant
                ev.features(dict(zip(FEATURES, x.tolist())))
                with ev.timer("inference"):
                    logits = x @ weights[version]
                ev.scores(logits, labels=LABELS, k=3, logits=True)
        except FeatureStoreTimeout:
            pass  # the event recorded the error; a real service would answer 503
    wideevents.shutdown(timeout=5.0)
    elapsed = time.perf_counter() - t0
    events = [orjson.loads(line) for line in open(out, "rb")][-requests:]
    _print_examples(events, show)
    _print_summary(events, elapsed, out)
    return 0


def _print_examples(events: list[dict[str, Any]], show: int) -> None:
    if show <= 0:
        return
    renderer = _renderer(colors=sys.stdout.isatty())
    picks = [e for e in events if not e.get("error")][: max(0, show - 1)]
    picks += [e for e in events if e.get("error")][:1]
    print(f"\n{len(picks)} of the events, as `wideevents tail` shows them:\n")
    for e in picks:
        print(render_pretty(e, renderer))


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def _print_summary(events: list[dict[str, Any]], elapsed: float, out: str) -> None:
    by_version: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        by_version[str(e.get("model.version", "(no model: failed before inference)"))].append(e)
    print(f"\n{len(events)} events in {elapsed:.2f} s, written to {escape(out)}\n")
    header = f"{'model.version':<38} {'COUNT':>6} {'errors':>6} {'P50(duration_ms)':>17} " \
             f"{'P99(duration_ms)':>17} {'AVG(score.top1)':>16}"
    print(header)
    print("-" * len(header))
    for version, evs in sorted(by_version.items()):
        durations = [float(e.get("duration_ms", 0.0)) for e in evs]
        errors = sum(1 for e in evs if e.get("error"))
        tops = [float(e["score.top1"]) for e in evs if isinstance(e.get("score.top1"), float)]
        avg = f"{sum(tops) / len(tops):.3f}" if tops else "-"
        print(f"{escape(version):<38} {len(evs):>6} {errors:>6} {_pct(durations, 50):>17.2f} "
              f"{_pct(durations, 99):>17.2f} {avg:>16}")
    print("\nEvery field of every event is queryable: try "
          f"`wideevents query {escape(out)} --calc COUNT --calc 'P99(duration_ms)' "
          "--breakdown model.version --breakdown slice.tenant`")
