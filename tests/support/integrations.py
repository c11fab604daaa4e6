"""Shared helpers for the integration tests: a memory pipeline and real loopback servers."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

import wideevents
from wideevents._core import runtime
from wideevents.sinks import MemorySink


@contextmanager
def memory_pipeline(**kwargs: Any) -> Iterator[MemorySink]:
    """Install a configured pipeline with a MemorySink; afterwards fall back to the default."""
    sink = MemorySink()
    pipeline = wideevents.configure(service_name="integration-tests", sinks=[sink], **kwargs)
    try:
        yield sink
    finally:
        pipeline.shutdown(timeout=2.0)
        if runtime.swap(None) is not pipeline:
            raise AssertionError("another test replaced the pipeline under us")


def wait_for_events(sink: MemorySink, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    """Flush until ``count`` events arrived (background tasks may still be running)."""
    deadline = time.monotonic() + timeout
    while True:
        # flush() may say False while the server is still finishing events: just retry.
        wideevents.flush(timeout=max(0.1, deadline - time.monotonic()))
        if len(sink.events) >= count or time.monotonic() >= deadline:
            return list(sink.events)
        time.sleep(0.01)


def get_all(base_url: str, paths: list[tuple[str, dict[str, str]]],
            method: str = "GET") -> list[httpx.Response]:
    """Send every (path, headers) request at once, over as many connections."""
    async def send() -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=len(paths), max_keepalive_connections=len(paths))
        async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as client:
            return list(await asyncio.gather(
                *(client.request(method, p, headers=h) for p, h in paths)))

    return asyncio.run(send())


def _loopback_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def uvicorn_server(app: Any) -> Iterator[str]:
    """Serve an ASGI app with a real uvicorn in a thread; yields its base URL."""
    import uvicorn

    sock = _loopback_socket()
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                            loop="asyncio", http="h11", backlog=512, timeout_keep_alive=5)
    server = uvicorn.Server(config)
    # Signal handlers belong to the main thread (uvicorn skips them in other threads).
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@contextmanager
def waitress_server(app: Any, threads: int = 8) -> Iterator[str]:
    """Serve a WSGI app with a real waitress in a thread; yields its base URL."""
    from waitress.server import create_server

    server = create_server(app, host="127.0.0.1", port=0, threads=threads,
                           asyncore_loop_timeout=0.05, backlog=512, connection_limit=500)
    port = server.effective_port  # type: ignore[union-attr]
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        # Close every socket from inside waitress's own loop (a trigger "thunk"): closing
        # them from this thread races with the loop's select() on the same descriptors.
        from waitress import wasyncore

        def stop() -> None:
            server.task_dispatcher.shutdown()  # type: ignore[union-attr]
            wasyncore.close_all(server._map, ignore_all=True)  # type: ignore[union-attr]

        server.trigger.pull_trigger(stop)  # type: ignore[union-attr]
        thread.join(10)
