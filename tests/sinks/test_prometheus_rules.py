"""``wideevents prometheus rules``: a rule file Prometheus' own ``promtool`` accepts
(``promtool check rules``) and whose rules compute what they say on synthetic series
(``promtool test rules``, Prometheus "Unit Testing for Rules"). The promtool tests skip,
naming the install command, when Debian's prometheus package is absent."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.reliability import child_env

ROOT = Path(__file__).resolve().parent.parent.parent
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="needs promtool from Debian's prometheus package: "
    "apt-get install prometheus")

_SERIES = ('wideevents_events_total{{service_name="s",http_route="/predict",model_name="m",'
           'model_version="{v}",error="{e}"}}')


def _rules(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wideevents._cli", "prometheus", "rules", *args],
                          env=child_env(), cwd=ROOT, capture_output=True, text=True, timeout=60)


def _promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=60)


def test_rules_command_prints_the_recording_and_alerting_rules() -> None:
    """The command prints every rule the issue asks for, named after the namespace."""
    out = _rules()
    assert (0, "") == (out.returncode, out.stderr)
    records = [line.split(": ", 1)[1] for line in out.stdout.splitlines()
               if line.strip().startswith("- record: ")]
    assert ["service_route:wideevents_events:rate5m",
            "service_route:wideevents_error_ratio:rate5m",
            "model_version:wideevents_events:rate5m",
            "model_version:wideevents_error_ratio:rate5m",
            "model_version:wideevents_event_duration_seconds:p99_5m",
            "model:wideevents_champion_error_ratio:rate5m"] == records
    assert 1 == out.stdout.count("- alert: WideEventsCanaryErrorRatioHigh")


def test_namespace_option_renames_every_metric() -> None:
    """--namespace ranker: every metric and rule name uses ranker_, none wideevents_."""
    out = _rules("--namespace", "ranker")
    assert 0 == out.returncode, out.stderr
    assert "wideevents_" not in out.stdout
    assert "rate(ranker_events_total[5m])" in out.stdout


def test_a_namespace_that_is_not_a_metric_name_is_a_usage_error() -> None:
    """--namespace 'a-b' exits 2 and says what a namespace may be."""
    out = _rules("--namespace", "a-b")
    assert (2, "") == (out.returncode, out.stdout)
    assert "use a Prometheus metric name prefix" in out.stderr


@needs_promtool
@pytest.mark.parametrize("namespace", ["wideevents", "ranker"])
def test_promtool_accepts_the_rules(namespace: str, tmp_path: Path) -> None:
    """promtool check rules: SUCCESS, 7 rules (6 recording, 1 alerting)."""
    (tmp_path / "rules.yml").write_text(_rules("--namespace", namespace).stdout)
    out = _promtool("check", "rules", "rules.yml", cwd=tmp_path)
    assert 0 == out.returncode, out.stdout + out.stderr
    assert "SUCCESS: 7 rules found" in out.stdout


def _unit_test(tmp_path: Path, series: dict[tuple[str, str], str], body: str) -> str:
    """A promtool rule unit test over counters of /predict per (version, error)."""
    inputs = "\n".join(
        f"      - series: '{_SERIES.format(v=v, e=e)}'\n        values: '{values}'"
        for (v, e), values in series.items())
    return (f"rule_files: [rules.yml]\nevaluation_interval: 1m\ntests:\n"
            f"  - interval: 1m\n    input_series:\n{inputs}\n{body}")


@needs_promtool
def test_canary_alert_fires_for_the_version_that_errs_more_than_the_champion(
        tmp_path: Path) -> None:
    """Champion v1 (6,000 events/min, 1% errors) and canary v2 (600/min, 10% errors):
    after 10 minutes the alert fires for v2 only; the recorded ratios are 1% and 10%."""
    (tmp_path / "rules.yml").write_text(_rules().stdout)
    series = {("v1", "false"): "0+5940x40", ("v1", "true"): "0+60x40",
              ("v2", "false"): "0+540x40", ("v2", "true"): "0+60x40"}
    body = """    alert_rule_test:
      - eval_time: 8m
        alertname: WideEventsCanaryErrorRatioHigh
        exp_alerts: []
      - eval_time: 30m
        alertname: WideEventsCanaryErrorRatioHigh
        exp_alerts:
          - exp_labels: {service_name: s, model_name: m, model_version: v2, severity: warning}
            exp_annotations:
              summary: "m v2 errs more than its champion"
              description: "Error ratio 10% over 5m for m version v2 on s: more than twice the champion's (the version serving the most traffic) plus one percentage point."
    promql_expr_test:
      - expr: model:wideevents_champion_error_ratio:rate5m
        eval_time: 30m
        exp_samples:
          - labels: 'model:wideevents_champion_error_ratio:rate5m{service_name="s",model_name="m"}'
            value: 0.01
      - expr: model_version:wideevents_error_ratio:rate5m{model_version="v2"}
        eval_time: 30m
        exp_samples:
          - labels: 'model_version:wideevents_error_ratio:rate5m{service_name="s",model_name="m",model_version="v2"}'
            value: 0.1
"""
    (tmp_path / "test.yml").write_text(_unit_test(tmp_path, series, body))
    out = _promtool("test", "rules", "test.yml", cwd=tmp_path)
    assert 0 == out.returncode, out.stdout + out.stderr


@needs_promtool
@pytest.mark.parametrize(("canary", "why"), [
    ({("v2", "false"): "0+591x40", ("v2", "true"): "0+9x40"}, "1.5%: under 2 x 1% + 1 point"),
    ({("v2", "false"): "0+1x40", ("v2", "true"): "0+1x40"}, "50%, but 2 events a minute"),
    ({("v2", "false"): "0+600x40"}, "no error series at all: ratio 0"),
])
def test_canary_alert_stays_silent(canary: dict[tuple[str, str], str], why: str,
                                   tmp_path: Path) -> None:
    """No alert for a canary within twice the champion's ratio plus one point, for one
    serving under one event per 20 s, or for one without errors."""
    (tmp_path / "rules.yml").write_text(_rules().stdout)
    series = {("v1", "false"): "0+5940x40", ("v1", "true"): "0+60x40", **canary}
    body = """    alert_rule_test:
      - eval_time: 30m
        alertname: WideEventsCanaryErrorRatioHigh
        exp_alerts: []
"""
    (tmp_path / "test.yml").write_text(_unit_test(tmp_path, series, body))
    out = _promtool("test", "rules", "test.yml", cwd=tmp_path)
    assert 0 == out.returncode, why + "\n" + out.stdout + out.stderr


@needs_promtool
def test_p99_and_error_ratio_recording_rules_compute_their_values(tmp_path: Path) -> None:
    """p99 per version from cumulative buckets (90 <= 0.1 s, 99 <= 0.5 s, 100 in all per
    minute: the 99th is the last of the (0.1, 0.5] bucket, 0.5 s); the route's error ratio
    is 60 / 6000."""
    (tmp_path / "rules.yml").write_text(_rules().stdout)
    bucket = ('wideevents_event_duration_seconds_bucket{{service_name="s",model_name="m",'
              'model_version="v1",le="{le}"}}')
    buckets = "\n".join(f"      - series: '{bucket.format(le=le)}'\n        values: '0+{n}x20'"
                        for le, n in (("0.1", 90), ("0.5", 99), ("+Inf", 100)))
    series = {("v1", "false"): "0+5940x20", ("v1", "true"): "0+60x20"}
    body = f"""{buckets}
    promql_expr_test:
      - expr: model_version:wideevents_event_duration_seconds:p99_5m
        eval_time: 15m
        exp_samples:
          - labels: 'model_version:wideevents_event_duration_seconds:p99_5m{{service_name="s",model_name="m",model_version="v1"}}'
            value: 0.5
      - expr: service_route:wideevents_error_ratio:rate5m
        eval_time: 15m
        exp_samples:
          - labels: 'service_route:wideevents_error_ratio:rate5m{{service_name="s",http_route="/predict"}}'
            value: 0.01
"""
    (tmp_path / "test.yml").write_text(_unit_test(tmp_path, series, body))
    out = _promtool("test", "rules", "test.yml", cwd=tmp_path)
    assert 0 == out.returncode, out.stdout + out.stderr
