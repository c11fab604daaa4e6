"""Process-level behaviour: exit flushing, os.fork(), environment defaults, import weight.

Every scenario that exits, forks or reads the environment at start-up runs in a fresh
interpreter (``sys.executable``), so the test process itself is never forked or exited.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

import wideevents
from tests.support.json_lines import parse_lines
from wideevents.sinks import FileSink, MemorySink

HEAVY_MODULES = ("libhoney", "opentelemetry.sdk", "duckdb", "numpy", "fastapi", "starlette",
                 "flask", "uvicorn")


def clean_env(**extra: str) -> dict[str, str]:
    """The current environment without wideevents / OpenTelemetry settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("WIDEEVENTS_", "OTEL_", "HONEYCOMB_"))}
    env.update(extra)
    return env


def run_script(tmp_path: Path, source: str, *args: str, env: dict[str, str] | None = None,
               timeout: float = 60.0) -> subprocess.CompletedProcess[bytes]:
    script = tmp_path / "scenario.py"
    script.write_text(textwrap.dedent(source))
    return subprocess.run([sys.executable, str(script), *args], capture_output=True,
                          timeout=timeout, env=env if env is not None else clean_env(),
                          cwd=str(tmp_path))


# -- exit flushing --------------------------------------------------------------------------
EMIT_10K = """
    import sys
    import wideevents
    from wideevents.sinks import FileSink

    if sys.argv[1] != "stdout":
        wideevents.configure(service_name="exit-test", sinks=[FileSink(sys.argv[1])])
    for i in range(10_000):
        with wideevents.event("work", i=i) as ev:
            ev.add({"payload.half": i / 2, "payload.tag": f"t{i % 7}"})
    # no flush(), no shutdown(): the interpreter's exit must deliver everything
"""


def test_exit_delivers_10000_file_events_without_flush(tmp_path: Path) -> None:
    """A process that emits 10,000 events to a FileSink and just exits writes all of them."""
    out = tmp_path / "events.jsonl"
    proc = run_script(tmp_path, EMIT_10K, str(out))
    assert proc.returncode == 0, proc.stderr.decode()
    events = parse_lines(out.read_bytes())
    assert sorted(e["i"] for e in events) == list(range(10_000))
    assert len({e["trace.span_id"] for e in events}) == 10_000
    assert all(e["payload.half"] == e["i"] / 2 for e in events)
    assert {e["service.name"] for e in events} == {"exit-test"}


def test_exit_delivers_10000_stdout_events_without_flush(tmp_path: Path) -> None:
    """Without configure(), 10,000 events reach stdout as JSON lines before the process exits."""
    proc = run_script(tmp_path, EMIT_10K, "stdout")
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stderr == b""
    events = parse_lines(proc.stdout)
    assert sorted(e["i"] for e in events) == list(range(10_000))
    assert len({e["trace.span_id"] for e in events}) == 10_000


# -- fork -----------------------------------------------------------------------------------
FORK_WITH_QUEUED = """
    import json, os, sys, threading
    import wideevents
    from wideevents.sinks import FileSink

    parent_pid = os.getpid()
    gate = threading.Event()
    held = threading.Event()

    def hold_parent_events(fields):
        # The parent's worker stops here, so its events are still undelivered at fork time.
        if os.getpid() == parent_pid:
            held.set()
            gate.wait(20)
        return fields

    wideevents.configure(service_name="fork-test", sinks=[FileSink(sys.argv[1])],
                         processors=[hold_parent_events])
    for i in range(5):
        with wideevents.event("parent", i=i):
            pass
    wideevents.flush(0.2)  # wakes the worker, which takes these events and blocks
    assert held.wait(10)
    for i in range(5, 10):
        with wideevents.event("parent", i=i):  # these stay in the queue
            pass
    before = wideevents.stats()["sinks"]["file"]
    pid = os.fork()
    if pid == 0:
        for i in range(3):
            with wideevents.event("child", i=i):
                pass
        sys.exit(0)  # a normal exit: the child's own pipeline flushes at exit
    gate.set()
    _, status = os.waitpid(pid, 0)
    print(json.dumps({"parent": parent_pid, "child": pid, "status": status,
                      "pending_before_fork": before["pending"], "sent_before_fork": before["sent"]}))
"""


def test_forked_child_delivers_only_its_own_events(tmp_path: Path) -> None:
    """After fork() with undelivered parent events, each process delivers exactly its own."""
    out = tmp_path / "events.jsonl"
    proc = run_script(tmp_path, FORK_WITH_QUEUED, str(out))
    assert proc.returncode == 0, proc.stderr.decode()
    info = json.loads(proc.stdout)
    assert (info["status"], info["pending_before_fork"], info["sent_before_fork"]) == (0, 10, 0)
    events = parse_lines(out.read_bytes())
    got = sorted((e["name"], e["i"], e["process.pid"]) for e in events)
    expected = sorted([("parent", i, info["parent"]) for i in range(10)]
                      + [("child", i, info["child"]) for i in range(3)])
    assert got == expected


FORK_PID_PATH = """
    import json, os, sys
    import wideevents
    from wideevents.sinks import FileSink

    wideevents.configure(service_name="fork-test", sinks=[FileSink(sys.argv[1])])
    parent_pid = os.getpid()
    for i in range(2):
        with wideevents.event("parent", i=i):
            pass
    pid = os.fork()
    if pid == 0:
        for i in range(3):
            with wideevents.event("child", i=i):
                pass
        sys.exit(0)
    for i in range(2, 4):
        with wideevents.event("parent", i=i):
            pass
    _, status = os.waitpid(pid, 0)
    print(json.dumps({"parent": parent_pid, "child": pid, "status": status}))
"""


def test_pid_in_file_path_gives_one_file_per_process(tmp_path: Path) -> None:
    """FileSink("events-{pid}.jsonl") gives the parent and a forked child separate files."""
    template = tmp_path / "events-{pid}.jsonl"
    proc = run_script(tmp_path, FORK_PID_PATH, str(template))
    assert proc.returncode == 0, proc.stderr.decode()
    info = json.loads(proc.stdout)
    assert info["status"] == 0
    files = sorted(p.name for p in tmp_path.glob("events-*.jsonl"))
    assert files == sorted([f"events-{info['parent']}.jsonl", f"events-{info['child']}.jsonl"])
    parent = parse_lines((tmp_path / f"events-{info['parent']}.jsonl").read_bytes())
    child = parse_lines((tmp_path / f"events-{info['child']}.jsonl").read_bytes())
    assert sorted((e["name"], e["i"], e["process.pid"]) for e in parent) == [
        ("parent", i, info["parent"]) for i in range(4)]
    assert sorted((e["name"], e["i"], e["process.pid"]) for e in child) == [
        ("child", i, info["child"]) for i in range(3)]


# -- the default pipeline from the environment ----------------------------------------------
EMIT_3_WITH_LOGGING = """
    import logging, sys
    logging.basicConfig(stream=sys.stderr, level=logging.DEBUG,
                        format="LOG|%(name)s|%(levelname)s|%(message)s")
    import wideevents
    for i in range(3):
        with wideevents.event("env", i=i):
            pass
    print("done", file=sys.stderr)
"""


def test_env_file_sink_is_the_default(tmp_path: Path) -> None:
    """WIDEEVENTS_SINK=file:PATH sends events to PATH without configure(); stdout stays empty."""
    out = tmp_path / "env.jsonl"
    proc = run_script(tmp_path, EMIT_3_WITH_LOGGING, env=clean_env(WIDEEVENTS_SINK=f"file:{out}"))
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout == b""
    assert proc.stderr.decode().splitlines() == ["done"]
    assert [e["i"] for e in parse_lines(out.read_bytes())] == [0, 1, 2]


def test_env_none_sends_nowhere(tmp_path: Path) -> None:
    """WIDEEVENTS_SINK=none: the program runs normally and nothing is written."""
    proc = run_script(tmp_path, EMIT_3_WITH_LOGGING, env=clean_env(WIDEEVENTS_SINK="none"))
    assert proc.returncode == 0, proc.stderr.decode()
    assert (proc.stdout, proc.stderr.decode().splitlines()) == (b"", ["done"])
    assert list(tmp_path.iterdir()) == [tmp_path / "scenario.py"]


@pytest.mark.parametrize("value", ["kafka", "file:", "file:/nonexistent-wideevents-dir/x.jsonl",
                                   "stdout:fancy"])
def test_bad_env_sink_logs_once_and_falls_back_to_stdout(tmp_path: Path, value: str) -> None:
    """A bad WIDEEVENTS_SINK never raises: one warning on the wideevents logger, stdout JSON."""
    proc = run_script(tmp_path, EMIT_3_WITH_LOGGING, env=clean_env(WIDEEVENTS_SINK=value))
    assert proc.returncode == 0, proc.stderr.decode()
    assert [e["i"] for e in parse_lines(proc.stdout)] == [0, 1, 2]
    lines = proc.stderr.decode().splitlines()
    logged = [line for line in lines if line.startswith("LOG|")]
    assert len(logged) == 1, lines
    _, logger, level, message = logged[0].split("|", 3)
    assert (logger, level) == ("wideevents", "WARNING")
    assert "stdout" in message
    assert lines[-1] == "done"


# -- configure() validation (complements the lead's table in test_pipeline.py) --------------
@pytest.mark.parametrize("make_path", [
    pytest.param(lambda tmp: tmp, id="a-directory"),
    pytest.param(lambda tmp: tmp / "missing" / "events.jsonl", id="missing-directory"),
])
def test_unwritable_file_path_raises_with_the_path_and_a_fix(tmp_path: Path,
                                                             make_path: Any) -> None:
    """An unopenable FileSink path raises ConfigurationError naming the path and the fix."""
    path = str(make_path(tmp_path))
    for attempt in (lambda: wideevents.configure(sinks=[f"file:{path}"]),
                    lambda: FileSink(path)):
        with pytest.raises(wideevents.ConfigurationError) as caught:
            attempt()
        message = str(caught.value)
        assert path in message
        assert "writable" in message or "exists" in message


def test_unknown_sink_message_lists_the_valid_choices() -> None:
    """An unknown sink name is rejected with the accepted spellings in the message."""
    with pytest.raises(wideevents.ConfigurationError) as caught:
        wideevents.configure(sinks=["kafka"])
    message = str(caught.value)
    assert "'kafka'" in message
    for choice in ("stdout", "file:", "none"):
        assert choice in message


def test_negative_queue_size_message_says_what_is_valid() -> None:
    """queue_size=-5 is rejected with the parameter, the value and the valid range."""
    with pytest.raises(wideevents.ConfigurationError) as caught:
        wideevents.configure(sinks=[MemorySink()], queue_size=-5)
    message = str(caught.value)
    assert "queue_size" in message and "-5" in message and "positive" in message


def test_bad_env_sink_in_configure_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    """configure() with a bad WIDEEVENTS_SINK says the value came from WIDEEVENTS_SINK."""
    monkeypatch.setenv("WIDEEVENTS_SINK", "kafka")
    with pytest.raises(wideevents.ConfigurationError) as caught:
        wideevents.configure()
    assert "WIDEEVENTS_SINK" in str(caught.value)


def test_failed_configure_keeps_the_previous_pipeline() -> None:
    """A configure() that raises leaves the working pipeline installed and running."""
    memory = MemorySink()
    wideevents.configure(service_name="keep", sinks=[memory])
    with pytest.raises(wideevents.ConfigurationError):
        wideevents.configure(sinks=["kafka"])
    with wideevents.event("still-here"):
        pass
    assert wideevents.flush(5.0) is True
    assert [(e["name"], e["service.name"]) for e in memory.events] == [("still-here", "keep")]


# -- import weight --------------------------------------------------------------------------
IMPORT_CHECK = """
    import json, sys
    import wideevents
    after_import = sorted(sys.modules)
    with wideevents.event("plain", user_id=7) as ev:
        ev.add({"request.id": "r1", "ok": True, "ms": 1.5})
    wideevents.flush(5.0)
    print(json.dumps({"import": after_import, "event": sorted(sys.modules)}), file=sys.stderr)
"""


def test_import_and_a_plain_event_load_no_heavy_dependency(tmp_path: Path) -> None:
    """import wideevents (and a plain event) loads no libhoney, OTel SDK, duckdb, numpy, web."""
    proc = run_script(tmp_path, IMPORT_CHECK)
    assert proc.returncode == 0, proc.stderr.decode()
    loaded = json.loads(proc.stderr.decode().splitlines()[-1])
    for phase in ("import", "event"):
        heavy = sorted(m for m in loaded[phase]
                       if any(m == h or m.startswith(h + ".") for h in HEAVY_MODULES))
        assert (phase, heavy) == (phase, [])
    assert len(parse_lines(proc.stdout)) == 1


# -- shutdown with a sink that never returns ------------------------------------------------
HANGING_SINK = """
    import json, sys, threading, time
    import wideevents

    forever = threading.Event()

    class HangingSink:
        name = "hang"
        def export(self, batch):
            forever.wait()
        def flush(self, timeout):
            forever.wait()
            return True
        def close(self, timeout):
            forever.wait()
            return True

    wideevents.configure(sinks=[HangingSink()], exit_timeout=1.0)
    for i in range(20):
        with wideevents.event("stuck", i=i):
            pass
    if sys.argv[1] == "shutdown":
        t0 = time.monotonic()
        ok = wideevents.shutdown(timeout=1)
        elapsed = time.monotonic() - t0
        print(json.dumps({"ok": ok, "elapsed": elapsed, "stats": wideevents.stats()}))
    # "exit": leave it to the interpreter's exit, within exit_timeout
"""


def test_shutdown_returns_in_time_when_the_sink_hangs_forever(tmp_path: Path) -> None:
    """shutdown(timeout=1) returns False within ~2 s when export, flush and close never return."""
    proc = run_script(tmp_path, HANGING_SINK, "shutdown", timeout=30)
    assert proc.returncode == 0, proc.stderr.decode()
    result = json.loads(proc.stdout)
    assert result["ok"] is False
    assert result["elapsed"] < 2.0
    sink = result["stats"]["sinks"]["hang"]
    lost = sum(sink["dropped"].values()) + sum(result["stats"]["dropped"].values())
    assert (sink["sent"], sink["pending"], lost) == (0, 0, 20)


def test_interpreter_exit_is_not_held_by_a_hanging_sink(tmp_path: Path) -> None:
    """A process whose sink hangs forever still exits, within its exit_timeout plus start-up."""
    t0 = time.monotonic()
    proc = run_script(tmp_path, HANGING_SINK, "exit", timeout=30)
    elapsed = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr.decode()
    assert elapsed < 6.0
