"""The public surface of wideevents.ml, its import cost, and the benchmark smoke run."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import wideevents.ml


def test_all_is_exactly_the_public_api() -> None:
    """__all__ lists the documented names, each resolvable."""
    expected = {
        "Profile",
        "compare_rankings",
        "configure_feedback_cache",
        "feature_fields",
        "feedback",
        "ranking_fields",
        "score_fields",
        "score_fields_batch",
    }
    assert expected == set(wideevents.ml.__all__)
    assert all(callable(getattr(wideevents.ml, name)) for name in expected)
    assert expected <= set(dir(wideevents.ml))


def test_unknown_attribute_raises_attribute_error() -> None:
    """A missing name is an AttributeError (as for any module)."""
    with pytest.raises(AttributeError):
        wideevents.ml.does_not_exist  # noqa: B018


def test_importing_ml_and_bind_does_not_import_numpy() -> None:
    """wideevents.ml, its event binding and feedback import no numpy until used."""
    code = (
        "import sys, wideevents, wideevents.ml, wideevents.ml._bind, wideevents.ml._feedback;"
        "print('numpy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "False" == out.stdout.strip()


def test_benchmark_quick_run() -> None:
    """benchmarks.bench_ml.run(quick=True) returns one markdown section with verdicts."""
    path = Path(__file__).resolve().parent.parent.parent / "benchmarks" / "bench_ml.py"
    spec = importlib.util.spec_from_file_location("bench_ml_under_test", path)
    assert spec is not None and spec.loader is not None
    bench_ml = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_ml)
    section = bench_ml.run(quick=True)
    assert section.startswith("## ML helpers")
    assert 4 == sum(("| PASS |" in line or "| FAIL |" in line) for line in section.splitlines())


def test_no_numpy_warnings_on_hostile_input() -> None:
    """NaN, ±Inf, inf - inf, huge and tiny values: no RuntimeWarning escapes the helpers."""
    from wideevents.ml import (
        Profile,
        compare_rankings,
        feature_fields,
        ranking_fields,
        score_fields,
        score_fields_batch,
    )

    nasty = [
        [np.inf, -np.inf],
        [np.nan, np.inf, -np.inf, 1.0],
        [1e308, 1e308, 1.0],
        [1e200, -1e200],
        [5e-324, 0.0],
        [-np.inf, -np.inf],
    ]
    profile = Profile.fit(np.array([[0.0, 1.0], [1.0, 2.0], [2.0, 3.0]]), ["a", "b"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for values in nasty:
            for logits in (False, True):
                score_fields(values, logits=logits)
                score_fields(values[:1], threshold=0.5, logits=logits)
                score_fields_batch(np.array([values, values]), logits=logits)
                score_fields_batch(np.array(values), threshold=0.5, logits=logits)
            feature_fields(np.array(values[:2]), profile=profile)
            feature_fields(dict(zip(["a", "b"], values[:2], strict=True)), profile=profile)
            feature_fields({"v": values})
            ranking_fields(list(range(len(values))), values)
        compare_rankings([1, 2], [2, 1], 2)
