"""The local sinks (stdout, file, memory) and ``wideevents.testing.capture_events``."""

from __future__ import annotations

import io
import itertools
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

import wideevents
from tests.support.json_lines import parse_lines
from wideevents.sinks import FileSink, MemorySink, StdoutSink
from wideevents.testing import capture_events

ANSI_ESCAPE = "\x1b["


class FakeTTY(io.StringIO):
    """A text stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def emit_three() -> None:
    for i in range(3):
        with wideevents.event("predict", i=i) as ev:
            ev.add({"model.version": "v1", "note": f"line\nbreak é {i}"})


# -- StdoutSink -----------------------------------------------------------------------------
def test_stdout_json_is_one_object_per_line_on_a_stream() -> None:
    """format="json" writes one flat JSON object per line, newlines inside values escaped."""
    stream = io.StringIO()
    wideevents.configure(service_name="svc", sinks=[StdoutSink(stream=stream)])
    emit_three()
    assert wideevents.flush(5.0) is True
    events = parse_lines(stream.getvalue().encode("utf-8"))
    assert [(e["name"], e["i"], e["model.version"], e["note"]) for e in events] == [
        ("predict", i, "v1", f"line\nbreak é {i}") for i in range(3)]
    assert all(not isinstance(v, dict) for e in events for v in e.values())


def test_stdout_json_goes_to_the_current_sys_stdout(capfd: pytest.CaptureFixture[str]) -> None:
    """The default StdoutSink writes JSON lines to the process's standard output."""
    wideevents.configure(service_name="svc", sinks=[StdoutSink()])
    emit_three()
    assert wideevents.flush(5.0) is True
    out, err = capfd.readouterr()
    assert [e["i"] for e in parse_lines(out.encode("utf-8"))] == [0, 1, 2]
    assert err == ""


def test_stdout_pretty_has_no_colours_off_a_tty() -> None:
    """format="pretty" renders key=value text, one event per line, without ANSI codes."""
    stream = io.StringIO()
    wideevents.configure(service_name="svc", sinks=[StdoutSink(format="pretty", stream=stream)])
    with wideevents.event("predict") as ev:
        ev.add({"model.version": "v1", "user.id": 7})
    assert wideevents.flush(5.0) is True
    text = stream.getvalue()
    assert ANSI_ESCAPE not in text
    (line,) = text.splitlines()
    assert "predict" in line
    for token in ("model.version=v1", "user.id=7", "service.name=svc"):
        assert token in line.split(), (token, line)


def test_stdout_pretty_uses_colours_on_a_tty() -> None:
    """format="pretty" on a terminal colours its output with ANSI codes."""
    stream = FakeTTY()
    wideevents.configure(sinks=[StdoutSink(format="pretty", stream=stream)])
    with wideevents.event("predict") as ev:
        ev.add({"model.version": "v1"})
    assert wideevents.flush(5.0) is True
    assert ANSI_ESCAPE in stream.getvalue()


def test_stdout_pretty_in_a_subprocess_pipe_has_no_colours(tmp_path: Path) -> None:
    """WIDEEVENTS_SINK=stdout:pretty with stdout piped prints plain text."""
    script = tmp_path / "pretty.py"
    script.write_text(textwrap.dedent("""
        import wideevents
        with wideevents.event("predict") as ev:
            ev.add({"model.version": "v1"})
    """))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("WIDEEVENTS_", "OTEL_")) and k not in ("FORCE_COLOR", "NO_COLOR")}
    env["WIDEEVENTS_SINK"] = "stdout:pretty"
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, timeout=60,
                          env=env)
    assert proc.returncode == 0, proc.stderr.decode()
    out = proc.stdout.decode()
    assert ANSI_ESCAPE not in out
    assert "model.version=v1" in out.split()


def test_stdout_rejects_an_unknown_format() -> None:
    """StdoutSink(format=...) accepts only json and pretty, with a fix-it message."""
    with pytest.raises(wideevents.ConfigurationError) as caught:
        StdoutSink(format="yaml")
    assert "'json'" in str(caught.value) and "'pretty'" in str(caught.value)


# -- FileSink -------------------------------------------------------------------------------
def test_file_sink_appends_to_existing_content(tmp_path: Path) -> None:
    """FileSink appends: earlier content and earlier pipelines' lines are kept."""
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"earlier":true}\n')
    for run in range(2):
        wideevents.configure(sinks=[FileSink(path)])
        with wideevents.event("run", run=run):
            pass
        assert wideevents.shutdown(5.0) is True
    events = parse_lines(path.read_bytes())
    assert [e.get("run", "earlier") for e in events] == ["earlier", 0, 1]


def test_file_sink_writes_whole_lines_from_many_threads(tmp_path: Path) -> None:
    """Events finished on 8 threads at once all arrive as whole, valid lines."""
    path = tmp_path / "events.jsonl"
    wideevents.configure(sinks=[FileSink(path)])

    def work(t: int) -> None:
        for i in range(250):
            with wideevents.event("threaded", t=t, i=i) as ev:
                ev.add({"blob": "x" * (i % 50)})

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert wideevents.flush(10.0) is True
    events = parse_lines(path.read_bytes())
    assert sorted((e["t"], e["i"]) for e in events) == [(t, i) for t in range(8)
                                                         for i in range(250)]


APPENDER = """
    import sys
    import wideevents
    from wideevents.sinks import FileSink
    wideevents.configure(sinks=[FileSink(sys.argv[1])])
    for i in range(3000):
        with wideevents.event("proc", proc=int(sys.argv[2]), i=i) as ev:
            ev.add({"pad": "p" * (i % 300)})
"""


def test_file_sink_lines_never_interleave_between_processes(tmp_path: Path) -> None:
    """Three processes appending to one file at once leave only whole, valid lines."""
    path = tmp_path / "shared.jsonl"
    script = tmp_path / "appender.py"
    script.write_text(textwrap.dedent(APPENDER))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WIDEEVENTS_", "OTEL_"))}
    procs = [subprocess.Popen([sys.executable, str(script), str(path), str(p)], env=env,
                              stderr=subprocess.PIPE) for p in range(3)]
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err.decode()
    events = parse_lines(path.read_bytes())
    assert sorted((e["proc"], e["i"]) for e in events) == [(p, i) for p in range(3)
                                                            for i in range(3000)]


def rotated_files(path: Path) -> list[Path]:
    """``path.N ... path.1, path``: oldest first."""
    backups = sorted(path.parent.glob(path.name + ".*"), key=lambda p: -int(p.suffix[1:]))
    return backups + [path]


def test_file_sink_rotates_by_size_keeping_backup_count(tmp_path: Path) -> None:
    """Events written one by one rotate at max_bytes into path.1, path.2; the newest are kept."""
    path = tmp_path / "events.jsonl"
    wideevents.configure(sinks=[FileSink(path, max_bytes=2048, backup_count=2)])
    for i in range(60):
        with wideevents.event("rot", i=i) as ev:
            ev.add({"pad": "r" * 150})
        assert wideevents.flush(5.0) is True
    files = rotated_files(path)
    assert [p.name for p in files] == ["events.jsonl.2", "events.jsonl.1", "events.jsonl"]
    for p in files:
        assert 0 < p.stat().st_size <= 2048, (p.name, p.stat().st_size)
    for older, newer in itertools.pairwise(files):
        # A file was rotated only because the next line would have taken it past max_bytes.
        next_line = newer.read_bytes().split(b"\n")[0] + b"\n"
        assert older.stat().st_size + len(next_line) > 2048, (older.name, newer.name)
    kept = [e["i"] for p in files for e in parse_lines(p.read_bytes())]
    assert kept == list(range(60 - len(kept), 60))


def test_file_sink_rotation_without_backups_truncates(tmp_path: Path) -> None:
    """backup_count=0 keeps a single file under max_bytes holding the newest events."""
    path = tmp_path / "events.jsonl"
    wideevents.configure(sinks=[FileSink(path, max_bytes=1024, backup_count=0)])
    for i in range(30):
        with wideevents.event("rot", i=i) as ev:
            ev.add({"pad": "r" * 100})
        assert wideevents.flush(5.0) is True
    assert [p.name for p in tmp_path.iterdir()] == ["events.jsonl"]
    assert path.stat().st_size <= 1024
    kept = [e["i"] for e in parse_lines(path.read_bytes())]
    assert kept and kept == list(range(30 - len(kept), 30))


def test_file_sink_rotation_bounds_file_size_for_a_burst(tmp_path: Path) -> None:
    """A burst of 200 events still leaves every file at most max_bytes (each line is smaller)."""
    path = tmp_path / "events.jsonl"
    wideevents.configure(sinks=[FileSink(path, max_bytes=4096, backup_count=3)])
    for i in range(200):
        with wideevents.event("burst", i=i) as ev:
            ev.add({"pad": "b" * 200})
    assert wideevents.flush(5.0) is True
    sizes = {p.name: p.stat().st_size for p in rotated_files(path)}
    assert {name: size for name, size in sizes.items() if size > 4096} == {}


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
def test_write_errors_drop_and_count_without_raising() -> None:
    """Writing to /dev/full drops every event as write_error; the app and other sinks go on."""
    memory = MemorySink()
    wideevents.configure(sinks=[FileSink("/dev/full"), memory])
    for i in range(25):
        with wideevents.event("full", i=i):
            pass
    assert wideevents.flush(5.0) is False  # FileSink lost every line
    stats = wideevents.stats()
    assert stats["sinks"]["file"] == {"sent": 0, "rejected": {}, "dropped": {"write_error": 25},
                                      "pending": 0}
    assert stats["sinks"]["memory"]["sent"] == 25
    assert [e["i"] for e in memory.events] == list(range(25))


# -- MemorySink -----------------------------------------------------------------------------
def test_memory_sink_keeps_finished_normalised_events() -> None:
    """MemorySink.events holds the finished, normalised event dicts in order."""
    memory = MemorySink()
    wideevents.configure(service_name="mem", sinks=[memory])
    for i in range(3):
        with wideevents.event("m", i=i) as ev:
            ev.add({"nested": {"k": i}, "nan": float("nan")})
    assert wideevents.flush(5.0) is True
    assert [(e["name"], e["i"], e["nested.k"], e["nan"], e["service.name"])
            for e in memory.events] == [("m", i, i, None, "mem") for i in range(3)]
    memory.clear()
    assert memory.events == []


def test_memory_sink_max_events_drops_and_counts() -> None:
    """Past max_events, MemorySink keeps the oldest and counts the rest as memory_full."""
    memory = MemorySink(max_events=5)
    wideevents.configure(sinks=[memory])
    for i in range(8):
        with wideevents.event("m", i=i):
            pass
    assert wideevents.flush(5.0) is False  # three events dropped memory_full
    assert [e["i"] for e in memory.events] == [0, 1, 2, 3, 4]
    assert wideevents.stats()["sinks"]["memory"] == {
        "sent": 5, "rejected": {}, "dropped": {"memory_full": 3}, "pending": 0}


# -- capture_events -------------------------------------------------------------------------
def test_capture_events_is_synchronous_and_restores_the_pipeline() -> None:
    """Events inside capture_events() are captured at once; the configured pipeline resumes."""
    memory = MemorySink()
    wideevents.configure(service_name="outer", sinks=[memory])
    with wideevents.event("before"):
        pass
    with capture_events() as captured:
        with wideevents.event("inside"):
            pass
        assert [e["name"] for e in captured] == ["inside"]
    with wideevents.event("after"):
        pass
    assert wideevents.flush(5.0) is True
    assert [e["name"] for e in memory.events] == ["before", "after"]
    assert wideevents.stats()["emitted"] == 2


def test_nested_capture_events_restore_in_order() -> None:
    """An inner capture_events() restores the outer one, even when its block raises."""
    with capture_events() as outer:
        with wideevents.event("outer-1"):
            pass
        with pytest.raises(KeyError):
            with capture_events() as inner:
                with wideevents.event("inner"):
                    pass
                raise KeyError("boom")
        with wideevents.event("outer-2"):
            pass
    assert [e["name"] for e in outer] == ["outer-1", "outer-2"]
    assert [e["name"] for e in inner] == ["inner"]


def test_capture_events_without_a_previous_pipeline_leaves_none() -> None:
    """capture_events() with nothing configured leaves nothing configured afterwards."""
    with capture_events(service_name="cap") as captured:
        with wideevents.event("x"):
            pass
    assert [(e["name"], e["service.name"]) for e in captured] == [("x", "cap")]
    assert wideevents.stats()["emitted"] == 0


def test_capture_events_redacts_but_does_not_sample() -> None:
    """capture_events() applies redaction and ignores the configured sampler."""
    memory = MemorySink()
    wideevents.configure(sinks=[memory], sampler=lambda event: 0)
    with capture_events() as captured:
        for i in range(3):
            with wideevents.event("s", i=i) as ev:
                ev.add({"user.password": "hunter2", "user.name": "ann"})
    assert [(e["i"], e["user.password"], e["user.name"]) for e in captured] == [
        (i, "[REDACTED]", "ann") for i in range(3)]
    assert memory.events == []
