"""DeterministicSampler: the beelines' SHA-1 rule, the same in every process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.support.sampling import reference_keep, trace_ids
from wideevents._errors import ConfigurationError
from wideevents.sampling import REFINERY_SALT, DeterministicSampler

FIXED_IDS = [
    "4bf92f3577b34da6a3ce929d0e0e4736",
    "00f067aa0ba902b7",
    "0af7651916cd43dd8448eb211c80319c",
    "018f3a6e-7c1d-7b2e-9a4f-3d2c1b0a9f8e",
    "req-000001",
    "req-000002",
    "user:42",
    "użytkownik-✓-日本",
    "",
    "x" * 300,
    *trace_ids(200, seed=11),
]
RATES = [1, 2, 3, 10, 17, 100, 255, 1000]
ROOT = Path(__file__).resolve().parent.parent.parent


def decisions(rate: int, salt: str, ids: list[str]) -> list[bool]:
    sampler = DeterministicSampler(rate, salt=salt)
    return [sampler({"trace.trace_id": i}) == rate for i in ids]


def test_known_sha1_vector() -> None:
    """SHA-1("abc") starts a9993e36 = 2845392438: kept at rate 1 only (0.6625 of 2**32-1)."""
    sampler = DeterministicSampler(2)
    assert [True, False] == [DeterministicSampler(1).keeps("abc"), sampler.keeps("abc")]


@pytest.mark.parametrize("salt", ["", REFINERY_SALT])
@pytest.mark.parametrize("rate", RATES)
def test_matches_the_sha1_definition(rate: int, salt: str) -> None:
    """Every decision equals the SHA-1 rule computed independently, with and without salt."""
    expected = [reference_keep(i, rate, salt) for i in FIXED_IDS]
    assert expected == decisions(rate, salt, FIXED_IDS)


def test_fixed_ids_exercise_both_outcomes() -> None:
    """The fixed ids include kept and dropped ones at rate 10, and the salt changes some."""
    plain = decisions(10, "", FIXED_IDS)
    salted = decisions(10, REFINERY_SALT, FIXED_IDS)
    assert (True, True, True) == (any(plain), not all(plain), plain != salted)


def test_refinery_salt_value() -> None:
    """The exported salt is Refinery's sharding salt."""
    assert "5VQ8l2jE5aJLPVqk" == REFINERY_SALT


def test_returns_rate_or_zero() -> None:
    """Kept events get the rate as their weight, dropped ones 0."""
    ids = trace_ids(500, seed=3)
    sampler = DeterministicSampler(7)
    expected = [7 if reference_keep(i, 7) else 0 for i in ids]
    assert expected == [sampler({"trace.trace_id": i}) for i in ids]


def test_identical_across_processes() -> None:
    """A second interpreter (other hash seed) makes exactly the same decisions."""
    ids = trace_ids(2000, seed=7)
    script = (
        "import json, sys\n"
        "from wideevents.sampling import DeterministicSampler, REFINERY_SALT\n"
        "ids = json.load(sys.stdin)\n"
        "out = {}\n"
        "for salt in ('', REFINERY_SALT):\n"
        "    for rate in (2, 10, 100):\n"
        "        s = DeterministicSampler(rate, salt=salt)\n"
        "        out[f'{rate}/{salt}'] = [s({'trace.trace_id': i}) for i in ids]\n"
        "print(json.dumps(out))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    proc = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(ids),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
        check=True,
    )
    theirs = json.loads(proc.stdout)
    ours = {}
    for salt in ("", REFINERY_SALT):
        for rate in (2, 10, 100):
            s = DeterministicSampler(rate, salt=salt)
            ours[f"{rate}/{salt}"] = [s({"trace.trace_id": i}) for i in ids]
    assert ours == theirs


def test_weighted_count_estimates_true_count() -> None:
    """Over 200,000 events the sum of sample rates is within 5% of the true count,
    overall and per operation."""
    ids = trace_ids(200_000, seed=21)
    names = ["GET /predict", "GET /search", "POST /feedback"]
    sampler = DeterministicSampler(10)
    true = {n: 0 for n in names}
    weighted = {n: 0 for n in names}
    for k, trace_id in enumerate(ids):
        name = names[k % 5 % 3]
        true[name] += 1
        weighted[name] += sampler({"trace.trace_id": trace_id, "name": name})
    assert sum(true.values()) == pytest.approx(sum(weighted.values()), rel=0.05)
    for name in names:
        assert true[name] == pytest.approx(weighted[name], rel=0.05), name


def test_fallback_to_prediction_id_then_request_id() -> None:
    """Without the trace id, prediction.id decides; without both, request.id does."""
    ids = trace_ids(400, seed=5)
    pairs = [(a, b) for a, b in zip(ids[::2], ids[1::2], strict=True)]
    sampler = DeterministicSampler(3)
    got_prediction = [sampler({"prediction.id": a, "request.id": b}) == 3 for a, b in pairs]
    got_request = [sampler({"request.id": b, "trace.trace_id": None}) == 3 for _, b in pairs]
    expected_prediction = [reference_keep(a, 3) for a, _ in pairs]
    expected_request = [reference_keep(b, 3) for _, b in pairs]
    assert (expected_prediction, expected_request) == (got_prediction, got_request)
    assert expected_prediction != expected_request  # the test can tell the two apart


def test_custom_key_and_non_string_values() -> None:
    """A custom key is hashed as str(value): user.id 12345 decides like "12345"."""
    sampler = DeterministicSampler(4, key="user.id")
    users = list(range(1000, 1300))
    expected = [reference_keep(str(u), 4) for u in users]
    assert expected == [sampler({"user.id": u, "trace.trace_id": "zz"}) == 4 for u in users]


def test_missing_keys_sampled_at_random_unbiased() -> None:
    """Events with no id at all are kept at random at the same rate: the weighted count
    is still within 5%, and each one is counted as missing_key."""
    sampler = DeterministicSampler(5, seed=1)
    n = 100_000
    weights = [sampler({"name": "x"}) for _ in range(n)]
    assert (n, {0, 5}) == (sampler.stats()["missing_key"], set(weights))
    assert n == pytest.approx(sum(weights), rel=0.05)


def test_rate_one_keeps_everything() -> None:
    """Rate 1 keeps every event, even one that would hash above any bound."""
    sampler = DeterministicSampler(1)
    ids = trace_ids(1000, seed=2)
    assert [1] * 1000 == [sampler({"trace.trace_id": i}) for i in ids]


def test_stats_count_kept_and_dropped() -> None:
    """stats() reports the kept and dropped counts the caller saw."""
    sampler = DeterministicSampler(10)
    ids = trace_ids(5000, seed=8)
    kept = sum(1 for i in ids if reference_keep(i, 10))
    for i in ids:
        sampler({"trace.trace_id": i})
    stats = sampler.stats()
    assert (kept, 5000 - kept, 0) == (stats["kept"], stats["dropped"], stats["errors"])


def test_numpy_integer_rate_accepted() -> None:
    """An integer type such as numpy.int64 is a valid rate."""
    assert 10 == DeterministicSampler(np.int64(10)).rate  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"rate": 0}, "sample_rate"),
        ({"rate": -3}, ">= 1"),
        ({"rate": 2.5}, "whole number"),
        ({"rate": 10.0}, "whole number"),
        ({"rate": True}, "whole number"),
        ({"rate": "10"}, "whole number"),
        ({"rate": 10, "key": ""}, "key="),
        ({"rate": 10, "salt": 5}, "salt"),
    ],
)
def test_bad_configuration(kwargs: dict[str, object], fragment: str) -> None:
    """Bad rates, keys and salts raise ConfigurationError saying what to write instead."""
    with pytest.raises(ConfigurationError) as info:
        DeterministicSampler(**kwargs)  # type: ignore[arg-type]
    assert (True, True) == (
        fragment in str(info.value),
        "e.g." in str(info.value) or "use" in str(info.value),
    )


def test_never_raises_on_odd_events() -> None:
    """Odd key values (lists, lone surrogates, bytes) give a decision, never an exception."""
    sampler = DeterministicSampler(2)
    odd = [[1, 2], "\ud800", b"raw", 3.5, {"a": 1}]
    results = [sampler({"trace.trace_id": v}) for v in odd]
    assert (True, 0) == (all(r in (0, 2) for r in results), sampler.stats()["errors"])
