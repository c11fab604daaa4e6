"""Process lifecycle under real servers and real signals: every request's event, exactly once.

The servers run in their own process groups on a loopback socket the test binds and
passes down; the Honeycomb receiver runs in this process. The apps let a partial batch
wait 30 s in the sender, longer than each test runs, so events only arrive through the
exit paths under test (worker recycling, graceful shutdown, signal handlers).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.honeycomb_receiver import HoneycombReceiver, running
from tests.support.reliability import (
    ROOT,
    child_env,
    group,
    listening_socket,
    python,
    record_figure,
    wait_until,
)

KEY = "lifecycle-test-key-5f2e"
# The servers run with cwd and PYTHONPATH the repository root (child_env, spawn): app strings
# are module paths (tests.support.apps.flask_app:app); gunicorn's --config takes a file path.
GUNICORN_CONF = ROOT / "tests" / "support" / "apps" / "gunicorn_conf.py"
N_REQUESTS = 400
CLIENT_THREADS = 8


def warm_up(port: int, workers: int, prefix: str) -> dict[str, int]:
    """GETs on fresh connections until ``workers`` distinct processes answered (all started)."""
    served: dict[str, int] = {}
    deadline = time.monotonic() + 60
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60.0,
                      headers={"Connection": "close"}) as c:
        while len(set(served.values())) < workers and time.monotonic() < deadline:
            rid = f"{prefix}-warm-{len(served)}"
            served[rid] = c.get("/work/0", headers={"X-Request-ID": rid}).json()["pid"]
            time.sleep(0.02)
    return served


def drive(port: int, n: int, prefix: str) -> dict[str, int]:
    """Send ``n`` GETs from several threads; return request id -> pid that served it."""
    served: dict[str, int] = {}
    lock = threading.Lock()
    errors: list[BaseException] = []

    def client(start: int) -> None:
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60.0) as c:
                for i in range(start, n, CLIENT_THREADS):
                    rid = f"{prefix}-{i}"
                    r = c.get(f"/work/{i}", headers={"X-Request-ID": rid})
                    r.raise_for_status()
                    with lock:
                        served[rid] = r.json()["pid"]
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENT_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    return served


def serve_and_stop(receiver: HoneycombReceiver, cmd_for_fd: Any, env: dict[str, str],
                   prefix: str, workers: int = 1) -> tuple[dict[str, int], int, float]:
    """Start the server, send the requests, SIGTERM the master; (served, returncode, seconds)."""
    sock = listening_socket()
    port = sock.getsockname()[1]
    cmd = cmd_for_fd(sock.fileno())
    with group(cmd, env=env, pass_fds=[sock.fileno()], stdout=subprocess.DEVNULL,
               stderr=subprocess.DEVNULL) as proc:
        sock.close()  # the server holds it now; connections wait in its backlog
        served = warm_up(port, workers, prefix)
        served.update(drive(port, N_REQUESTS, prefix))
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(60)
        return served, rc, time.monotonic() - t0


def received_ids(receiver: HoneycombReceiver) -> Counter[str]:
    return Counter(str(e["data"].get("request.id")) for e in receiver.received())


def app_env(receiver: HoneycombReceiver, **extra: str) -> dict[str, str]:
    return child_env(HONEYCOMB_API_HOST=receiver.url, HONEYCOMB_API_KEY=KEY,
                     REL_SEND_INTERVAL="30", **extra)


def test_gunicorn_preload_max_requests_delivers_each_request_once() -> None:
    """Flask under gunicorn (4 sync workers, --preload, --max-requests 50): N requests, N events."""
    with running(api_key=KEY) as receiver:
        served, rc, stop_s = serve_and_stop(
            receiver,
            lambda fd: [sys.executable, "-m", "gunicorn", "--workers", "4", "--preload",
                        "--max-requests", "50", "--no-control-socket", "--graceful-timeout",
                        "30", "--bind", f"fd://{fd}", "tests.support.apps.flask_app:app"],
            app_env(receiver), "gunicorn")
        assert rc == 0
        got = received_ids(receiver)
        pids = {e["data"]["request.id"]: e["data"]["process.pid"] for e in receiver.received()}
    assert len(served) > N_REQUESTS
    # 400 requests, at most 50 per worker lifetime: at least 8 workers served them.
    assert len(set(served.values())) >= N_REQUESTS // 50
    assert dict(got) == {rid: 1 for rid in served}
    assert pids == served  # each event carries the pid of the (forked) worker that served it
    record_figure("gunicorn 4 sync workers, --preload, --max-requests 50",
                  "requests / events / duplicates",
                  f"{len(served)} / {sum(got.values())} / {sum(got.values()) - len(got)}")
    record_figure("gunicorn 4 sync workers, --preload, --max-requests 50",
                  "worker processes / shutdown s", f"{len(set(served.values()))} / {stop_s:.2f}")


def test_gunicorn_worker_exit_recipe_delivers_each_request_once() -> None:
    """With exit flushing disabled (exit_timeout=0), the worker_exit hook alone delivers N of N."""
    with running(api_key=KEY) as receiver:
        served, rc, _ = serve_and_stop(
            receiver,
            lambda fd: [sys.executable, "-m", "gunicorn", "--config", str(GUNICORN_CONF),
                        "--workers", "4", "--preload", "--max-requests", "50",
                        "--no-control-socket", "--bind", f"fd://{fd}",
                        "tests.support.apps.flask_app:app"],
            app_env(receiver, REL_EXIT_TIMEOUT="0"), "recipe")
        assert rc == 0
        got = received_ids(receiver)
    assert len(set(served.values())) >= N_REQUESTS // 50
    assert dict(got) == {rid: 1 for rid in served}
    record_figure("gunicorn worker_exit recipe (exit_timeout=0)", "requests / events / duplicates",
                  f"{len(served)} / {sum(got.values())} / {sum(got.values()) - len(got)}")


def uvicorn_cmd(fd: int) -> list[str]:
    return [sys.executable, "-m", "uvicorn", "--workers", "2", "--fd", str(fd),
            "--log-level", "warning", "tests.support.apps.fastapi_app:app"]


def test_uvicorn_workers_with_lifespan_recipe_deliver_each_request_once() -> None:
    """FastAPI under uvicorn --workers 2 with the documented lifespan recipe: N requests, N events."""
    with running(api_key=KEY) as receiver:
        served, rc, stop_s = serve_and_stop(receiver, uvicorn_cmd,
                                            app_env(receiver, REL_LIFESPAN_FLUSH="1"), "uvicorn",
                                            workers=2)
        assert rc == 0
        got = received_ids(receiver)
    assert len(served) > N_REQUESTS
    assert len(set(served.values())) == 2
    assert dict(got) == {rid: 1 for rid in served}
    record_figure("uvicorn --workers 2 (lifespan recipe)", "requests / events / duplicates",
                  f"{len(served)} / {sum(got.values())} / {sum(got.values()) - len(got)}")


def test_uvicorn_workers_without_user_code_deliver_each_request_once() -> None:
    """FastAPI under uvicorn --workers 2 with only configure() and the middleware: N events."""
    with running(api_key=KEY) as receiver:
        served, rc, _ = serve_and_stop(receiver, uvicorn_cmd, app_env(receiver), "bare",
                                       workers=2)
        assert rc == 0
        got = received_ids(receiver)
    assert dict(got) == {rid: 1 for rid in served}


# -- install_signal_handlers() in plain processes --------------------------------------------
def start_scenario(receiver: HoneycombReceiver, mode: str, events: int,
                   timeout: float) -> Any:
    env = child_env(HONEYCOMB_API_HOST=receiver.url, HONEYCOMB_API_KEY=KEY)
    return group(python("signal_scenario", mode, str(events), str(timeout)), env=env)


def wait_ready(proc: subprocess.Popen[bytes]) -> None:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line == b"READY\n", (line, proc.stderr.read() if proc.stderr else b"")


def signal_ids(receiver: HoneycombReceiver) -> Counter[str]:
    return Counter(str(e["data"].get("request.id")) for e in receiver.received()
                   if e["data"].get("name") == "before-signal")


@pytest.mark.parametrize(("signum", "returncode", "printed"), [
    (signal.SIGTERM, -signal.SIGTERM, b""),
    (signal.SIGINT, 130, b"KeyboardInterrupt\n"),
])
def test_signal_flushes_then_default_action(signum: int, returncode: int, printed: bytes) -> None:
    """SIGTERM/SIGINT with default handlers: events flushed, then terminated / KeyboardInterrupt."""
    with running(api_key=KEY) as receiver, start_scenario(receiver, "default", 50, 10.0) as proc:
        wait_ready(proc)
        proc.send_signal(signum)
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            raise AssertionError(f"no exit 30 s after the signal; stderr:\n{err.decode()}") from None
        assert (proc.returncode, out) == (returncode, printed), err
        assert signal_ids(receiver) == {f"sig-{i}": 1 for i in range(50)}


def test_signal_flushes_then_runs_previous_python_handler() -> None:
    """A previous Python handler runs after the flush (it exits with os._exit, skipping atexit)."""
    with running(api_key=KEY) as receiver, start_scenario(receiver, "python", 50, 10.0) as proc:
        wait_ready(proc)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        assert (proc.returncode, out) == (3, f"PREVIOUS {int(signal.SIGTERM)}\n".encode()), err
        assert signal_ids(receiver) == {f"sig-{i}": 1 for i in range(50)}


def test_signal_previously_ignored_stays_ignored_after_flush() -> None:
    """With SIG_IGN before, SIGTERM flushes and the process carries on."""
    with running(api_key=KEY) as receiver, start_scenario(receiver, "ignore", 50, 1.0) as proc:
        wait_ready(proc)
        proc.send_signal(signal.SIGTERM)
        assert wait_until(lambda: sum(signal_ids(receiver).values()) >= 50, 10)
        out, err = proc.communicate(timeout=30)
        assert (proc.returncode, out) == (0, b"ALIVE 50\n"), err
        assert signal_ids(receiver) == {f"sig-{i}": 1 for i in range(50)}


def test_signal_flush_is_bounded_when_the_backend_hangs() -> None:
    """A receiver that never answers: the process still ends about `timeout` after SIGTERM."""
    with running(api_key=KEY) as receiver, start_scenario(receiver, "default", 20, 1.0) as proc:
        receiver.fault_for("hang", 60)
        wait_ready(proc)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
        elapsed = time.monotonic() - t0
        receiver.release()
    assert proc.returncode == -signal.SIGTERM
    assert 0.9 <= elapsed < 4.0
    record_figure("install_signal_handlers(timeout=1)", "exit after SIGTERM, hung backend",
                  f"{elapsed:.2f} s")


def test_signal_during_finish_does_not_deadlock() -> None:
    """A signal that lands while the main thread holds the pipeline's lock still flushes and exits."""
    with running(api_key=KEY) as receiver, start_scenario(receiver, "locked", 50, 5.0) as proc:
        wait_ready(proc)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGTERM, err
        assert signal_ids(receiver) == {f"sig-{i}": 1 for i in range(50)}


def test_sigterm_to_a_busy_producer_exits_promptly() -> None:
    """A main thread emitting in a tight loop: each SIGTERM ends the process within the deadline."""
    with running(api_key=KEY) as receiver:
        for _ in range(3):
            with start_scenario(receiver, "busy", 0, 1.0) as proc:
                wait_ready(proc)
                time.sleep(0.3)
                t0 = time.monotonic()
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.communicate(timeout=15)
                except subprocess.TimeoutExpired:
                    pytest.fail("SIGTERM did not end a busy producer")
                assert proc.returncode == -signal.SIGTERM
                assert time.monotonic() - t0 < 8.0


# -- multiprocessing --------------------------------------------------------------------------
def test_multiprocessing_fork_children_deliver_without_flush(tmp_path: Path) -> None:
    """Fork-method Process and Pool (close/join) children deliver every event; no user flush."""
    pattern = str(tmp_path / "events-{pid}.jsonl")
    proc = subprocess.run(python("mp_scenario", pattern), env=child_env(),
                          capture_output=True, timeout=60, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout == b"EXITCODES 0 0 0\n"
    files = [f for f in tmp_path.glob("events-*.jsonl") if f.stat().st_size]
    events = [json.loads(line) for f in files for line in f.read_bytes().splitlines()]
    got = Counter((e["tag"], e["i"]) for e in events)
    want = Counter([(f"process-{k}", i) for k in range(3) for i in range(100)]
                   + [(f"pool-{k}", i) for k in range(4) for i in range(50)])
    assert got == want
    # Each process wrote its own file, and every event names the process that made it.
    assert all(f.name == f"events-{json.loads(f.read_bytes().splitlines()[0])['process.pid']}"
               ".jsonl" for f in files)
    assert os.getpid() not in {e["process.pid"] for e in events}
