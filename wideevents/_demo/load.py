"""The demo's traffic: a load generator against the real server, and a click simulator."""

from __future__ import annotations

import asyncio
import random
import sys
import time
from dataclasses import dataclass
from typing import Any

import wideevents

from .mixer import REGIONS, TENANTS, WORDS


@dataclass
class LoadResult:
    requests: int
    ok: int
    failed: int
    seconds: float
    predictions: list[tuple[str, str, float]]  # (prediction_id, model_version, P(click))


def _query(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(1, 6))]
    return " ".join(words)[:40]


def _bar(done: int, total: int, width: int = 30) -> str:
    filled = int(width * done / max(total, 1))
    return f"\r  load [{'#' * filled}{'.' * (width - filled)}] {done}/{total}"


async def _drive(base_url: str, requests: int, seed: int, concurrency: int,
                 progress: bool) -> LoadResult:
    import httpx

    rng = random.Random(seed)
    plan = [
        {"q": _query(rng), "tenant": rng.choices(TENANTS, weights=(4, 3, 2, 1))[0],
         "region": rng.choices(REGIONS, weights=(4, 3, 3))[0], "user": rng.randint(1, 5_000)}
        for _ in range(requests)
    ]
    sem = asyncio.Semaphore(concurrency)
    done = ok = failed = 0
    # In the plan's order, not the order replies arrive in: the clicks simulated from them
    # (a seeded RNG walking this list) must not depend on the machine's scheduling.
    answered: list[tuple[str, str, float] | None] = [None] * len(plan)
    t0 = time.perf_counter()
    async with httpx.AsyncClient(base_url=base_url, timeout=10.0) as client:

        async def one(i: int, params: dict[str, Any]) -> None:
            nonlocal done, ok, failed
            async with sem:
                try:
                    r = await client.get("/search", params=params)
                    if r.status_code == 200:
                        body = r.json()
                        answered[i] = (body["prediction_id"], body["model_version"],
                                       float(body.get("p_click", 0.5)))
                        ok += 1
                    else:
                        failed += 1
                except httpx.HTTPError:
                    failed += 1
            done += 1
            if progress and (done % 25 == 0 or done == requests):
                print(_bar(done, requests), end="", file=sys.stderr, flush=True)

        await asyncio.gather(*(one(i, p) for i, p in enumerate(plan)))
    if progress:
        print(file=sys.stderr)
    predictions = [p for p in answered if p is not None]
    return LoadResult(requests, ok, failed, time.perf_counter() - t0, predictions)


def _on_a_terminal(stream: object) -> bool:
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except Exception:  # noqa: BLE001 - None, closed or odd streams are not terminals
        return False


def run_load(base_url: str, requests: int, seed: int, *, concurrency: int = 16,
             progress: bool | None = None) -> LoadResult:
    """Send the traffic; the progress bar is drawn only when stderr is a terminal (unless
    ``progress`` says otherwise): redrawn with carriage returns, it would garble a log."""
    if progress is None:
        progress = _on_a_terminal(sys.stderr)
    return asyncio.run(_drive(base_url, requests, seed, concurrency, progress))


def simulate_clicks(predictions: list[tuple[str, str, float]], seed: int, *, share: float = 0.5,
                    late_share: float = 0.15) -> int:
    """Send feedback for a share of predictions; some arrive hours later (simulated clock).
    The user clicks with the true P(click) of the results (``mixer.click_probability``), so
    the label (``click`` / ``skip``) calibrates the probability each version served."""
    rng = random.Random(seed + 1)
    now = time.time()
    sent = 0
    for prediction_id, _version, p_click in predictions:
        if rng.random() >= share:
            continue
        late = rng.random() < late_share
        delay_s = rng.uniform(3_600, 6 * 3_600) if late else rng.uniform(1.0, 60.0)
        clicked = rng.random() < p_click
        wideevents.feedback(prediction_id, label="click" if clicked else "skip",
                            reward=1.0 if clicked else 0.0, timestamp=now + delay_s,
                            position=rng.randint(1, 10))
        sent += 1
    return sent
