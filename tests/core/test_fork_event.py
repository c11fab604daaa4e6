"""os.fork() inside an open ``with event()`` (issue 16, item 21): only the parent sends the
event it opened; the forked child counts its copy (``stats()["fields"]["dropped"]["forked"]``)
and sends only the events it starts itself.

Each scenario runs in a fresh interpreter (``sys.executable``), so the test process itself
is never forked; the fork, the FileSink and the exits are real.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from tests.support.json_lines import parse_lines

FORK_INSIDE_EVENT = """
    import json, os, sys
    import wideevents
    from wideevents.sinks import FileSink

    wideevents.configure(service_name="fork-test", sinks=[FileSink(sys.argv[1])])
    parent_pid = os.getpid()
    child = 0
    with wideevents.event("request") as outer:
        with wideevents.event("inner") as inner:
            outer.add({"before.fork": 1})
            child = os.fork()
            side = "child" if child == 0 else "parent"
            inner.add({"side": side})
            outer.add({"side": side})
            with wideevents.event("nested-after-fork", side=side):
                pass
    if child == 0:
        for i in range(2):
            with wideevents.event("child-own", i=i):
                pass
        wideevents.flush(5.0)
        with open(sys.argv[2], "w") as out:
            json.dump(wideevents.stats(), out)
        sys.exit(0)
    _, status = os.waitpid(child, 0)
    wideevents.flush(5.0)
    print(json.dumps({"parent": parent_pid, "child": child, "status": status,
                      "stats": wideevents.stats()}))
"""


Outcome = tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    """The scenario run once: the parent's report, the child's stats(), the file's events."""
    tmp_path = tmp_path_factory.mktemp("fork")
    script = tmp_path / "scenario.py"
    script.write_text(textwrap.dedent(FORK_INSIDE_EVENT))
    events_path, child_stats = tmp_path / "events.jsonl", tmp_path / "child-stats.json"
    proc = subprocess.run([sys.executable, str(script), str(events_path), str(child_stats)],
                          capture_output=True, timeout=60, cwd=str(tmp_path))
    assert 0 == proc.returncode, proc.stderr.decode()
    info = json.loads(proc.stdout)
    assert 0 == info["status"]
    return info, json.loads(child_stats.read_text()), parse_lines(events_path.read_bytes())


def test_fork_inside_an_open_event_sends_it_once(outcome: Outcome) -> None:
    """The file holds exactly one copy of each event open at fork time (the parent's), the
    events each process started after the fork, and the child's own events."""
    info, _, events = outcome
    parent, child = info["parent"], info["child"]
    got = sorted((e["name"], e["process.pid"], e.get("side"), e.get("i")) for e in events)
    expected = sorted([
        ("request", parent, "parent", None),
        ("inner", parent, "parent", None),
        ("nested-after-fork", parent, "parent", None),
        ("nested-after-fork", child, "child", None),
        ("child-own", child, None, 0),
        ("child-own", child, None, 1),
    ])
    assert expected == got
    request = next(e for e in events if e["name"] == "request")
    assert 1 == request["before.fork"]


def test_forked_copies_are_counted_in_the_child_not_as_losses(outcome: Outcome) -> None:
    """The child counts the two parent events it did not send as fields.dropped.forked; its
    own three events are all sent; the parent's accounting is untouched."""
    info, child_stats, _ = outcome
    assert {"forked": 2} == child_stats["fields"]["dropped"]
    assert (3, {}) == (child_stats["emitted"], child_stats["dropped"])
    assert 3 == child_stats["sinks"]["file"]["sent"]
    parent_stats = info["stats"]
    assert ({}, 3, {}) == (parent_stats["fields"]["dropped"], parent_stats["emitted"],
                           parent_stats["dropped"])


def test_child_events_started_inside_the_parents_event_keep_its_trace(outcome: Outcome) -> None:
    """An event the child starts inside the inherited block is the inner event's child span."""
    _, _, events = outcome
    inner = next(e for e in events if e["name"] == "inner")
    nested = [e for e in events if e["name"] == "nested-after-fork"]
    assert [(inner["trace.trace_id"], inner["trace.span_id"])] * 2 == [
        (e["trace.trace_id"], e["trace.parent_id"]) for e in nested]
