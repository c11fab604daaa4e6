"""Helpers for the reliability tests: real processes, fault-injecting receivers, figures.

- :func:`spawn` / :func:`stop_group`: subprocesses in their own process group, always
  killed (the whole group) when a test ends, however it ends.
- :func:`listening_socket`: a bound, listening loopback socket whose descriptor a server
  (gunicorn ``-b fd://N``, uvicorn ``--fd N``) inherits: no port race, and connections
  wait in the backlog until the server is ready.
- :class:`FaultyReceiver`: the loopback Honeycomb receiver plus reply faults it lacks
  (a reply cut short, a broken status line, a cut JSON body), composed by subclassing.
- :class:`JournalingReceiver`: writes the ``request.id`` of every accepted event to a
  file *before* replying, so what it accepted survives a SIGKILL.
- :func:`equation_holds`: the accounting equation of docs/reliability.md, "stats()",
  written out again.
- :func:`record_figure` and the ``pytest_terminal_summary`` hook: the measured figures,
  printed at the end of the run (this module is a pytest plugin through conftest.py).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from .honeycomb_receiver import HoneycombReceiver, _check_event, _decode, _Handler, _Server

ROOT = Path(__file__).resolve().parent.parent.parent  # the repository root
APPS = "tests.support.apps"  # the package of the scripts: ``python -m tests.support.apps.<name>``

# -- figures --------------------------------------------------------------------------------
FIGURES: dict[str, dict[str, Any]] = {}


def record_figure(scenario: str, name: str, value: Any) -> None:
    """Remember one measured figure; all of them are printed at the end of the run."""
    FIGURES.setdefault(scenario, {})[name] = value


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the figures the reliability tests measured (only when some ran)."""
    if not FIGURES:
        return
    terminalreporter.section("wideevents reliability figures")
    for scenario, figures in FIGURES.items():
        terminalreporter.write_line(f"{scenario}:")
        for name, value in figures.items():
            terminalreporter.write_line(f"    {name:<46} {value}")


# -- accounting -----------------------------------------------------------------------------
def equation_holds(stats: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """Per sink, (left side, emitted) of sent + rejected + dropped + pending + pipeline
    dropped == emitted; empty when it holds for every sink."""
    emitted = stats["emitted"]
    pipeline_dropped = sum(stats["dropped"].values())
    wrong = {}
    for name, s in stats["sinks"].items():
        total = (s["sent"] + sum(s["rejected"].values()) + sum(s["dropped"].values())
                 + s["pending"] + pipeline_dropped)
        if total != emitted:
            wrong[name] = (total, emitted)
    return wrong


# -- processes ------------------------------------------------------------------------------
def child_env(**extra: str) -> dict[str, str]:
    """This environment without wideevents/OTel/Honeycomb settings, plus ``extra``; the
    package and ``tests.support`` (the test apps included) importable from the repository root."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("WIDEEVENTS_", "OTEL_", "HONEYCOMB_"))}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def spawn(cmd: Sequence[str], *, env: dict[str, str], pass_fds: Sequence[int] = (),
          stdout: Any = subprocess.PIPE, stderr: Any = subprocess.PIPE,
          stdin: Any = subprocess.DEVNULL, cwd: Path = ROOT) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in a new process group (so that the whole group can be killed)."""
    return subprocess.Popen(list(cmd), env=env, pass_fds=tuple(pass_fds), stdout=stdout,
                            stderr=stderr, stdin=stdin, cwd=str(cwd), start_new_session=True)


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process group of ``proc`` (workers included) and reap ``proc``."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        pass


@contextmanager
def group(cmd: Sequence[str], **kwargs: Any) -> Iterator[subprocess.Popen[bytes]]:
    """:func:`spawn`, and :func:`stop_group` when the block ends (whatever happened)."""
    proc = spawn(cmd, **kwargs)
    try:
        yield proc
    finally:
        stop_group(proc)


def listening_socket() -> socket.socket:
    """A listening loopback socket on an ephemeral port, inheritable by a child."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def spread_over_workers(port: int, calls: Sequence[Callable[[Any], Any]], clients: int
                        ) -> list[Any]:
    """Run each ``call(client)`` (an ``httpx.Client`` on ``127.0.0.1:port``) from
    ``clients`` threads, every request on a fresh connection (``Connection: close``), so a
    server with several worker processes spreads them over its workers; the results in
    order. A call that raises fails the assertion here."""
    import httpx

    results: list[Any] = [None] * len(calls)
    errors: list[BaseException] = []

    def client(start: int) -> None:
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60.0,
                              headers={"Connection": "close"}) as c:
                for i in range(start, len(calls), clients):
                    results[i] = calls[i](c)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(s,)) for s in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [] == errors
    return results


def read_port(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
    """The port a receiver script prints as ``PORT <n>`` on its first line."""
    assert proc.stdout is not None
    result: list[bytes] = []
    reader = threading.Thread(target=lambda: result.append(proc.stdout.readline()),  # type: ignore[union-attr]
                              daemon=True)
    reader.start()
    reader.join(timeout)
    if not result or not result[0].startswith(b"PORT "):
        raise AssertionError(f"receiver did not start: {result!r}")
    return int(result[0].split()[1])


def python(app: str, *args: str) -> list[str]:
    """The command running the script ``tests/support/apps/<app>.py`` as a module (it needs
    the repository root on ``PYTHONPATH``, as :func:`child_env` sets it, or as the cwd)."""
    return [sys.executable, "-m", f"{APPS}.{app}", *args]


def python_module(module: str, *args: str) -> list[str]:
    """The command running ``tests.support.<module>`` (a receiver's ``main()``)."""
    return [sys.executable, "-m", f"tests.support.{module}", *args]


# -- receivers ------------------------------------------------------------------------------
REPLY_FAULTS = ("truncate", "badstatus", "cut-json")


class FaultyReceiver(HoneycombReceiver):
    """The loopback receiver, plus faults in the reply to a batch it *accepted*:

    - ``truncate``: full headers, half the body, then the connection closes;
    - ``badstatus``: a status line that is not HTTP;
    - ``cut-json``: HTTP 200 whose per-event status list is cut in the middle.

    ``accepted_unacknowledged`` counts the events of accepted batches whose reply was
    unusable to the client (the first two faults): the duplicates at-least-once implies.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._reply_faults: list[str] = []
        self._local = threading.local()
        self.accepted_unacknowledged = 0
        self.reply_faults_applied: dict[str, int] = {}

    def inject_reply_fault(self, fault: str, times: int = 1) -> None:
        assert fault in REPLY_FAULTS, fault
        with self.lock:
            self._reply_faults.extend([fault] * times)

    def handle_batch(self, dataset: str, encoding: str, raw: bytes) -> tuple[int, Any, str]:
        status, body, fault = super().handle_batch(dataset, encoding, raw)
        reply_fault = ""
        if status == 200 and not fault:  # not on top of a fault of the base receiver
            with self.lock:
                if self._reply_faults:
                    reply_fault = self._reply_faults.pop(0)
                    self.reply_faults_applied[reply_fault] = (
                        self.reply_faults_applied.get(reply_fault, 0) + 1)
                    if reply_fault != "cut-json" and isinstance(body, list):
                        self.accepted_unacknowledged += sum(
                            1 for s in body if s.get("status") == 202)
        self._local.fault = reply_fault
        return status, body, fault

    def __enter__(self) -> FaultyReceiver:
        return self.start()

    def start(self, port: int = 0) -> FaultyReceiver:
        server = _Server(("127.0.0.1", port or self.port), _FaultyHandler)
        server.receiver = self
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True,
                                        name="faulty-receiver")
        self._thread.start()
        return self


class _FaultyHandler(_Handler):
    def _reply(self, status: int, body: Any) -> None:
        receiver = self.server.receiver
        local = getattr(receiver, "_local", None)
        fault = getattr(local, "fault", "") if local is not None else ""
        if local is not None:
            local.fault = ""
        data = body if isinstance(body, bytes) else orjson.dumps(body)
        if fault == "truncate":
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_WR)
        elif fault == "badstatus":
            self.wfile.write(b"HTPT/1.1 2OO okay\r\n\r\n")
            self.wfile.flush()
            self.close_connection = True
        elif fault == "cut-json":
            cut = data[: max(1, len(data) // 2)]
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(cut)))
            self.end_headers()
            self.wfile.write(cut)
        else:
            super()._reply(status, body)


class JournalingReceiver(HoneycombReceiver):
    """Appends the ``request.id`` of every accepted event to ``journal`` before replying."""

    def __init__(self, journal: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._journal = os.open(journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def handle_batch(self, dataset: str, encoding: str, raw: bytes) -> tuple[int, Any, str]:
        status, body, fault = super().handle_batch(dataset, encoding, raw)
        if status == 200:
            elements = orjson.loads(_decode(encoding, raw))
            if isinstance(body, list):
                accepted = [e for e, s in zip(elements, body) if s.get("status") == 202]
            else:  # a "malformed" reply: what the receiver accepted is what passed the checks
                accepted = [e for e in elements if not _check_event(e)]
            ids = "".join(f"{e['data'].get('request.id')}\n" for e in accepted)
            if ids:
                os.write(self._journal, ids.encode())
        return status, body, fault


def read_journal(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` (Linux /proc)."""
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def wait_until(predicate: Any, timeout: float, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
