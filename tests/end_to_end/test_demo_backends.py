"""The demo's real search backends (wideevents/_demo/backends.py) and its loopback servers:
real uvicorn, real sockets, real child process; the mixer's calls recorded by the client
instrumentation (wideevents/integrations/clients.py)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from wideevents._demo.backends import BackendServers
from wideevents._demo.mixer import BACKENDS, Incidents, Mixer, create_app
from wideevents._demo.run import _Server
from wideevents.integrations import clients
from wideevents.testing import capture_events


async def _two_writes(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An ASGI app answering in two segments: the headers, then the body."""
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


def _server_nodelay(server: _Server) -> list[int]:
    """TCP_NODELAY of each connection the uvicorn server holds open now."""
    return sorted(proto.transport.get_extra_info("socket").getsockopt(
        socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
        for proto in server.server.server_state.connections)


def test_demo_server_connections_have_nodelay() -> None:
    """The connections the demo's uvicorn accepts have TCP_NODELAY set: without it, a reply
    written in two segments waits for the client's delayed ACK, 40 ms a request on Linux
    (tcp(7); asyncio sets it only for IPPROTO_TCP sockets: asyncio/base_events.py
    _set_nodelay)."""
    with _Server(_two_writes) as server, httpx.Client() as client:
        for _ in range(3):
            assert 200 == client.get(f"http://127.0.0.1:{server.port}/").status_code
        assert [1] == [int(v) for v in _server_nodelay(server)]


def test_vector_backend_is_six_times_slower_in_the_incident_region() -> None:
    """Same request, same draw: the vector backend's latency is 6x in the slow region and
    unchanged elsewhere; the other backends ignore the region (the mixer's incident)."""
    from wideevents._demo.backends import _Behaviour

    vector, lexical = _Behaviour(BACKENDS[1], 7, "ap-south-1"), _Behaviour(BACKENDS[0], 7,
                                                                         "ap-south-1")
    normal = vector.latency_ms(vector.rng("k"), "us-east-1")
    assert 6.0 * normal == pytest.approx(vector.latency_ms(vector.rng("k"), "ap-south-1"))
    assert lexical.latency_ms(lexical.rng("k"), "ap-south-1") == lexical.latency_ms(
        lexical.rng("k"), "us-east-1")


def test_a_request_gets_the_same_reply_whatever_the_arrival_order() -> None:
    """A backend's reply is drawn from (seed, backend, request key): the same key gives the
    same latency and hits after any other requests; another seed gives others."""
    from wideevents._demo.backends import _Behaviour

    def draw(b: _Behaviour, key: str) -> tuple[float, tuple[int, dict[str, Any]]]:
        rng = b.rng(key)
        return b.latency_ms(rng, "us-east-1"), b.reply(rng)

    first = _Behaviour(BACKENDS[0], 7, None)
    alone = draw(first, "red shoes|acme|us-east-1|3")
    for other in ("a", "b", "c"):
        draw(first, other)
    assert alone == draw(first, "red shoes|acme|us-east-1|3")
    assert alone != draw(_Behaviour(BACKENDS[0], 8, None), "red shoes|acme|us-east-1|3")


@pytest.fixture()
def backends() -> Iterator[BackendServers]:
    with BackendServers(7, "ap-south-1") as servers:
        yield servers


def test_backends_answer_hits_as_json_on_their_own_ports(backends: BackendServers) -> None:
    """Each backend, on its own loopback port, answers /search with its number of hits
    (doc id, score in [0, 1]) or an HTTP 500 (its error rate)."""
    assert ({b.name for b in BACKENDS}, 3) == (set(backends.urls), len(backends.peer_names))
    with httpx.Client(timeout=10.0) as client:
        for backend in BACKENDS:
            r = client.get(f"{backends.urls[backend.name]}/search",
                           params={"q": "red shoes", "region": "us-east-1"})
            if r.status_code == 500:
                continue  # its error rate: what the mixer records as status "error"
            hits = r.json()["hits"]
            assert (200, backend.candidates) == (r.status_code, len(hits))
            assert all(isinstance(d, int) and 0.0 <= s <= 1.0 for d, s in hits)


def test_backends_child_stops_cleanly_and_frees_its_ports() -> None:
    """Leaving the block stops the backends' child process (uvicorn's graceful SIGTERM
    shutdown: exit status 0) and nothing listens on their ports any more."""
    with BackendServers(7, None) as servers:
        proc = servers.proc
        ports = [int(url.rsplit(":", 1)[1]) for url in servers.urls.values()]
        assert proc is not None and proc.poll() is None
    assert 0 == proc.returncode
    for port in ports:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5.0).close()


def _search(port: int, region: str, n: int) -> list[int]:
    async def go() -> list[int]:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30.0) as c:
            return [(await c.get("/search", params={"q": "red shoes", "region": region,
                                                    "user": user})).status_code
                    for user in range(1, n + 1)]  # distinct requests: distinct draws
    return asyncio.run(go())


def test_mixer_event_records_each_backend_call_through_the_client_instrumentation(
        backends: BackendServers) -> None:
    """One /search event carries http.client.<backend>.count = 1 for each of the three
    backends (named by peer_names), beside ev.retrieval's fields for the same calls; in the
    slow region the vector call is a real httpx timeout: status "timeout" and one
    http.client.vector.error."""
    was = clients.instrumented()
    clients.instrument(peer_names=backends.peer_names)
    try:
        mixer = Mixer(seed=7, incidents=Incidents(slow_vector_region="ap-south-1"))
        mixer.bind_backends(backends.urls)
        with capture_events() as events, _Server(create_app(mixer), lifespan="on") as server:
            assert [200] * 3 == _search(server.port, "us-east-1", 3)
            assert [200] * 12 == _search(server.port, "ap-south-1", 12)
    finally:
        if not was:
            clients.uninstrument()
    searches = [e for e in events if e["name"] == "GET /search"]
    assert 15 == len(searches)
    for e in searches:
        assert (3, 1, 1, 1) == (e["http.client.count"], e["http.client.lexical.count"],
                                e["http.client.vector.count"],
                                e["http.client.knowledge_graph.count"])
        for b in BACKENDS:
            status = e[f"retrieval.{b.name}.status"]
            assert (status != "ok") == (e[f"http.client.{b.name}.errors"] == 1), e
            assert (status == "ok") == (e[f"retrieval.{b.name}.candidates"] == b.candidates)
    slow = [e["retrieval.vector.status"] for e in searches if e["slice.region"] == "ap-south-1"]
    # Each slow-region vector call outlasts the 80 ms timeout with probability ~0.87
    # (Gamma(4, 33 ms)): at least 4 of 12 is a sanity bound, not a timing race.
    assert slow.count("timeout") >= 4, slow
