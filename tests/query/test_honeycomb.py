"""HoneycombQueryClient against a loopback server implementing the Query Data API; query_url."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.query import KEY, ROWS, SERIES, FakeHoneycomb
from wideevents._errors import ConfigurationError
from wideevents.query import HoneycombQueryClient, Query, QueryError, QueryTimeout, query_url


@pytest.fixture
def fake() -> Iterator[FakeHoneycomb]:
    """A fresh loopback Honeycomb per test."""
    server = FakeHoneycomb()
    yield server
    server.close()


class Sleeps:
    """Records requested sleeps without sleeping (the client's injected ``sleep``)."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


QUERY = Query(calculations=["COUNT", "P99(duration_ms)"], breakdowns=["model.version"],
              time_range=3600, granularity=60, limit=50)  # fmt: skip


def test_run_creates_query_result_and_polls(fake: FakeHoneycomb) -> None:
    """The spec is posted as-is, a result is requested, polled until complete, and returned."""
    sleeps = Sleeps()
    client = HoneycombQueryClient(KEY, fake.url, poll_interval=0.1, sleep=sleeps)
    result = client.run(QUERY, "my dataset")
    expected_requests = [
        ("POST", "/1/queries/my%20dataset", QUERY.to_json()),
        (
            "POST",
            "/1/query_results/my%20dataset",
            {"query_id": "q-1", "disable_series": False, "limit": 50},
        ),
        ("GET", "/1/query_results/my%20dataset/r-1", None),
        ("GET", "/1/query_results/my%20dataset/r-1", None),
    ]
    assert (expected_requests, ROWS, SERIES, True, [0.1, 0.2]) == (
        fake.requests,
        result.rows,
        result.series,
        result.complete,
        sleeps.calls,
    )
    assert "https://ui.honeycomb.io/t/datasets/d/result/r-1" == result.query_url


def test_backs_off_on_429_and_5xx(fake: FakeHoneycomb) -> None:
    """429 (no Retry-After) and 503 replies are retried with growing, jittered delays."""
    fake.throttle, fake.fail_5xx, fake.polls_until_complete = 3, 1, 1
    sleeps = Sleeps()
    client = HoneycombQueryClient(KEY, fake.url, poll_interval=1.0, max_backoff=3.0, sleep=sleeps)
    result = client.run(Query(), "d")
    bases = [1.0, 1.0, 2.0, 3.0]  # 503 on create query, then three 429s on the result
    assert ROWS == result.rows and result.series is None
    retries, polls = sleeps.calls[:4], sleeps.calls[4:]
    assert ([True] * 4, [1.0]) == (
        [b <= s <= b * 1.5 for b, s in zip(bases, retries, strict=True)],
        polls,
    )


def test_timeout_is_clean(fake: FakeHoneycomb) -> None:
    """A result that never completes raises QueryTimeout (also a TimeoutError), without the key."""
    fake.never_complete = True
    client = HoneycombQueryClient(KEY, fake.url, timeout=0.3, poll_interval=0.05)
    with pytest.raises(QueryTimeout) as info:
        client.run(Query(), "d")
    assert (True, False) == (isinstance(info.value, TimeoutError), KEY in str(info.value))


def test_rejected_key(fake: FakeHoneycomb) -> None:
    """A 401 is a QueryError with the status and a hint, never the key itself."""
    client = HoneycombQueryClient("hcaik_wrong_key", fake.url)
    with pytest.raises(QueryError) as info:
        client.run(Query(), "d")
    message = str(info.value)
    assert (401, True, False) == (
        info.value.status,
        "HONEYCOMB_API_KEY" in message,
        "hcaik_wrong_key" in message,
    )


def test_key_from_environment_and_hidden(
    fake: FakeHoneycomb, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The key and host come from the environment; repr never shows the key."""
    monkeypatch.setenv("HONEYCOMB_API_KEY", KEY)
    monkeypatch.setenv("HONEYCOMB_API_HOST", fake.url)
    fake.polls_until_complete = 1
    client = HoneycombQueryClient()
    assert (ROWS, False, fake.url) == (
        client.run(Query(), "d").rows,
        KEY in repr(client),
        client.api_host,
    )


def test_configuration_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    """No key, a bad host or a bad granularity for Honeycomb's default range: ConfigurationError."""
    monkeypatch.delenv("HONEYCOMB_API_KEY", raising=False)
    messages = []
    for build in (
        lambda: HoneycombQueryClient(),
        lambda: HoneycombQueryClient(KEY, "ftp://example.com"),
        lambda: HoneycombQueryClient(KEY, "http://127.0.0.1:9").run(Query(granularity=1), "d"),
    ):
        with pytest.raises(ConfigurationError) as info:
            build()
        messages.append(str(info.value))
    assert ["HONEYCOMB_API_KEY", "not an http(s) URL", "out of range for a 7200s window"] == [
        next(
            w
            for w in ("HONEYCOMB_API_KEY", "not an http(s) URL", "out of range for a 7200s window")
            if w in m
        )
        for m in messages
    ]


def _expected_link(base: str, spec: dict[str, Any]) -> str:
    return base + "?query=" + urllib.parse.quote(json.dumps(spec, separators=(",", ":")), safe="")


def test_query_url() -> None:
    """Query template links for environments, Classic, and the EU instance."""
    spec = QUERY.to_json()
    expected = [
        _expected_link("https://ui.honeycomb.io/acme/environments/prod/datasets/ranker", spec),
        _expected_link("https://ui.honeycomb.io/acme/datasets/ranker", spec),
        _expected_link("https://ui.eu1.honeycomb.io/acme/environments/prod/datasets/ranker", spec),
    ]
    actual = [
        query_url(QUERY, team="acme", environment="prod", dataset="ranker"),
        query_url(spec, team="acme", dataset="ranker"),
        query_url(
            QUERY,
            team="acme",
            environment="prod",
            dataset="ranker",
            api_host="https://api.eu1.honeycomb.io",
        ),
    ]
    assert expected == actual
    decoded = urllib.parse.parse_qs(urllib.parse.urlsplit(actual[0]).query)["query"][0]
    assert QUERY == Query.from_json(decoded)
