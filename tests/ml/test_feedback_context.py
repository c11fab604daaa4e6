"""What calibration and accuracy need (issue 18): feedback across processes through a signed
context token, feedback.correct, data.* and slice.* on feedback, score.bin everywhere, the
feedback join in the local query engine, and profile files of version 2 (version 1 still
loading). Cross-process cases run real subprocesses; the join reads real files."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import wideevents
from wideevents._core import predictions
from wideevents._core.ids import uuid7
from wideevents._errors import ConfigurationError
from wideevents.ml import Profile, feature_fields
from wideevents.ml import _context as context_module
from wideevents.ml._feedback import feedback_fields
from wideevents.query._join import join_feedback
from wideevents.sinks import MemorySink
from wideevents.testing import capture_events

ROOT = Path(__file__).resolve().parent.parent.parent
KEY = "feedback-key-for-tests-0123456789"
ERR = "meta.ml_error_count"
REASONS = "meta.ml_error_reasons"
COPIED = ("model.name", "model.version", "model.stage", "prediction.label", "prediction.score",
          "prediction.p_positive", "score.bin", "slice.region")
# RFC 4648 section 5 (base64url) and "." for the three parts: unreserved in URLs (RFC 3986).
URL_SAFE = re.compile(r"[A-Za-z0-9_\-.]+")


@pytest.fixture(autouse=True)
def fresh_state() -> Iterator[None]:
    """No cached predictions and no feedback key decided, before and after each test."""
    predictions.cache.clear()
    context_module.install(None)
    context_module._configured = False
    yield
    predictions.cache.clear()
    context_module.install(None)
    context_module._configured = False


def predict(ev: Any, i: int = 0) -> None:
    ev.model("clf", "v3", stage="canary")
    ev.add({"slice.region": ["eu", "us"][i % 2], "slice.api_key": "sk-live-secret"})
    ev.features({"age": 31.0, "email_len": None, "colour": "plaid"})
    ev.scores([0.35, 0.65], labels=["no", "yes"], threshold=0.5)


def decode(token: str) -> tuple[dict[str, Any], str, str]:
    """(payload, signed text, signature) of a token, read by hand (RFC 4648 base64url)."""
    prefix, body, signature = token.split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    return payload, f"{prefix}.{body}", signature


def test_token_is_compact_url_safe_and_carries_only_the_listed_fields() -> None:
    """At most 512 URL-safe characters; model, label, scores, bin, slices and time; no
    feature value, no slice whose key is secret; signed with HMAC-SHA256 (RFC 2104)."""
    wideevents.configure(sinks=[MemorySink()], feedback_key=KEY)
    with wideevents.event("predict") as ev:
        predict(ev)
        token = ev.feedback_context()
        pid = ev.prediction_id
    assert len(token) <= 512 and URL_SAFE.fullmatch(token)
    payload, signed, signature = decode(token)
    assert {"m": ["clf", "v3", "canary"], "l": "yes", "s": 0.65, "p": 0.65, "b": 6,
            "c": {"region": "eu"}} == {k: v for k, v in payload.items() if k not in ("h", "t")}
    assert int(pid.replace("-", "")[:12], 16) == payload["t"]
    expected = hmac.new(KEY.encode(), signed.encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64encode(expected).rstrip(b"=").decode() == signature
    assert ({"h", "t", "m", "l", "s", "p", "b", "c"}, False) == (
        set(payload), "plaid" in json.dumps(payload))


def test_oversized_slices_are_left_out_to_fit() -> None:
    """Slices that would push the token past 512 characters are left out, and counted."""
    with capture_events() as events, wideevents.event("predict") as ev:
        predict(ev)
        ev.add({f"slice.s{i:02d}": "x" * 60 for i in range(20)})
        token = ev.feedback_context()
    payload, _, _ = decode(token)
    assert len(token) <= 512 and len(payload["c"]) < 21
    assert ["feedback_context: slices left out or text cut to fit 512 bytes"] == events[0][
        REASONS]


def test_feedback_in_another_process_carries_the_prediction() -> None:
    """Real subprocesses: predictions in one, feedback in another (as under gunicorn with
    two workers). With the token, every feedback event carries the prediction's fields,
    verified; without it, none (the reported 189 of 396)."""
    tmp = Path(os.environ.get("TMPDIR", "/tmp"))
    served, told = tmp / f"pred-{os.getpid()}.jsonl", tmp / f"fb-{os.getpid()}.jsonl"
    env = {**os.environ, "WIDEEVENTS_FEEDBACK_KEY": KEY, "PYTHONPATH": str(ROOT)}
    try:
        pairs = run_service(served, env)
        feedback = [[pid, token, "yes" if i % 3 else "no"] for i, (pid, token) in enumerate(pairs)]
        feedback.append([pairs[0][0], "", "yes"])  # no context: nothing to copy
        run_feedback(told, env, feedback)
        made = {e["prediction.id"]: e for e in read(served)}
        got = read(told)
        assert len(pairs) + 1 == len(got)
        for event, (pid, _, label) in zip(got[:-1], feedback[:-1], strict=True):
            source = made[pid]
            assert {k: source[k] for k in COPIED} == {k: event[k] for k in COPIED}
            assert (False, True, source["prediction.label"] == label) == (
                event["feedback.matched"], event["feedback.context_verified"],
                event["feedback.correct"])
        bare = got[-1]
        assert (None, False) == (bare.get("feedback.context_verified"), "model.version" in bare)
        rows = {r["prediction.id"]: r for r in join_feedback([served, told], cache=False)}
        assert {p: 1 for p, _ in pairs} == {p: r["data.null_count"] for p, r in rows.items()}
    finally:
        for path in (served, told):
            path.unlink(missing_ok=True)


SERVICE = textwrap.dedent("""
    import json, sys
    import wideevents
    from wideevents.sinks import FileSink
    from tests.ml.test_feedback_context import predict
    wideevents.configure(sinks=[FileSink(sys.argv[1])])
    out = []
    for i in range(12):
        with wideevents.event("predict") as ev:
            predict(ev, i)
            out.append([ev.prediction_id, ev.feedback_context()])
    wideevents.shutdown()
    print(json.dumps(out))
""")
FEEDBACK = textwrap.dedent("""
    import json, sys
    import wideevents
    from wideevents.sinks import FileSink
    wideevents.configure(sinks=[FileSink(sys.argv[1])])
    for pid, token, label in json.load(sys.stdin):
        wideevents.feedback(pid, label=label, context=token or None)
    wideevents.shutdown()
""")


def run_service(path: Path, env: dict[str, str]) -> list[list[str]]:
    out = subprocess.run([sys.executable, "-c", SERVICE, str(path)], env=env, cwd=ROOT,
                         capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def run_feedback(path: Path, env: dict[str, str], feedback: list[list[str]]) -> None:
    subprocess.run([sys.executable, "-c", FEEDBACK, str(path)], env=env, cwd=ROOT,
                   input=json.dumps(feedback), capture_output=True, text=True, timeout=120,
                   check=True)


def read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def made_token(key: str | None) -> tuple[str, str]:
    """A prediction's id and token, made as another process would (nothing cached here)."""
    context_module.install(None if key is None else context_module.resolve_key(key))
    with capture_events(), wideevents.event("predict") as ev:
        predict(ev)
        made = ev.prediction_id, ev.feedback_context()
    predictions.cache.clear()
    return made


def test_forged_token_is_rejected_under_a_key() -> None:
    """A client that changes the label (or sends an unsigned token) cannot pass it off."""
    pid, token = made_token(KEY)
    payload, signed, signature = decode(token)
    payload["l"] = "no"
    body = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    for forged in (f"wf1.{body}.{signature}", f"wf1.{body}.", signed + "."):
        fields, _ = feedback_fields(pid, label="no", context=forged)
        assert (False, False, ["feedback: context signature does not verify"]) == (
            fields["feedback.context_verified"], "prediction.label" in fields, fields[REASONS])


def test_without_a_key_tokens_are_read_but_not_verified() -> None:
    """No key anywhere: the token's fields are used and marked unverified; a signed token
    read where no key is configured too."""
    for key in (None, KEY):
        pid, token = made_token(key)
        context_module.install(None)
        fields, _ = feedback_fields(pid, label="yes", context=token)
        assert (False, "v3", True, 6) == (
            fields["feedback.context_verified"], fields["model.version"],
            fields["feedback.correct"], fields["score.bin"])


def test_token_of_another_prediction_or_garbage_is_rejected() -> None:
    """A token given with another prediction's id, or text that is no token: not used."""
    _, token = made_token(KEY)
    for given, reason in ((token, "feedback: context belongs to another prediction id"),
                          ("wf1.bm90IGpzb24.", "feedback: context is not a feedback_context() token"),
                          (12, "feedback: context is not a feedback_context() token")):
        fields, _ = feedback_fields(uuid7(), context=given)
        assert ([reason], False) == (fields[REASONS], "model.name" in fields)


@pytest.mark.parametrize("key", ["zq9x-k3y", b"0123456789abcde", 1234])
def test_bad_key_fails_configure_without_showing_it(key: Any) -> None:
    """A key under 16 bytes (or not text) is a ConfigurationError that does not show it."""
    with pytest.raises(ConfigurationError) as caught:
        wideevents.configure(sinks=[MemorySink()], feedback_key=key)
    assert "16" in str(caught.value) and str(key) not in str(caught.value)


def test_short_environment_key_fails_configure(monkeypatch: pytest.MonkeyPatch) -> None:
    """WIDEEVENTS_FEEDBACK_KEY is validated by configure() too."""
    monkeypatch.setenv("WIDEEVENTS_FEEDBACK_KEY", "tiny-key")
    with pytest.raises(ConfigurationError, match="WIDEEVENTS_FEEDBACK_KEY is too short"):
        wideevents.configure(sinks=[MemorySink()])


def test_key_never_appears(caplog: pytest.LogCaptureFixture) -> None:
    """Through a whole flow with bad tokens, the key is in no event, log line or repr."""
    sink = MemorySink()
    with caplog.at_level(logging.DEBUG):
        wideevents.configure(sinks=[sink], feedback_key=KEY)
        with wideevents.event("predict") as ev:
            predict(ev)
            token = ev.feedback_context()
            pid = ev.prediction_id
        wideevents.feedback(pid, label="yes", context=token[:-3] + "AAA")
        wideevents.feedback(pid, label="yes", context=token)
        wideevents.flush()
    text = json.dumps(sink.events) + "".join(r.getMessage() for r in caplog.records)
    text += repr(context_module.current_key()) + str(context_module.current_key())
    assert (KEY in text, 2) == (False, sum(e["name"] == "feedback" for e in sink.events))


def test_feedback_copies_data_slices_bin_and_judges_correct() -> None:
    """In-process: feedback carries data.*, slice.*, score.bin; correct by value."""
    with capture_events() as events:
        with wideevents.event("predict") as ev:
            predict(ev)
            pid = ev.prediction_id
        with wideevents.event("predict") as ev2:
            ev2.scores([0.1, 0.7, 0.2], labels=[1, 2, 3])
            pid2 = ev2.prediction_id
        wideevents.feedback(pid, label="no")
        wideevents.feedback(pid2, label=2.0)
        wideevents.feedback(pid2, label="2")
    wrong, by_value, text = events[2:]
    assert {"data.null_count": 1, "data.nan_count": 0, "data.inf_count": 0,
            "slice.region": "eu", "score.bin": 6, "prediction.p_positive": 0.65,
            "feedback.correct": False} == {k: wrong[k] for k in (
                "data.null_count", "data.nan_count", "data.inf_count", "slice.region",
                "score.bin", "prediction.p_positive", "feedback.correct")}
    assert (True, False, 7) == (by_value["feedback.correct"], text["feedback.correct"],
                                by_value["score.bin"])


def write_events(path: Path, events: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(e) + "\n" for e in events))


def test_join_weights_by_the_feedback_samplerate(tmp_path: Path) -> None:
    """The join pairs each feedback event with its prediction event by prediction.id,
    weights it by the feedback's samplerate, prefers the prediction event's values and
    fills feedback.correct; a prediction sampled away keeps the feedback's copies."""
    a, b, c = uuid7(), uuid7(), uuid7()
    write_events(tmp_path / "pred.jsonl", [
        {"name": "predict", "timestamp": "2024-01-01T00:00:00Z", "prediction.id": a,
         "model.version": "v1", "prediction.label": 1, "score.bin": 8, "data.null_count": 2,
         "slice.region": "eu"},
        {"name": "predict", "timestamp": "2024-01-01T00:00:01Z", "prediction.id": b,
         "model.version": "v1", "prediction.label": "cat", "score.bin": 3, "samplerate": 4},
        {"name": "GET /", "timestamp": "2024-01-01T00:00:02Z"},
    ])
    write_events(tmp_path / "fb.jsonl", [
        {"name": "feedback", "prediction.id": a, "feedback.label": 1.0, "samplerate": 3},
        {"name": "feedback", "prediction.id": b, "feedback.label": "dog", "samplerate": "2"},
        {"name": "feedback", "prediction.id": c, "feedback.label": "x", "model.version": "v0",
         "prediction.label": "x", "feedback.correct": True},
    ])
    rows = {r["prediction.id"]: r for r in join_feedback(str(tmp_path / "*.jsonl"), cache=False)}
    assert {
        a: (3, True, "v1", 8, 2, "eu", True),
        b: (2, True, "v1", 3, None, None, False),
        c: (1, False, "v0", None, None, None, True),
    } == {pid: (r["weight"], r["joined"], r["model.version"], r["score.bin"],
                r["data.null_count"], r["slice.region"], r["feedback.correct"])
          for pid, r in rows.items()}
    expected_weight = sum(int(e.get("samplerate", 1)) for e in read(tmp_path / "fb.jsonl"))
    assert expected_weight == sum(r["weight"] for r in rows.values())


def test_profile_version_2_round_trip_and_version_1_still_loads(tmp_path: Path) -> None:
    """save writes version 2 (frequencies, score); a version 1 file loads and compares its
    categories as strings, as it was fitted."""
    profile = Profile.fit({"x": [1.0, 2.0, 3.0], "plan": [1, 2, 2]}, categorical=["plan"],
                          scores=[[0.2, 0.8], [0.6, 0.4], [0.5, 0.5]])
    path = tmp_path / "v2.json"
    profile.save(path)
    document = json.loads(path.read_text())
    # Two columns without positive= are multiclass: the bins of the top probability.
    assert (2, [1 / 3, 2 / 3], [0.0] * 5 + [1 / 3, 1 / 3, 0.0, 1 / 3, 0.0]) == (
        document["version"], document["features"][1]["frequencies"],
        document["score"]["bin_fractions"])
    assert profile == Profile.load(path)
    v1 = {"format": "wideevents.profile", "version": 1, "features": [
        {"name": "plan", "kind": "categorical", "count": 3, "null_rate": 0.0,
         "categories": ["1", "2"]}]}
    (tmp_path / "v1.json").write_text(json.dumps(v1))
    old = Profile.load(tmp_path / "v1.json")
    assert (0, 1) == (feature_fields({"plan": 1}, profile=old)["data.unseen_category_count"],
                      feature_fields({"plan": 3}, profile=old)["data.unseen_category_count"])
    assert v1 == old.to_dict()
