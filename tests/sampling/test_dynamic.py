"""DynamicSampler: unbiased weighted counts, rare keys whole, bursts, bounded memory."""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections import Counter
from typing import Any

import pytest

from tests.support.sampling import FakeClock, keyed_traffic
from wideevents._errors import ConfigurationError
from wideevents.sampling import OVERFLOW_KEY, DynamicSampler

KEY_FIELDS = ["name", "http.response.status_code"]
HOT = [("GET /predict", 200), ("GET /search", 200), ("POST /feedback", 200)]
RARE = [("GET /predict", 500), ("GET /search", 503), ("POST /feedback", 422)]
MIX = [
    (HOT[0], 0.60),
    (HOT[1], 0.30),
    (HOT[2], 0.09),
    (RARE[0], 0.003),
    (RARE[1], 0.0008),
    (RARE[2], 0.0002),
]
EVENTS_PER_SEC = 1000
INTERVAL = 10.0


def label(key: tuple[str, int]) -> str:
    return f"{key[0]}•{key[1]}"


def drive(
    sampler: DynamicSampler,
    events: Any,
    clock: FakeClock,
    *,
    per_sec: float = EVENTS_PER_SEC,
    interval: float = INTERVAL,
) -> list[tuple[tuple[str, int], int]]:
    """Feed events at ``per_sec`` on the fake clock, recomputing every ``interval``."""
    out = []
    next_update = clock.now + interval
    for event in events:
        clock.advance(1.0 / per_sec)
        if clock.now >= next_update:
            sampler.update_rates()
            next_update += interval
        out.append(((event["name"], event["http.response.status_code"]), sampler(event)))
    return out


@pytest.fixture(scope="module")
def steady_run() -> tuple[DynamicSampler, list[tuple[tuple[str, int], int]]]:
    clock = FakeClock()
    sampler = DynamicSampler(
        10, KEY_FIELDS, adjustment_interval=INTERVAL, clock=clock, seed=42, background=False
    )
    results = drive(sampler, keyed_traffic(MIX, 300_000, seed=7), clock)
    return sampler, results


def test_weighted_count_within_5_percent(steady_run: Any) -> None:
    """Over 300,000 events the sum of sample rates is within 5% of the true count,
    overall and for every hot key."""
    _, results = steady_run
    true = Counter(k for k, _ in results)
    weighted: Counter[tuple[str, int]] = Counter()
    for key, rate in results:
        weighted[key] += rate
    assert len(results) == pytest.approx(sum(weighted.values()), rel=0.05)
    for key in HOT:
        assert true[key] == pytest.approx(weighted[key], rel=0.05), key


def test_hot_keys_are_sampled_to_the_goal(steady_run: Any) -> None:
    """Hot keys are thinned (rate > 1) and the kept volume is near total / goal_rate."""
    sampler, results = steady_run
    kept = sum(1 for _, rate in results if rate)
    rates = sampler.rates()
    assert [True, True, True] == [rates.get(label(k), 1) > 1 for k in HOT]
    assert len(results) / 10 == pytest.approx(kept, rel=0.35)


def test_rare_keys_keep_rate_one(steady_run: Any) -> None:
    """Every event of a rare key is kept, at rate 1."""
    _, results = steady_run
    rare = [rate for key, rate in results if key in RARE]
    assert (True, [1] * len(rare)) == (len(rare) > 500, rare)


def test_stats_match_the_decisions(steady_run: Any) -> None:
    """stats() kept/dropped, overall and per key, equal the caller's own tally."""
    sampler, results = steady_run
    stats = sampler.stats()
    kept = Counter(k for k, r in results if r)
    dropped = Counter(k for k, r in results if not r)
    expected = {label(k): (kept[k], dropped[k]) for k in HOT + RARE}
    got = {
        label(k): (stats["keys"][label(k)]["kept"], stats["keys"][label(k)]["dropped"])
        for k in HOT + RARE
    }
    assert expected == got
    assert (sum(kept.values()), sum(dropped.values())) == (stats["kept"], stats["dropped"])
    json.dumps(stats)  # stats() must be JSON-ready for wideevents.stats()


def test_new_key_mid_stream_is_kept_whole() -> None:
    """A model version that appears late (a canary) is kept at rate 1 from its first event."""
    clock = FakeClock()
    sampler = DynamicSampler(
        20, ["model.version"], adjustment_interval=INTERVAL, clock=clock, seed=3, background=False
    )
    events: list[dict[str, Any]] = [{"model.version": "v1"} for _ in range(60_000)]
    for i in range(30_000, 60_000, 200):
        events[i] = {"model.version": "v2-canary"}
    canary: list[int] = []
    next_update = clock.now + INTERVAL
    for event in events:
        clock.advance(0.001)
        if clock.now >= next_update:
            sampler.update_rates()
            next_update += INTERVAL
        rate = sampler(event)
        if event["model.version"] == "v2-canary":
            canary.append(rate)
    assert ([1] * 150, True) == (canary, sampler.rates()["v1"] > 1)


def test_no_sampling_below_min_events_per_sec() -> None:
    """Below min_events_per_sec overall, every event is kept at rate 1."""
    clock = FakeClock()
    sampler = DynamicSampler(
        10,
        KEY_FIELDS,
        adjustment_interval=INTERVAL,
        min_events_per_sec=50,
        clock=clock,
        seed=1,
        background=False,
    )
    results = drive(sampler, keyed_traffic(MIX, 5_000, seed=2), clock, per_sec=20)
    stats = sampler.stats()
    assert ([1] * 5000, False, True) == (
        [r for _, r in results],
        stats["sampling"],
        stats["updates"] >= 20,
    )


def test_burst_triggers_an_early_update() -> None:
    """A sudden flood of a new key is sampled before the interval ends (burst detection)."""
    clock = FakeClock()
    sampler = DynamicSampler(
        10, KEY_FIELDS, adjustment_interval=INTERVAL, clock=clock, seed=5, background=False
    )
    drive(sampler, keyed_traffic(MIX, 50_000, seed=4), clock)  # 50 s of steady traffic
    updates_before = sampler.stats()["updates"]
    flood = [{"name": "POST /bulk", "http.response.status_code": 200} for _ in range(40_000)]
    rates = []
    for event in flood:  # 40,000 events in 2 s: no update_rates() call
        clock.advance(0.00005)
        rates.append(sampler(event))
    stats = sampler.stats()
    late = rates[-10_000:]
    assert (True, True) == (stats["bursts"] >= 1, stats["updates"] > updates_before)
    assert sum(1 for r in late if r) < 2_000  # thinned, not all 10,000 kept
    assert 40_000 == pytest.approx(sum(rates), rel=0.05)


def test_memory_bounded_by_max_keys() -> None:
    """Past max_keys distinct keys, events share one overflow bucket, counted exactly."""
    clock = FakeClock()
    sampler = DynamicSampler(
        5,
        ["user.id"],
        max_keys=50,
        adjustment_interval=INTERVAL,
        clock=clock,
        seed=9,
        burst_multiple=1e9,
        background=False,
    )
    users = [(i * 7919) % 3000 for i in range(20_000)]
    first_50: list[int] = []
    for u in users:
        if u not in first_50 and len(first_50) < 50:
            first_50.append(u)
    expected_overflow = sum(1 for u in users if u not in first_50)
    for u in users:
        sampler({"user.id": u})
    stats = sampler.stats()
    assert (expected_overflow, True) == (stats["overflow"], OVERFLOW_KEY in stats["keys"])
    assert len(stats["keys"]) <= 51
    for round_ in range(10):  # churn: a new population of users every interval
        clock.advance(INTERVAL)
        sampler.update_rates()
        for i in range(5000):
            sampler({"user.id": f"r{round_}-{i}"})
        assert len(sampler.stats()["keys"]) <= 51
        assert len(sampler.rates()) <= 51


def test_weighted_count_with_overflow_and_churn() -> None:
    """With far more keys than max_keys the weighted count still estimates the truth."""
    clock = FakeClock()
    sampler = DynamicSampler(
        10,
        ["user.id"],
        max_keys=20,
        adjustment_interval=1.0,
        clock=clock,
        seed=13,
        background=False,
    )
    total = 0
    next_update = clock.now + 1.0
    for i in range(120_000):
        clock.advance(0.0001)
        if clock.now >= next_update:
            sampler.update_rates()
            next_update += 1.0
        total += sampler({"user.id": (i * 2654435761) % 10_000})
    assert 120_000 == pytest.approx(total, rel=0.05)


def test_same_seed_same_decisions() -> None:
    """Two samplers with the same seed and clock make the same decisions."""

    def run() -> list[int]:
        clock = FakeClock()
        sampler = DynamicSampler(
            10, KEY_FIELDS, adjustment_interval=INTERVAL, clock=clock, seed=77, background=False
        )
        return [r for _, r in drive(sampler, keyed_traffic(MIX, 30_000, seed=1), clock)]

    first, second = run(), run()
    assert (first, True) == (second, 0 in first)


def test_rates_follow_log10_allocation() -> None:
    """With two steady keys the rates match an independent log10 budget split."""
    clock = FakeClock()
    sampler = DynamicSampler(
        10,
        ["k"],
        adjustment_interval=1.0,
        weight=1.0,
        min_events_per_sec=0,
        burst_multiple=1e9,
        clock=clock,
        seed=0,
        background=False,
    )
    for _ in range(9000):
        sampler({"k": "big"})
    for _ in range(1000):
        sampler({"k": "small"})
    clock.advance(1.0)
    sampler.update_rates()
    # Budget 10,000 / 10 = 1,000 kept per interval, split by log10(count), rarest first:
    budget = 1000.0
    small_share = budget * math.log10(1000) / (math.log10(1000) + math.log10(9000))
    small_rate = math.ceil(1000 / small_share)
    big_share = budget - 1000 / small_rate
    big_rate = math.ceil(9000 / big_share)
    assert {"big": big_rate, "small": small_rate} == sampler.rates()


def test_unhashable_and_missing_key_values() -> None:
    """List values and missing fields form keys without raising."""
    sampler = DynamicSampler(10, KEY_FIELDS, seed=1, background=False)
    results = [sampler({"name": ["a", "b"]}), sampler({}), sampler({"name": "x"})]
    keys = set(sampler.stats()["keys"])
    assert ([1, 1, 1], 0) == (results, sampler.stats()["errors"])
    assert {"['a', 'b']•null", "null•null", "x•null"} == keys


def threads_named(name: str) -> int:
    return sum(1 for t in threading.enumerate() if t.name == name and t.is_alive())


def test_background_thread_updates_and_close_stops_it() -> None:
    """The daemon thread recomputes every adjustment_interval; close() stops it for good."""
    sampler = DynamicSampler(
        10, ["k"], adjustment_interval=0.05, min_events_per_sec=0, name="bgtest"
    )
    started_before_first_event = threads_named("wideevents-bgtest")
    sampler({"k": "a"})
    deadline = time.monotonic() + 10
    while sampler.stats()["updates"] < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert (0, 1, True) == (
        started_before_first_event,
        threads_named("wideevents-bgtest"),
        sampler.stats()["updates"] >= 2,
    )
    assert sampler.close(timeout=5)
    after = sampler.stats()["updates"]
    time.sleep(0.2)
    rate = sampler({"k": "a"})  # still decides after close, without restarting the thread
    assert (after, 0, 1) == (sampler.stats()["updates"], threads_named("wideevents-bgtest"), rate)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_thread_restarts_in_forked_child() -> None:
    """In a forked child the sampler keeps working and restarts its own thread."""
    sampler = DynamicSampler(
        10, ["k"], adjustment_interval=0.05, min_events_per_sec=0, name="forktest"
    )
    sampler({"k": "a"})
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.close(read_fd)
            sampler.reset_after_fork()
            rate = sampler({"k": "a"})
            before = sampler.stats()["updates"]
            deadline = time.monotonic() + 5
            while sampler.stats()["updates"] == before and time.monotonic() < deadline:
                time.sleep(0.01)
            alive = any(t.name == "wideevents-forktest" for t in threading.enumerate())
            os.write(
                write_fd, json.dumps([rate, sampler.stats()["updates"] > before, alive]).encode()
            )
            sampler.close(timeout=2)
        finally:
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        child = json.loads(pipe.read())
    os.waitpid(pid, 0)
    sampler.close(timeout=2)
    assert [1, True, True] == child


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"goal_rate": 0}, "goal_rate"),
        ({"goal_rate": 1.5}, "goal_rate"),
        ({"key_fields": []}, "key_fields"),
        ({"key_fields": ["name", 3]}, "key_fields"),
        ({"adjustment_interval": 0}, "adjustment_interval"),
        ({"weight": 0}, "weight"),
        ({"weight": 1.5}, "weight"),
        ({"max_keys": 0}, "max_keys"),
        ({"min_events_per_sec": -1}, "min_events_per_sec"),
        ({"burst_multiple": 1}, "burst_multiple"),
        ({"clock": 5}, "clock"),
    ],
)
def test_bad_configuration(kwargs: dict[str, Any], fragment: str) -> None:
    """Bad settings raise ConfigurationError naming the setting and an example."""
    args: dict[str, Any] = {"goal_rate": 10, "key_fields": ["name"], **kwargs}
    with pytest.raises(ConfigurationError) as info:
        DynamicSampler(**args)
    assert (True, True) == (fragment in str(info.value), "e.g." in str(info.value))
