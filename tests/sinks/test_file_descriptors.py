"""FileSink only ever writes to or closes a descriptor it opened (issue 16, item 1).

When the file cannot be reopened (after a rotation, or in a forked child with ``{pid}``),
the sink holds no descriptor: the host's next ``open()`` may get the freed number, and
that descriptor must receive nothing and stay open. The lost lines are counted
``write_error``; writing resumes once reopening succeeds. Faults are real: a removed
directory and ``RLIMIT_NOFILE`` (in a forked child, so the test process keeps its limit).
Also the flush/close contract (docs/architecture.md, "Sinks"): False once after a loss.
"""

from __future__ import annotations

import os
import resource
import shutil
from pathlib import Path

import orjson
import pytest

from tests.support.honeycomb_receiver import ExactLedger
from wideevents.sinks import FileSink, Record

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")

LINE = 100  # bytes of JSON per record, 101 with its newline: 10 lines fit in 1,024 bytes


def records(n: int, start: int = 0) -> list[Record]:
    out = []
    for i in range(start, start + n):
        fields = {"i": i, "pad": ""}
        size = len(orjson.dumps(fields))
        fields["pad"] = "x" * (LINE - size)
        out.append(Record(fields, orjson.dumps(fields)))
    assert {len(r.json) for r in out} == {LINE}
    return out


def export(sink: FileSink, ledger: ExactLedger, batch: list[Record]) -> None:
    ledger.expect(len(batch))
    sink.export(batch)


def descriptor_of(path: Path) -> int:
    """The number of this process's descriptor open on ``path`` (from /proc/self/fd)."""
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{name}") == str(path):
                return int(name)
        except OSError:
            continue
    raise AssertionError(f"no descriptor open on {path}")


def take_number(number: int, path: Path) -> int:
    """Open ``path`` as the host would, as descriptor ``number`` (the freed one: what the
    host's next open() gets when it is the lowest free number)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    if fd != number:
        os.dup2(fd, number)
        os.close(fd)
    return number


def is_open(fd: int, path: Path) -> bool:
    """True while ``fd`` is still open on ``path`` (the same file, not a reused number)."""
    try:
        held, named = os.fstat(fd), path.stat()
    except OSError:
        return False
    return (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino)


def test_failed_reopen_after_rotation_leaves_the_hosts_descriptor_alone(tmp_path: Path) -> None:
    """Rotation cannot reopen (directory removed): the host's file gets the freed number and
    receives nothing, stays open; lost lines are write_error; writing resumes afterwards."""
    logs = tmp_path / "logs"
    logs.mkdir()
    path = logs / "events.jsonl"
    sink = FileSink(path, max_bytes=1024, backup_count=2)
    ledger = ExactLedger()
    sink.bind(ledger)
    export(sink, ledger, records(10))  # 1,010 bytes: the next line rotates
    number = descriptor_of(path)
    shutil.rmtree(logs)
    export(sink, ledger, records(5, 10))  # rotation: rename and reopen fail
    host = tmp_path / "host.txt"
    host_fd = take_number(number, host)
    try:
        export(sink, ledger, records(5, 15))
        export(sink, ledger, records(5, 20))  # a second rotation attempt
        assert (0, True) == (host.stat().st_size, is_open(host_fd, host))
        assert (10, {}, {"write_error": 15}) == ledger.outcome()
        assert sink.flush() is False  # lines were lost since the last flush
        assert sink.flush() is True  # reported once
        logs.mkdir()
        export(sink, ledger, records(3, 25))
        assert [orjson.loads(line)["i"] for line in path.read_bytes().splitlines()] == [25, 26, 27]
        assert (13, {}, {"write_error": 15}) == ledger.outcome()
        assert (0, True) == (host.stat().st_size, is_open(host_fd, host))
        assert sink.close() is True
        assert is_open(host_fd, host)  # close() closes only the sink's own descriptor
        assert not ledger.overcounted
    finally:
        os.close(host_fd)


def _in_child(check: str, path_template: str, logs: Path, host: Path) -> int:
    """Run one scenario in a forked child; its exit code says what happened (0 = good)."""
    pid = os.fork()
    if pid:
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status)
    code = 99
    try:
        ledger = ExactLedger()
        if check == "fork":
            sink = FileSink(path_template)
            sink.bind(ledger)
            export(sink, ledger, records(2))
            number = descriptor_of(Path(sink.path))
            shutil.rmtree(logs)
            sink.reset_after_fork()  # what the pipeline calls in a forked child
        else:  # "rlimit": rotation while no descriptor can be opened at all
            sink = FileSink(path_template, max_bytes=1024)
            sink.bind(ledger)
            export(sink, ledger, records(10))
            number = descriptor_of(Path(sink.path))
            limits = resource.getrlimit(resource.RLIMIT_NOFILE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (0, limits[1]))
            export(sink, ledger, records(5, 10))  # rotation: the reopen fails with EMFILE
            resource.setrlimit(resource.RLIMIT_NOFILE, limits)
        host_fd = take_number(number, host)
        export(sink, ledger, records(4, 100))
        export(sink, ledger, records(4, 200))
        code = 0
        if host.stat().st_size != 0:
            code |= 1  # the sink wrote into the host's descriptor
        if not is_open(host_fd, host):
            code |= 2  # the sink closed the host's descriptor
        sent, _, dropped = ledger.outcome()
        if check == "fork" and (sent, dropped) != (2, {"write_error": 8}):
            code |= 4
        if check == "rlimit":
            # Reopening succeeds again once descriptors can be opened: writing resumed.
            if (sent, dropped) != (18, {"write_error": 5}):
                code |= 4
    finally:
        os._exit(code)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_failed_reopen_in_a_forked_child_leaves_the_hosts_descriptor_alone(tmp_path: Path) -> None:
    """{pid} file, child cannot open its own (directory removed): the child's next
    descriptor gets the freed number and receives nothing; the lines are write_error."""
    logs = tmp_path / "logs"
    logs.mkdir()
    assert 0 == _in_child("fork", str(logs / "events-{pid}.jsonl"), logs, tmp_path / "host.txt")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_rotation_under_the_descriptor_limit_leaves_the_hosts_descriptor_alone(
        tmp_path: Path) -> None:
    """RLIMIT_NOFILE reached during rotation: the reopen fails (EMFILE), the freed number
    goes to the host and is never written to or closed; writing resumes afterwards."""
    logs = tmp_path / "logs"
    logs.mkdir()
    assert 0 == _in_child("rlimit", str(logs / "events.jsonl"), logs, tmp_path / "host.txt")


def test_dev_full_makes_flush_and_close_report_the_loss_once() -> None:
    """FileSink on /dev/full: flush() is False after the lost lines, True after that; a
    loss after it makes close() False."""
    sink = FileSink("/dev/full")
    ledger = ExactLedger()
    sink.bind(ledger)
    export(sink, ledger, records(3))
    assert (0, {}, {"write_error": 3}) == ledger.outcome()
    assert [False, True] == [sink.flush(), sink.flush()]
    export(sink, ledger, records(1))
    assert sink.close() is False


def test_lines_exported_after_close_are_counted_shutdown(tmp_path: Path) -> None:
    """After close() the sink opens nothing again: later lines are dropped "shutdown"."""
    path = tmp_path / "events.jsonl"
    sink = FileSink(path)
    ledger = ExactLedger()
    sink.bind(ledger)
    export(sink, ledger, records(2))
    assert sink.close() is True
    export(sink, ledger, records(3, 2))
    assert (2, {}, {"shutdown": 3}) == ledger.outcome()
    assert 2 == len(path.read_bytes().splitlines())
    assert sink.close() is False  # the loss after the first close
