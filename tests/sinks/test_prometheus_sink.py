"""PrometheusSink: labels from the events' fields, weights from their sample rates, bounded
cardinality, configuration errors that say how to fix them. Real pipelines, real
prometheus_client registries, exposition read back with the client's own parser."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter

import wideevents
from tests.sinks.prometheus_support import Samples, record, samples, value
from tests.support.hostile import Hostile
from tests.support.reliability import child_env, equation_holds
from wideevents import ConfigurationError
from wideevents.sinks import MemorySink, PrometheusSink

ROOT = Path(__file__).resolve().parent.parent.parent
DEFAULT_LABEL_NAMES = ("error", "http_response_status_code", "http_route", "model_name",
                       "model_version", "name", "service_name")


@contextmanager
def pipeline(sink: PrometheusSink, **kwargs: Any) -> Iterator[MemorySink]:
    """A configured pipeline delivering to ``sink`` and a MemorySink (the events as kept)."""
    memory = MemorySink()
    wideevents.configure(service_name="ranker", sinks=[sink, memory], **kwargs)
    yield memory  # the autouse fixture of tests/conftest.py shuts the pipeline down


def emit(*events: tuple[str, dict[str, Any]]) -> None:
    for name, fields in events:
        with wideevents.event(name) as ev:
            ev.add(fields)
    assert wideevents.flush(timeout=30.0)


def series(found: Samples, name: str) -> list[dict[str, str]]:
    return [dict(labels) for (n, labels), _ in found.items() if n == name]


def test_default_labels_are_the_fields_of_the_same_dotted_name() -> None:
    """Each default label holds the event field of the same dotted name."""
    registry = CollectorRegistry()
    with pipeline(PrometheusSink(registry=registry)):
        emit(("predict", {"http.route": "/predict", "http.response.status_code": 200,
                          "model.name": "ranker-model", "model.version": "v3",
                          "user.id": "u-1"}))
    expected = {"name": "predict", "service_name": "ranker", "http_route": "/predict",
                "http_response_status_code": "200", "model_name": "ranker-model",
                "model_version": "v3", "error": "false"}
    found = samples(registry)
    assert [expected] == series(found, "wideevents_events_total")
    assert 1.0 == value(found, "wideevents_events_total", **expected)
    assert 1.0 == value(found, "wideevents_event_duration_seconds_count", **expected)


def test_absent_fields_are_empty_and_a_failed_event_has_error_true() -> None:
    """A field the event lacks is the empty label; an event whose block raised has
    error="true"."""
    registry = CollectorRegistry()
    with pipeline(PrometheusSink(registry=registry)):
        with pytest.raises(ValueError):
            with wideevents.event("train"):
                raise ValueError("boom")
        assert wideevents.flush(timeout=30.0)
    assert [{"name": "train", "service_name": "ranker", "http_route": "",
             "http_response_status_code": "", "model_name": "", "model_version": "",
             "error": "true"}] == series(samples(registry), "wideevents_events_total")


def test_labels_replace_the_default_list_and_nothing_else_is_a_label() -> None:
    """labels=[...] is the whole label set (an allow-list): other fields never appear."""
    registry = CollectorRegistry()
    with pipeline(PrometheusSink(registry=registry, labels=["model.version", "user.tier"])):
        emit(("predict", {"model.version": "v1", "user.tier": "pro", "user.id": "u-secret-7",
                          "prediction.score": 0.5}))
    found = samples(registry)
    assert [{"model_version": "v1", "user_tier": "pro"}] == series(
        found, "wideevents_events_total")
    assert all(set(labels) <= {"model_version", "user_tier", "le"}
               for (_, ls) in found for labels in [dict(ls)])
    assert "u-secret-7" not in repr(found)


def test_sample_rates_weight_counters_and_histograms() -> None:
    """Kept with sample rate 4, an event counts 4 times: the counter, each histogram's
    buckets and count by 4, its sum by 4 x the value; sampled-out events are not seen."""
    registry = CollectorRegistry()
    sink = PrometheusSink(registry=registry, labels=["name"],
                          histograms={"timing.inference_ms": [10, 50, 100]})
    with pipeline(sink, sampler=lambda ev: 4 if ev.get("keep") else 0) as memory:
        emit(*[("predict", {"keep": True, "timing.inference_ms": ms})
               for ms in (12.5, 40.0, 250.0)],
             *[("predict", {"keep": False, "timing.inference_ms": 1.0}) for _ in range(5)])
    assert [4, 4, 4] == [e["samplerate"] for e in memory.events]
    found = samples(registry)
    assert 12.0 == value(found, "wideevents_events_total", name="predict")
    assert [0.0, 8.0, 8.0, 12.0] == [
        value(found, "wideevents_timing_inference_ms_bucket", le=le)
        for le in ("10.0", "50.0", "100.0", "+Inf")]
    assert 12.0 == value(found, "wideevents_timing_inference_ms_count")
    assert 4 * (12.5 + 40.0 + 250.0) == value(found, "wideevents_timing_inference_ms_sum")
    assert 12.0 == value(found, "wideevents_event_duration_seconds_count")


def test_an_events_own_sample_rate_is_its_weight() -> None:
    """Without a sampler, an event's samplerate field (set by an upstream sampler) is its
    weight; a missing one counts 1."""
    registry = CollectorRegistry()
    with pipeline(PrometheusSink(registry=registry, labels=["model.version"])):
        emit(("predict", {"model.version": "a", "samplerate": 10}),
             ("predict", {"model.version": "a", "samplerate": 3}),
             ("predict", {"model.version": "b"}))
    found = samples(registry)
    assert (13.0, 1.0) == (value(found, "wideevents_events_total", model_version="a"),
                           value(found, "wideevents_events_total", model_version="b"))


def test_prediction_score_has_a_histogram_by_default() -> None:
    """prediction.score, when present, is observed into the score buckets 0.1 ... 1.0."""
    registry = CollectorRegistry()
    with pipeline(PrometheusSink(registry=registry, labels=[])):
        emit(*[("predict", {"prediction.score": s}) for s in (0.05, 0.55, 0.97)],
             ("predict", {}))
    found = samples(registry)
    assert ["0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9", "0.95", "0.99",
            "1.0", "+Inf"] == [dict(ls)["le"] for (n, ls) in found
                               if n == "wideevents_prediction_score_bucket"]
    assert [1.0, 1.0, 2.0, 3.0, 3.0] == [
        value(found, "wideevents_prediction_score_bucket", le=le)
        for le in ("0.1", "0.5", "0.6", "0.99", "+Inf")]
    assert (4.0, 3.0) == (value(found, "wideevents_events_total"),
                          value(found, "wideevents_prediction_score_count"))


def test_histogram_with_none_uses_the_clients_default_buckets() -> None:
    """histograms={"field": None}: prometheus_client's default buckets (.005 ... 10)."""
    registry = CollectorRegistry()
    with pipeline(PrometheusSink(registry=registry, labels=[],
                                 histograms={"timing.inference_ms": None})):
        emit(("predict", {"timing.inference_ms": 0.3}))
    les = [dict(ls)["le"] for (n, ls) in samples(registry)
           if n == "wideevents_timing_inference_ms_bucket"]
    assert ["0.005", "0.01", "0.025", "0.05", "0.075", "0.1", "0.25", "0.5", "0.75", "1.0",
            "2.5", "5.0", "7.5", "10.0", "+Inf"] == les


def test_values_that_are_not_numbers_are_skipped_and_counted() -> None:
    """A histogram field holding text, a bool or a list is not observed (the event is
    still counted) and is counted in the sink's stats()["skipped"]."""
    registry = CollectorRegistry()
    sink = PrometheusSink(registry=registry, labels=[])
    with pipeline(sink):
        emit(*[("predict", {"prediction.score": v}) for v in ("high", True, [0.1, 0.2])])
    found = samples(registry)
    assert (3.0, 0.0) == (value(found, "wideevents_events_total"),
                          value(found, "wideevents_prediction_score_count"))
    assert {"prediction.score": 3} == sink.stats()["skipped"]


def test_past_max_series_new_combinations_share_one_overflow_series() -> None:
    """10,000 distinct user ids with max_series=50: 50 series plus one whose labels are all
    __other__, holding the other 9,950 events, counted in stats(); the events keep their ids."""
    registry = CollectorRegistry()
    sink = PrometheusSink(registry=registry, labels=["name", "user.id"], max_series=50)
    with pipeline(sink, queue_size=20_000) as memory:
        emit(*[("predict", {"user.id": f"user-{i}"}) for i in range(10_000)])
        stats = wideevents.stats()
    found = samples(registry)
    counters = series(found, "wideevents_events_total")
    assert 51 == len(counters)
    assert 51 == len(series(found, "wideevents_event_duration_seconds_count"))
    assert 9950.0 == value(found, "wideevents_events_total", name="__other__",
                           user_id="__other__")
    assert 10_000.0 == sum(v for (n, _), v in found.items() if n == "wideevents_events_total")
    assert 9950 == stats["fields"]["dropped"]["series_limit"]
    assert (50, 9950) == (sink.stats()["series"], sink.stats()["overflow"])
    assert {} == equation_holds(stats)
    assert 10_000 == len({e["user.id"] for e in memory.events})


def test_label_values_longer_than_128_characters_are_cut() -> None:
    """A 300-character value becomes its first 128 characters (two values that differ only
    after that share a series), counted per value in stats()."""
    registry = CollectorRegistry()
    with pipeline(PrometheusSink(registry=registry, labels=["model.version"])):
        emit(("predict", {"model.version": "x" * 300}),
             ("predict", {"model.version": "x" * 200 + "y"}))
        stats = wideevents.stats()
    found = samples(registry)
    assert [{"model_version": "x" * 128}] == series(found, "wideevents_events_total")
    assert 2.0 == value(found, "wideevents_events_total")
    assert 2 == stats["fields"]["dropped"]["label_too_long"]


@pytest.mark.parametrize(("field_value", "label"), [
    (200, "200"), (200.0, "200"), (1.5, "1.5"), (True, "true"), (False, "false"),
    (None, ""), ("", ""), (["a", "b"], '["a","b"]'), ({"k": 1}, '{"k":1}'),
    (-7, "-7"), ("naïve ☃", "naïve ☃"),
])
def test_label_text_of_field_values(field_value: Any, label: str) -> None:
    """Numbers as written (200.0 is "200"), bools as true/false, null as "", lists and
    objects as compact JSON."""
    registry = CollectorRegistry()
    sink = PrometheusSink(registry=registry, labels=["http.response.status_code"])
    sink.export([record({"http.response.status_code": field_value})])
    assert [{"http_response_status_code": label}] == series(
        samples(registry), "wideevents_events_total")


@pytest.mark.parametrize(("field_value", "label"), [
    (True, "true"), (False, "false"), ("absent", "false"), (None, "false"), ("true", "true"),
    ("TRUE", "true"), ("no", "false"), (1, "true"), (0, "false"), ([1], "false"),
])
def test_error_label_is_true_or_false(field_value: Any, label: str) -> None:
    """The error label is "true" for True, a non-zero number or the text true/1/yes, and
    "false" otherwise (absent included)."""
    registry = CollectorRegistry()
    sink = PrometheusSink(registry=registry, labels=["error"])
    sink.export([record({} if field_value == "absent" else {"error": field_value})])
    assert [{"error": label}] == series(samples(registry), "wideevents_events_total")


def test_no_labels_is_one_series() -> None:
    """labels=[]: one counter series and one histogram series for every event."""
    registry = CollectorRegistry()
    sink = PrometheusSink(registry=registry, labels=[])
    sink.export([record({"name": f"n{i}", "duration_ms": 1.0}) for i in range(5)])
    found = samples(registry)
    assert [{}] == series(found, "wideevents_events_total")
    assert 5.0 == value(found, "wideevents_event_duration_seconds_count")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"labels": "model.version"}, "labels='model.version': use a list of event field names"),
    ({"labels": ["a.b", "a_b"]}, "would both be the label 'a_b'"),
    ({"labels": ["le"]}, "which Prometheus reserves"),
    ({"labels": ["__name__"]}, "which Prometheus reserves"),
    ({"labels": [""]}, "is not an event field name"),
    ({"labels": [3]}, "is not an event field name"),
    ({"histograms": ["x"]}, "use a dict of field -> bucket bounds"),
    ({"histograms": {"x": [3, 2]}}, "must be finite and strictly increasing"),
    ({"histograms": {"x": [1.0, float("nan")]}}, "must be finite and strictly increasing"),
    ({"histograms": {"x": "1,2"}}, "use a list of increasing upper bounds"),
    ({"histograms": {"events": None}}, "which is taken"),
    ({"buckets": []}, "use 1 to 64 finite bucket bounds"),
    ({"buckets": [True, 2]}, "is not a number"),
    ({"max_series": 0}, "max_series=0: use an integer from 1 to 1,000,000"),
    ({"max_series": True}, "max_series=True: use an integer"),
    ({"max_series": 1.5}, "max_series=1.5: use an integer"),
    ({"namespace": "a-b"}, "namespace='a-b': use a Prometheus metric name prefix"),
    ({"namespace": "__x"}, "namespace='__x': use a Prometheus metric name prefix"),
    ({"namespace": ""}, "namespace='': use a Prometheus metric name prefix"),
    ({"registry": object()}, "use a prometheus_client.CollectorRegistry"),
])
def test_configuration_errors_say_how_to_fix_them(kwargs: dict[str, Any], message: str) -> None:
    """Each wrong setting raises ConfigurationError when the sink is built, naming it."""
    kwargs.setdefault("registry", CollectorRegistry())
    with pytest.raises(ConfigurationError) as info:
        PrometheusSink(**kwargs)
    assert message in str(info.value)


def test_same_settings_continue_the_same_metrics_across_configure() -> None:
    """configure() again with a new sink of the same settings in the same registry: the
    counts continue (no duplicate registration); other settings under the same names fail."""
    registry = CollectorRegistry()
    with pipeline(PrometheusSink(registry=registry, labels=["name"])):
        emit(("predict", {}), ("predict", {}))
    with pipeline(PrometheusSink(registry=registry, labels=["name"])):
        emit(("predict", {}))
    assert 3.0 == value(samples(registry), "wideevents_events_total", name="predict")
    with pytest.raises(ConfigurationError) as info:
        PrometheusSink(registry=registry, labels=["name", "model.version"])
    assert "is already measured in this registry with other labels" in str(info.value)


def test_a_metric_of_the_same_name_in_the_registry_is_a_configuration_error() -> None:
    """The application's own wideevents_events_total: the sink refuses, suggests
    namespace=, and registers nothing (another namespace then works)."""
    registry = CollectorRegistry()
    Counter("wideevents_events", "the application's own", registry=registry)
    with pytest.raises(ConfigurationError) as info:
        PrometheusSink(registry=registry)
    assert "another namespace=" in str(info.value)
    sink = PrometheusSink(registry=registry, namespace="ranker", labels=[])
    sink.export([record({"duration_ms": 2.0})])
    found = samples(registry)
    assert (1.0, 0.0) == (value(found, "ranker_events_total"),
                          value(found, "wideevents_events_total"))


def test_hostile_values_never_raise_out_of_export() -> None:
    """Objects whose every hook raises, as label values, sample rate and histogram values
    (a sink used directly): the event is counted once with weight 1 and label text naming
    the class; the values that are not numbers are skipped and counted."""
    registry = CollectorRegistry()
    sink = PrometheusSink(registry=registry, labels=["name", "model.version"])
    sink.export([record({"name": Hostile(), "model.version": "v1", "samplerate": Hostile(),
                         "duration_ms": Hostile(), "prediction.score": Hostile()})])
    found = samples(registry)
    assert 1.0 == value(found, "wideevents_events_total", name="<unrepresentable Hostile>")
    stats = sink.stats()
    assert (1, {}, {"duration_ms": 1, "prediction.score": 1}) == (
        stats["sent"], stats["dropped"], stats["skipped"])
    assert sink.flush(1.0) and sink.close(1.0)


def test_missing_extra_is_named_with_the_install_command() -> None:
    """Without prometheus-client, building the sink (or WIDEEVENTS_SINK=prometheus) raises
    ConfigurationError naming the extra and the pip command; importing the name works."""
    code = (
        "import sys\n"
        "sys.modules['prometheus_client'] = None  # as if not installed\n"
        "import wideevents\n"
        "from wideevents.sinks import PrometheusSink\n"
        "for build in (PrometheusSink, lambda: wideevents.configure(sinks='prometheus')):\n"
        "    try:\n"
        "        build()\n"
        "    except wideevents.ConfigurationError as exc:\n"
        "        print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=child_env(), cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert 0 == out.returncode, out.stderr
    lines = out.stdout.splitlines()
    assert 2 == len(lines), out.stdout
    for line in lines:
        assert "needs the 'prometheus' extra" in line
        assert "pip install 'wideevents[prometheus]'" in line


def test_wideevents_sink_prometheus_selects_the_sink() -> None:
    """WIDEEVENTS_SINK=prometheus builds PrometheusSink() on the client's default registry;
    'prometheus:...' is refused without echoing what follows the colon."""
    code = (
        "import wideevents\n"
        "from prometheus_client import REGISTRY, generate_latest\n"
        "wideevents.configure(service_name='svc')\n"
        "with wideevents.event('predict') as ev:\n"
        "    ev.add({'model.version': 'v9'})\n"
        "wideevents.flush()\n"
        "print(sorted(wideevents.stats()['sinks']))\n"
        "print([l for l in generate_latest(REGISTRY).decode().splitlines()\n"
        "       if l.startswith('wideevents_events_total')])\n"
        "try:\n"
        "    wideevents.configure(sinks='prometheus:s3cr3t-9464')\n"
        "except wideevents.ConfigurationError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=child_env(WIDEEVENTS_SINK="prometheus"),
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert 0 == out.returncode, out.stderr
    sinks, lines, error = out.stdout.splitlines()
    assert "['prometheus']" == sinks
    assert ("['wideevents_events_total{error=\"false\",http_response_status_code=\"\","
            "http_route=\"\",model_name=\"\",model_version=\"v9\",name=\"predict\","
            "service_name=\"svc\"} 1.0']") == lines
    assert "sink 'prometheus' takes nothing after ':'" in error
    assert "s3cr3t" not in out.stdout + out.stderr


def test_a_lone_surrogate_in_a_label_value_does_not_break_the_scrape_page() -> None:
    """A record handed to the sink directly with a lone surrogate (not UTF-8 encodable)
    in a label value: the label holds U+FFFD instead, and the registry's exposition, the
    application's own metrics included, still renders."""
    registry = CollectorRegistry()
    Counter("app_requests", "the application's own", registry=registry).inc()
    sink = PrometheusSink(registry=registry, labels=["model.version"])
    sink.export([record({"model.version": "v1"}), record({"model.version": "a\udc80b"}),
                 record({"model.version": "a\udc80b"})])
    found = samples(registry)
    assert (1.0, 2.0, 1.0) == (value(found, "wideevents_events_total", model_version="v1"),
                               value(found, "wideevents_events_total", model_version="a\ufffdb"),
                               value(found, "app_requests_total"))
