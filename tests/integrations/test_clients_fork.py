"""``wideevents.integrations.clients`` across a real ``os.fork()`` (issue 22): a lock one of
the parent's threads held at the fork must not hang the child's first outgoing call, nor
its ``instrument()``.

A forked child has only the forking thread; a lock another thread held stays locked in it
forever (Python docs, ``os.fork``: "the child process... may deadlock"; hence
``os.register_at_fork``). The tests hold each module lock in a parent thread, fork, and
let the child make the call under a deadline the parent enforces.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator

import pytest
import requests

import wideevents
from tests.support.integrations import memory_pipeline
from tests.support.loopback_http import unused_ports
from wideevents.integrations import _outgoing, clients
from wideevents.sinks import MemorySink

CHILD_DEADLINE_S = 20.0


@pytest.fixture
def sink() -> Iterator[MemorySink]:
    with memory_pipeline() as memory:
        clients.instrument(requests=True, urllib3=True, httpx=False, aiohttp=False)
        try:
            yield memory
        finally:
            clients.uninstrument()


def _fork_while_held(lock_of: Callable[[], threading.Lock], child: Callable[[], bool]) -> int:
    """Fork while a parent thread holds ``lock_of()``; return the child's exit status
    (0: ``child()`` returned True in time; -1: it hung past the deadline and was killed)."""
    held, release = threading.Event(), threading.Event()

    def holder() -> None:
        with lock_of():
            held.set()
            release.wait(30.0)

    t = threading.Thread(target=holder)
    t.start()
    assert held.wait(10.0)
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            code = 0 if child() else 1
        finally:
            os._exit(code)
    release.set()
    t.join()
    deadline = time.monotonic() + CHILD_DEADLINE_S
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return -1


def _call_in_event() -> bool:
    url = f"http://127.0.0.1:{unused_ports()[0]}/"
    with wideevents.event("child") as ev:
        try:
            requests.get(url, timeout=2.0)
        except requests.ConnectionError:
            pass
        return bool(1 == ev["http.client.count"] == ev["http.client.errors"])


def test_a_call_in_a_forked_child_does_not_hang_on_the_peer_lock(sink: MemorySink) -> None:
    """The per-event peer table's lock held by a parent thread at fork(): the child's
    outgoing call completes and is recorded (before the fix: the child hung forever)."""
    assert 0 == _fork_while_held(lambda: _outgoing._peers_lock, _call_in_event)


def test_instrument_in_a_forked_child_does_not_hang(sink: MemorySink) -> None:
    """instrument()'s lock held by a parent thread at fork(): the child can instrument
    again and its calls are recorded."""
    def child() -> bool:
        clients.instrument(requests=True)
        return _call_in_event()

    assert 0 == _fork_while_held(lambda: clients._lock, child)
