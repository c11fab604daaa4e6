"""StdoutSink writes each event as one whole line, whatever the host prints through
``sys.stdout`` (issue 15; docs/reliability.md, "StdoutSink and the host's own output").

Each scenario runs in a real subprocess whose stdout is a pipe (a real ``TextIOWrapper``
over file descriptor 1, not line-buffered), and forces the interleaving: the host leaves
a line open (``print(..., end="")``), then makes the worker write an event before the line
is finished (``wideevents.flush()`` returns only once the sink has written it).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent

SCRIPT = textwrap.dedent("""
    import sys, threading
    import wideevents
    from wideevents.sinks import StdoutSink

    FORMAT, FORCED, FREE = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    wideevents.configure(service_name="host", sinks=[StdoutSink(format=FORMAT)])

    def forced():
        for i in range(FORCED):
            print(f"host{i}-open", end="")                 # the host leaves a line open...
            with wideevents.event("forced") as ev:
                ev.add({"i": i})
            wideevents.flush(10.0)                          # ...and the event is written now
            print(f"-rest{i}")

    def progress():
        for k in range(FORCED):
            print(f"\\rprogress {k}", end="", flush=True)  # a progress bar: flushed, open

    def free():
        for j in range(FREE):
            with wideevents.event("free") as ev:
                ev.add({"j": j})

    threads = [threading.Thread(target=f) for f in (forced, progress, free)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wideevents.shutdown(10.0)
    print(wideevents.stats()["sinks"]["stdout"]["sent"], file=sys.stderr)
""")

FORCED, FREE = 200, 3000


def _run(tmp_path: Path, fmt: str) -> tuple[list[str], int]:
    script = tmp_path / "host.py"
    script.write_text(SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WIDEEVENTS_", "OTEL_"))}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run([sys.executable, str(script), fmt, str(FORCED), str(FREE)],
                          capture_output=True, timeout=120, env=env)  # fmt: skip
    assert 0 == proc.returncode, proc.stderr.decode()
    lines = proc.stdout.decode("utf-8").replace("\r", "\n").split("\n")
    return lines, int(proc.stderr.decode().split()[-1])


HOST_TEXT = re.compile(r"(host\d+-open|-rest\d+|progress \d+)*")


def test_json_events_are_whole_lines_beside_host_prints(tmp_path: Path) -> None:
    """Every line is the host's text or one whole JSON event; every event appears once."""
    lines, sent = _run(tmp_path, "json")
    events = [json.loads(line) for line in lines if line.startswith("{")]
    other = [line for line in lines if not line.startswith("{")]
    forced = sorted(e["i"] for e in events if e["name"] == "forced")
    free = sorted(e["j"] for e in events if e["name"] == "free")
    bad = [line for line in other if not HOST_TEXT.fullmatch(line)]
    assert (list(range(FORCED)), list(range(FREE)), [], FORCED + FREE) == (forced, free, bad, sent)


def test_pretty_events_are_whole_lines_beside_host_prints(tmp_path: Path) -> None:
    """format="pretty": every event line starts at the start of a line, once per event."""
    lines, sent = _run(tmp_path, "pretty")
    starts = re.compile(r"\d{4}-\d\d-\d\dT[^ ]+ (forced|free) ")
    event_lines = [line for line in lines if starts.match(line)]
    other = [line for line in lines if not starts.match(line)]
    forced = sorted(int(re.search(r" i=(\d+)", line).group(1))  # type: ignore[union-attr]
                    for line in event_lines if " forced " in line)  # fmt: skip
    bad = [line for line in other if not HOST_TEXT.fullmatch(line)]
    assert (list(range(FORCED)), FORCED + FREE, [], FORCED + FREE) == (
        forced, len(event_lines), bad, sent)


@pytest.mark.parametrize("fmt", ["json", "pretty"])
def test_a_host_that_ends_its_lines_gets_no_extra_blank_lines(tmp_path: Path, fmt: str) -> None:
    """With whole host lines only, the output has exactly host lines + event lines."""
    script = tmp_path / "tidy.py"
    script.write_text(textwrap.dedent(f"""
        import wideevents
        from wideevents.sinks import StdoutSink
        wideevents.configure(service_name="host", sinks=[StdoutSink(format={fmt!r})])
        for i in range(50):
            print(f"host line {{i}}")
            with wideevents.event("e") as ev:
                ev.add({{"i": i}})
            wideevents.flush(10.0)
        wideevents.shutdown(10.0)
    """))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WIDEEVENTS_", "OTEL_"))}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, timeout=120, env=env)
    lines = proc.stdout.decode().splitlines()
    assert (0, 100, 0) == (proc.returncode, len(lines), lines.count(""))
