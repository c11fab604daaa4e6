"""The mixer's three search backends as real HTTP services on loopback.

:class:`BackendServers` starts a child process running one uvicorn listening on one
ephemeral ``127.0.0.1`` port per backend; which backend answers is chosen by the port the
request arrived on, so each backend is a distinct ``host:port`` peer for the client
instrumentation. ``GET /search?region=R&key=K`` reproduces what the simulated backends did:

- it waits a gamma-distributed latency (the backend's ``mean_ms``/``shape``), six times
  longer for the vector backend in the incident region (the caller's own timeout, not the
  backend, turns a slow reply into a timeout);
- with the backend's ``error_rate`` it answers HTTP 500;
- otherwise 200 with ``{"hits": [[doc, score], ...]}`` (``candidates`` hits, scores from
  Beta(5, 2)).

Each reply is drawn from ``random.Random("<seed>:<backend>:<key>")``, ``key`` naming the
request (the mixer sends its query, tenant, region and user): a run's replies do not depend
on the order concurrent requests arrive in (only whether a slow reply beats the caller's
timeout depends on the machine). Nothing leaves loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import socket
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

CORPUS = 5_000  # documents: a hit is (doc id in [0, CORPUS), score)


@dataclass(frozen=True)
class Backend:
    """One search backend: its latency (Gamma with this mean and shape), error rate, hits
    per reply, and the timeout the mixer gives it."""

    name: str
    mean_ms: float
    shape: float
    error_rate: float
    candidates: int
    timeout_ms: float = 80.0


BACKENDS = (
    Backend("lexical", mean_ms=10.0, shape=3.0, error_rate=0.01, candidates=30),
    Backend("vector", mean_ms=22.0, shape=4.0, error_rate=0.005, candidates=40),
    Backend("knowledge_graph", mean_ms=15.0, shape=1.5, error_rate=0.03, candidates=15),
)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def loopback_listener() -> socket.socket:
    """A TCP socket bound to an ephemeral ``127.0.0.1`` port, for uvicorn's ``sockets=``.

    Created with ``IPPROTO_TCP`` explicitly: asyncio sets ``TCP_NODELAY`` on the connections
    it accepts only when the socket's ``proto`` is ``IPPROTO_TCP`` (CPython
    ``asyncio/base_events.py``, ``_set_nodelay``), and ``socket.socket()`` leaves it 0.
    Without it, a response written in two segments (headers, then body) waits for the
    client's delayed ACK (40 ms on Linux, ``tcp(7)``: Nagle's algorithm): 40 ms on every
    request, on loopback, which is what the demo's events would then measure."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
    except BaseException:
        sock.close()
        raise
    return sock


class _Behaviour:
    """One backend's latency, errors and hits: drawn from an RNG seeded by (seed, backend,
    request), so that a request gets the same reply whatever the order requests arrive in."""

    def __init__(self, backend: Backend, seed: int, slow_region: str | None) -> None:
        self.backend = backend
        self.seed = seed
        self.slow_region = slow_region if backend.name == "vector" else None

    def rng(self, request_key: str) -> random.Random:
        return random.Random(f"{self.seed}:{self.backend.name}:{request_key}")

    def latency_ms(self, rng: random.Random, region: str) -> float:
        b = self.backend
        latency = rng.gammavariate(b.shape, b.mean_ms / b.shape)
        return latency * 6.0 if region == self.slow_region else latency

    def reply(self, rng: random.Random) -> tuple[int, dict[str, Any]]:
        b = self.backend
        if rng.random() < b.error_rate:
            return 500, {"error": f"{b.name} backend failed"}
        return 200, {"hits": [[rng.randrange(CORPUS), rng.betavariate(5, 2)]
                              for _ in range(b.candidates)]}


def backends_app(by_port: dict[int, _Behaviour]) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    """A bare ASGI app: ``/search`` answered by the backend bound to the request's port."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan is off; nothing else is served
        server = scope.get("server") or ("", 0)
        behaviour = by_port.get(int(server[1]))
        if behaviour is None or scope["path"] != "/search":
            await _respond(send, 404, {"error": "not found"})
            return
        query = parse_qs(scope["query_string"].decode("latin-1"))
        region = query.get("region", [""])[0]
        rng = behaviour.rng(query.get("key", [""])[0])
        await asyncio.sleep(behaviour.latency_ms(rng, region) / 1000.0)
        status, body = behaviour.reply(rng)
        await _respond(send, status, body)

    return app


async def _respond(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})


def _serve(backends: Sequence[Backend], seed: int, slow_region: str | None) -> None:
    """In the child: bind one loopback port per backend, print ``{name: port}`` as one JSON
    line, then serve until stdin closes (the parent closed it, or died) or SIGTERM/SIGINT
    (uvicorn's own handlers); both shut down gracefully."""
    import uvicorn

    sockets: list[socket.socket] = []
    by_port: dict[int, _Behaviour] = {}
    ports: dict[str, int] = {}
    for backend in backends:
        sock = loopback_listener()
        sockets.append(sock)
        port = int(sock.getsockname()[1])
        by_port[port] = _Behaviour(backend, seed, slow_region)
        ports[backend.name] = port
    # backlog: the mixer opens up to (its concurrency x backends) connections at once.
    config = uvicorn.Config(backends_app(by_port), log_level="warning", access_log=False,
                            lifespan="off", backlog=256, timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    started = server.startup

    async def announce(sockets: list[socket.socket] | None = None) -> None:
        await started(sockets)
        print(json.dumps(ports), flush=True)  # after listen(): the parent may connect now

    server.startup = announce  # type: ignore[method-assign]

    def watch_parent() -> None:
        # stdin is the parent's pipe: at EOF (it closed it, or it died) shut down gracefully.
        try:
            while sys.stdin.buffer.read(4096):
                pass
        finally:
            server.should_exit = True

    threading.Thread(target=watch_parent, name="demo-backends-parent", daemon=True).start()
    try:
        server.run(sockets=sockets)
    finally:
        for sock in sockets:
            sock.close()


class BackendServers:
    """The backends served by a child process (``python -m wideevents._demo.backends``),
    one loopback port each: a process of their own, so that their CPU does not add to the
    mixer's latencies (the GIL) and a timeout is the backend's, not the mixer's own load.

    ``with BackendServers(seed, slow_region) as servers``: ``servers.urls`` maps backend
    name -> base URL, ``servers.peer_names`` maps ``127.0.0.1:<port>`` -> name (for
    ``clients.instrument``). Leaving the block closes the child's stdin, its signal to shut
    down gracefully (then SIGTERM, then SIGKILL, 10 s apart) and reaps it; a parent that dies
    closes that pipe too, so the child never outlives it for long.
    """

    def __init__(self, seed: int, slow_region: str | None) -> None:
        self.args = [sys.executable, "-m", "wideevents._demo.backends", "--seed", str(seed)]
        if slow_region:
            self.args += ["--slow-region", slow_region]
        self.proc: subprocess.Popen[str] | None = None
        self.urls: dict[str, str] = {}
        self.peer_names: dict[str, str] = {}

    def __enter__(self) -> BackendServers:
        self.proc = subprocess.Popen(self.args, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        try:
            ports = self._read_ports(self.proc, timeout=20.0)
        except BaseException:
            self.__exit__()
            raise
        for name, port in ports.items():
            self.urls[name] = f"http://127.0.0.1:{port}"
            self.peer_names[f"127.0.0.1:{port}"] = name
        return self

    @staticmethod
    def _read_ports(proc: subprocess.Popen[str], timeout: float) -> dict[str, int]:
        box: list[str] = []
        reader = threading.Thread(target=lambda: box.append(proc.stdout.readline()
                                                            if proc.stdout else ""),
                                  name="demo-backends-ports", daemon=True)
        reader.start()
        reader.join(timeout)
        line = box[0] if box else ""
        if not line:
            raise RuntimeError(f"the demo's search backends did not start within {timeout:.0f} s"
                               f" (exit status {proc.poll()})")
        ports: dict[str, int] = {str(k): int(v) for k, v in json.loads(line).items()}
        return ports

    def __exit__(self, *exc: object) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.stdin:
            proc.stdin.close()  # the child's signal to shut down gracefully (exit status 0)
        for stop in (None, proc.terminate, proc.kill):
            if stop is not None:
                stop()
            try:
                proc.wait(10.0)
                break
            except subprocess.TimeoutExpired:
                continue
        if proc.stdout:
            proc.stdout.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m wideevents._demo.backends",
                                     description="the search mixer demo's backends")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--slow-region", default=None)
    args = parser.parse_args(argv)
    _serve(BACKENDS, args.seed, args.slow_region)
    return 0


if __name__ == "__main__":
    sys.exit(main())
