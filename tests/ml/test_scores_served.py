"""Scores as served (issue 18, "Scores"): logits vs probabilities, two-column binary rows,
the served decision with non-finite scores, shadows with their own options, typos that
are counted, and the non-recording stand-in's prediction id. Each test reproduces one
reported case."""

from __future__ import annotations

import logging
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.special

import wideevents
from tests.support.ml import FakeEvent, assert_close
from wideevents.ml import _bind, score_fields, score_fields_batch
from wideevents.testing import capture_events

ERR = "meta.ml_error_count"
REASONS = "meta.ml_error_reasons"
ROOT = Path(__file__).resolve().parent.parent.parent


def test_logits_without_the_flag_are_flagged() -> None:
    """[4, 2.5, 1] without logits=True: the problem is recorded; no bin, no entropy."""
    fields = score_fields([4.0, 2.5, 1.0])
    assert (["scores: values are not probabilities (pass logits=True?)"], 0, 4.0) == (
        fields[REASONS], fields["prediction.label"], fields["prediction.score"])
    assert {"score.bin", "score.entropy", "prediction.p_positive"}.isdisjoint(fields)


def test_probabilities_with_logits_flag_are_flagged() -> None:
    """Probabilities passed with logits=True are still softmaxed (0.7 -> scipy's softmax),
    and flagged."""
    p = [0.7, 0.2, 0.1]
    fields = score_fields(p, logits=True)
    assert ["scores: logits=True but the values are probabilities (they sum to 1)"] == fields[
        REASONS]
    assert float(scipy.special.softmax(p)[0]) == pytest.approx(fields["prediction.score"])


@pytest.mark.parametrize("row", [[0.9, 0.9], [0.8, 0.7, 0.9], [0.1, 0.2, 0.1]])
def test_rows_that_do_not_sum_to_one_are_flagged(row: list[float]) -> None:
    """Multilabel sigmoids and binary [0.9, 0.9] rows do not sum to 1: flagged, no bin."""
    fields = score_fields(row, threshold=0.5) if len(row) == 2 else score_fields(row)
    assert ['scores: probabilities do not sum to 1 (multilabel? pass kind="multilabel")'] == \
        fields[REASONS]
    assert "score.bin" not in fields


def test_multilabel_is_recorded_per_class() -> None:
    """kind="multilabel": labels at or above the threshold, best first; top-1 as the score."""
    fields = score_fields([0.8, 0.3, 0.95], kind="multilabel", labels=["a", "b", "c"], k=3)
    assert {
        "prediction.label": "c",
        "prediction.labels": ["c", "a"],
        "prediction.score": 0.95,
        "score.topk.labels": ["c", "a", "b"],
        "score.bin": 9,
    } == {k: fields[k] for k in ("prediction.label", "prediction.labels", "prediction.score",
                                 "score.topk.labels", "score.bin")}
    assert ERR not in fields
    z = np.array([2.0, -1.0, 0.0])
    logits = score_fields(z, kind="multilabel", logits=True, threshold=0.4)
    assert ([0, 2], float(scipy.special.expit(2.0))) == (
        logits["prediction.labels"], logits["prediction.score"])


def test_two_columns_with_threshold_are_binary() -> None:
    """ev.scores([.3, .7], labels=[neg, pos], threshold=.9): neg, and p_positive = 0.7."""
    ev = FakeEvent()
    _bind.scores(ev, np.array([0.3, 0.7]), labels=["neg", "pos"], threshold=0.9)
    assert ("neg", 0.7, 0.7, 7) == (
        ev.fields["prediction.label"], ev.fields["prediction.p_positive"],
        ev.fields["prediction.score"], ev.fields["score.bin"])


def test_positive_label_picks_the_column() -> None:
    """positive= names the positive class; p_positive is its column, not the top one."""
    fields = score_fields([0.8, 0.2], labels=["fraud", "ok"], positive="fraud")
    assert ("fraud", 0.8, 8) == (
        fields["prediction.label"], fields["prediction.p_positive"], fields["score.bin"])
    low = score_fields([0.2, 0.8], labels=["fraud", "ok"], positive="fraud")
    assert ("ok", 0.2, 2) == (
        low["prediction.label"], low["prediction.p_positive"], low["score.bin"])
    multi = score_fields([0.1, 0.6, 0.3], labels=["a", "b", "c"], positive="c")
    assert ("b", 0.3, 6) == (
        multi["prediction.label"], multi["prediction.p_positive"], multi["score.bin"])


@pytest.mark.parametrize(
    ("row", "logits"),
    [
        ([1.0, math.inf, 0.0], True),
        ([1.0, math.inf, 0.0], False),
        ([0.5, math.nan, 0.5], False),
        ([0.2, 0.3, math.nan, math.inf], True),
        ([-math.inf, 0.2, -math.inf], False),
    ],
)
def test_logged_label_is_the_served_argmax(row: list[float], logits: bool) -> None:
    """A +inf logit or a NaN: the logged label is numpy.argmax's; no entropy is claimed."""
    fields = score_fields(row, logits=logits)
    assert (int(np.argmax(row)), None, True) == (
        fields["prediction.label"], fields["prediction.score"], fields["prediction.nonfinite"])
    assert {"score.entropy", "score.entropy_norm", "score.bin", "score.topk.labels"}.isdisjoint(
        fields)


def test_batch_rows_follow_the_same_rules() -> None:
    """score_fields_batch gives, row by row, what score_fields gives (new rules included)."""
    rows = np.array([[0.3, 0.7], [0.9, 0.9], [1.0, np.inf], [0.6, 0.4]])
    for options in ({"threshold": 0.5}, {"positive": 0}, {}, {"logits": True, "positive": 1}):
        batch = score_fields_batch(rows, **options)
        for row, fields in zip(rows, batch, strict=True):
            assert_close(score_fields(row, **options), fields, rel=1e-12)


def test_shadow_has_its_own_logits_and_labels() -> None:
    """A shadow that outputs logits (the primary outputs probabilities) is scored with its
    own logits=True and labels."""
    ev = FakeEvent()
    _bind.scores(ev, [0.1, 0.7, 0.2], labels=["a", "b", "c"])
    z = np.array([0.0, 3.0, 1.0])
    _bind.shadow(ev, "v2", scores=z, logits=True, labels=["x", "y", "z"])
    assert ("y", float(scipy.special.softmax(z)[1])) == (
        ev.fields["shadow.prediction.label"],
        pytest.approx(ev.fields["shadow.prediction.score"], rel=1e-12))
    assert ERR not in ev.fields


@pytest.mark.parametrize(
    ("call", "reason"),
    [
        (lambda ev: ev.scores([0.3, 0.7], threshhold=0.3), "scores: unknown keyword argument"),
        (lambda ev: ev.scores([0.3, 0.7], label=["a", "b"]), "scores: unknown keyword argument"),
        (lambda ev: ev.features({"a": 1.0}, name=["a"]), "features: unknown keyword argument"),
        (lambda ev: ev.shadow("v2", scores=[0.1, 0.9], duraton_ms=3.0),
         "shadow: unknown keyword argument"),
        (lambda ev: ev.ranking(["a"], [1.0], 3), "ranking: unexpected positional argument"),
    ],
)
def test_typos_are_counted_and_the_rest_recorded(call: Any, reason: str) -> None:
    """A misspelt keyword or stray positional argument never raises, is counted on the
    event, and the rest of the call is still recorded."""
    with capture_events() as events, wideevents.event("predict") as ev:
        ev.scores([0.2, 0.8])
        call(ev)
    (event,) = events
    assert (reason in event[REASONS], 1, 1) == (True, event[ERR], event["prediction.label"])


def test_each_new_typo_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    """Every new misspelt name is logged (once), with the closest valid keyword."""
    with caplog.at_level(logging.WARNING, logger="wideevents"), capture_events():
        for _ in range(3):
            with wideevents.event("predict") as ev:
                ev.scores([0.3, 0.7], threshhold_typo_a=0.3)
                ev.scores([0.3, 0.7], threshhold_typo_b=0.3)
    logged = [r.getMessage() for r in caplog.records if "unknown keyword" in r.getMessage()]
    assert 2 == len(logged)
    assert all("did you mean 'threshold'?" in line for line in logged)


@pytest.mark.slow
def test_mypy_sees_typos(tmp_path: Path) -> None:
    """The explicit signatures let mypy --strict report a misspelt keyword."""
    code = tmp_path / "typo.py"
    code.write_text("import wideevents\n\nwith wideevents.event('x') as ev:\n"
                    "    ev.scores([0.3, 0.7], threshhold=0.3)\n"
                    "    ev.scores([0.3, 0.7], threshold=0.3)\n")
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(code)],
        capture_output=True, text=True, cwd=ROOT, timeout=300)
    errors = [line for line in out.stdout.splitlines() if ": error:" in line]
    assert 1 == len(errors), out.stdout
    assert '"threshhold"' in errors[0] and "typo.py:4:" in errors[0]


def test_stand_in_prediction_id_is_stable_and_not_shared() -> None:
    """Outside any event: each current_event() call's stand-in keeps its id; two calls
    never share one; its feedback_context is empty."""
    first, second = wideevents.current_event(), wideevents.current_event()
    assert (first.prediction_id, False) == (first.prediction_id,
                                            first.prediction_id == second.prediction_id)
    assert ("", False) == (first.feedback_context(), first.recording)
    first.scores([0.2, 0.8])
    assert {} == first.fields
