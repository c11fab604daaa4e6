"""``wideevents.integrations.clients`` with each library against real loopback backends:
aiohttp, bare urllib3, requests on urllib3 (counted once), propagation rules, the peer
limit, uninstrument(), and failures re-raised unchanged (issue 22)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import httpx
import pytest
import requests
import urllib3

import wideevents
from tests.integrations.backends import Backend, parse_traceparent, running
from tests.support.integrations import memory_pipeline
from tests.support.loopback_http import unused_ports
from wideevents import ConfigurationError
from wideevents.integrations import clients
from wideevents.sinks import MemorySink


@pytest.fixture
def sink() -> Iterator[MemorySink]:
    with memory_pipeline() as memory:
        try:
            yield memory
        finally:
            clients.uninstrument()


@pytest.fixture
def ok() -> Iterator[Backend]:
    with running("ok") as (backend,):
        yield backend


def _one_event(sink: MemorySink, call: Callable[[], Any], name: str = "work"
               ) -> tuple[dict[str, Any], Any]:
    with wideevents.event(name):
        result = call()
    assert wideevents.flush(5.0)
    return sink.events[-1], result


def _aiohttp_get(url: str) -> int:
    async def go() -> int:
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            await response.read()
            return response.status

    return asyncio.run(go())


def test_aiohttp_calls_are_recorded_and_propagated(sink: MemorySink, ok: Backend) -> None:
    """An aiohttp GET inside an event: counted under its peer, traceparent sent."""
    clients.instrument(peer_names={ok.hostport: "ok"})
    event, status = _one_event(sink, lambda: _aiohttp_get(ok.url + "/a"))
    assert 200 == status
    assert (1, 1, 0) == (event["http.client.count"], event["http.client.ok.count"],
                         event["http.client.ok.errors"])
    (traceparent,) = ok.traceparents()
    assert (event["trace.trace_id"], event["trace.span_id"]) == parse_traceparent(traceparent)


def test_aiohttp_failure_is_recorded_and_reraised(sink: MemorySink) -> None:
    """A refused aiohttp connection: an error for its peer, the same exception type raised."""
    port = unused_ports()[0]
    clients.instrument(peer_names={f"127.0.0.1:{port}": "gone"})
    with wideevents.event("work"), pytest.raises(aiohttp.ClientConnectorError):
        _aiohttp_get(f"http://127.0.0.1:{port}/")
    assert wideevents.flush(5.0)
    event = sink.events[-1]
    assert (1, 1, 1) == (event["http.client.count"], event["http.client.gone.count"],
                         event["http.client.errors"])


def test_bare_urllib3_calls_are_recorded(sink: MemorySink, ok: Backend) -> None:
    """urllib3's PoolManager and a pool's urlopen with positional headers: counted, traced, and
    the caller's headers dict is left as it was."""
    clients.instrument(peer_names={ok.hostport: "ok"})
    headers = {"X-Mine": "1"}

    def calls() -> list[int]:
        manager = urllib3.PoolManager()
        first = manager.request("GET", ok.url + "/pm", headers=headers).status
        pool = urllib3.HTTPConnectionPool("127.0.0.1", ok.port)
        second = pool.urlopen("GET", "/pool", None, headers).status
        return [first, second]

    event, statuses = _one_event(sink, calls)
    assert [200, 200] == statuses
    assert {"X-Mine": "1"} == headers
    assert (2, 2) == (event["http.client.count"], event["http.client.ok.count"])
    assert [(event["trace.trace_id"], event["trace.span_id"])] * 2 == [
        parse_traceparent(t) for t in ok.traceparents()]
    assert ["1", "1"] == [r.headers["x-mine"] for r in ok.received]


@pytest.mark.parametrize("libraries", [
    {"requests": True, "urllib3": True}, {"requests": True, "urllib3": False},
    {"requests": False, "urllib3": True}])
def test_a_requests_call_is_counted_and_propagated_once(
        sink: MemorySink, ok: Backend, libraries: dict[str, bool]) -> None:
    """requests runs on urllib3: with either or both instrumented, one call counts once and
    sends one traceparent header."""
    clients.instrument(httpx=False, aiohttp=False, peer_names={ok.hostport: "ok"}, **libraries)
    event, status = _one_event(sink, lambda: requests.get(ok.url + "/r", timeout=5).status_code)
    assert 200 == status
    assert (1, 1) == (event["http.client.count"], event["rollup.http.client.ok.count"])
    (received,) = ok.received
    assert (event["trace.trace_id"], event["trace.span_id"]) == parse_traceparent(
        received.headers["traceparent"])


def test_propagate_to_is_an_allow_list(sink: MemorySink) -> None:
    """Only hosts in propagate_to get traceparent (exact names and '*.' domains); every call
    is counted either way."""
    with running("ok", "ok") as (inside, outside):
        clients.instrument(propagate_to=["127.0.0.1", "*.svc.cluster.local"])
        with wideevents.event("work"):
            httpx.get(inside.url + "/in")
            httpx.get(f"http://localhost:{outside.port}/out")
        assert wideevents.flush(5.0)
        assert [False, True] == [t is None for t in
                                 inside.traceparents() + outside.traceparents()]
    assert 2 == sink.events[-1]["http.client.count"]


def test_a_traceparent_set_by_the_caller_is_kept(sink: MemorySink, ok: Backend) -> None:
    """A request that already carries traceparent is sent with the caller's value."""
    clients.instrument()
    mine = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    _one_event(sink, lambda: httpx.get(ok.url, headers={"traceparent": mine}))
    assert [mine] == ok.traceparents()


def test_calls_outside_an_event_are_left_alone(sink: MemorySink, ok: Backend) -> None:
    """No open event: no header added, nothing recorded, the call works."""
    clients.instrument()
    assert 200 == httpx.get(ok.url).status_code
    assert 200 == requests.get(ok.url, timeout=5).status_code
    assert wideevents.flush(5.0)
    assert ([None, None], []) == (ok.traceparents(), sink.events)


def test_failures_are_reraised_unchanged(sink: MemorySink) -> None:
    """A refused connection raises the same exception type and message as without
    instrumentation, and counts as an error of its peer."""
    port = unused_ports()[0]
    url = f"http://127.0.0.1:{port}/"

    def failure() -> tuple[type[BaseException], str]:
        with pytest.raises(requests.ConnectionError) as info:
            requests.get(url, timeout=5)
        return info.type, str(info.value).split(": ")[0]

    bare = failure()
    clients.instrument(peer_names={f"127.0.0.1:{port}": "gone"})
    event, instrumented = _one_event(sink, failure)
    assert bare == instrumented
    assert (1, 1, 1) == (event["http.client.count"], event["http.client.gone.errors"],
                         event["rollup.http.client.errors"])


def test_peers_past_twenty_are_counted_under_other(sink: MemorySink) -> None:
    """25 distinct peers in one event: 20 are named, the other 5 calls are under 'other'."""
    ports = unused_ports(25)
    clients.instrument(peer_names={f"127.0.0.1:{p}": f"p{i:02d}" for i, p in enumerate(ports)})

    def calls() -> None:
        with httpx.Client(timeout=5) as client:
            for port in ports:
                with pytest.raises(httpx.ConnectError):
                    client.get(f"http://127.0.0.1:{port}/")

    event, _ = _one_event(sink, calls)
    named = sorted(k for k in event if k.startswith("http.client.p") and k.endswith(".count"))
    assert [f"http.client.p{i:02d}.count" for i in range(20)] == named
    assert (5, 25, 25) == (event["http.client.other.count"], event["http.client.count"],
                           event["http.client.errors"])


def test_the_default_peer_name_is_the_host_with_safe_characters(
        sink: MemorySink, ok: Backend) -> None:
    """No peer_names: 'localhost' stays, '127.0.0.1' becomes '127_0_0_1'."""
    clients.instrument()
    event, _ = _one_event(sink, lambda: (httpx.get(ok.url),
                                         httpx.get(f"http://localhost:{ok.port}/")))
    assert (1, 1) == (event["http.client.127_0_0_1.count"], event["http.client.localhost.count"])


def test_a_call_after_its_event_finished_is_counted_late(sink: MemorySink, ok: Backend) -> None:
    """A call while a finished event is still current: the call works, the rollups are
    dropped and counted late, nothing raises."""
    clients.instrument()
    with wideevents.event("work") as ev:
        ev.finish()
        assert 200 == httpx.get(ok.url).status_code
    assert wideevents.flush(5.0)
    assert 12 == wideevents.stats()["fields"]["dropped"]["late"]  # 6 fields, event and root
    assert "http.client.count" not in sink.events[-1]


def test_instrument_is_idempotent_and_uninstrument_restores(sink: MemorySink, ok: Backend
                                                            ) -> None:
    """instrument() twice patches once (one count per call); uninstrument() puts the
    libraries' own functions back and calls are no longer recorded."""
    originals = (httpx.HTTPTransport.handle_request, requests.adapters.HTTPAdapter.send,
                 urllib3.connectionpool.HTTPConnectionPool.urlopen,
                 aiohttp.ClientSession.__init__)
    assert ["aiohttp", "httpx", "requests", "urllib3"] == clients.instrument()
    clients.instrument()
    event, _ = _one_event(sink, lambda: httpx.get(ok.url))
    assert 1 == event["http.client.count"]
    clients.uninstrument()
    assert originals == (httpx.HTTPTransport.handle_request, requests.adapters.HTTPAdapter.send,
                         urllib3.connectionpool.HTTPConnectionPool.urlopen,
                         aiohttp.ClientSession.__init__)
    assert [] == clients.instrumented()
    event, _ = _one_event(sink, lambda: httpx.get(ok.url))
    assert "http.client.count" not in event
    assert [True, False] == [t is not None for t in ok.traceparents()]


def test_concurrent_async_calls_add_up(sink: MemorySink, ok: Backend) -> None:
    """30 concurrent httpx calls from asyncio tasks of one event: all 30 are counted."""
    clients.instrument(peer_names={ok.hostport: "ok"})

    async def many() -> None:
        async with httpx.AsyncClient(timeout=10) as client:
            await asyncio.gather(*(client.get(ok.url) for _ in range(30)))

    event, _ = _one_event(sink, lambda: asyncio.run(many()))
    assert (30, 30, 30) == (event["http.client.count"], event["http.client.ok.count"],
                            event["rollup.http.client.ok.count"])


@pytest.mark.parametrize("kwargs,fix", [
    ({"peer_names": {"api.internal": "Vector-1"}}, "lower-case letters"),
    ({"peer_names": ["api.internal"]}, "dict of host"),
    ({"propagate_to": "api.internal"}, "list of hosts"),
    ({"propagate_to": ["*."]}, "'*.' and a domain"),
    ({"child_events": "yes"}, "pass True"),
])
def test_bad_options_fail_loudly(kwargs: dict[str, Any], fix: str) -> None:
    """A wrong option raises ConfigurationError saying how to fix it, and patches nothing."""
    with pytest.raises(ConfigurationError, match=fix):
        clients.instrument(**kwargs)
    assert [] == clients.instrumented()


def test_httpx_traceparent_in_any_case_is_kept_once(sink: MemorySink, ok: Backend) -> None:
    """httpx: a caller's "TraceParent" (header names are case-insensitive, RFC 9110 5.1) is
    sent as given and no second traceparent is added; without one, exactly one is added."""
    clients.instrument()
    mine = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with wideevents.event("work"):
        httpx.get(ok.url + "/mine", headers={"TraceParent": mine})
        httpx.get(ok.url + "/ours")
    sent = {r.path: r for r in ok.received}
    assert mine == sent["/mine"].headers["traceparent"]
    assert 1 == sum(1 for line in ok.raw_header_names("/ours") if line == "traceparent")


class _OtherHeaders:
    """An httpx.Headers of another layout: a plain mapping, no ``_list``."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = dict(values)


class _OtherHttpx:
    Headers = _OtherHeaders


def test_httpx_header_shortcut_is_used_only_when_it_works() -> None:
    """The direct Headers._list path is taken for the installed httpx (its layout checked
    through the public API), and refused for a Headers without that layout."""
    assert (True, False) == (clients._httpx_list_works(httpx),
                             clients._httpx_list_works(_OtherHttpx))
