"""Run one contender in a fresh interpreter and collect its JSON result line."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from statistics import median
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _env() -> dict[str, str]:
    """This environment with the repository root first on ``PYTHONPATH``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run_worker(module: str, *args: str, timeout: float = 600.0) -> dict[str, Any]:
    """``python -m benchmarks.<module> --worker ARGS``; the last stdout line is JSON."""
    env = _env()
    proc = subprocess.run(
        [sys.executable, "-m", f"benchmarks.{module}", "--worker", *args],
        capture_output=True, text=True, timeout=timeout, cwd=str(ROOT), env=env,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark worker {module} {args} failed:\n{proc.stderr[-3000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def worker_main(worker: Callable[..., dict[str, Any]], run: Callable[..., str]) -> None:
    """A section's entry point. ``--worker CONTENDER N WARMUP [ARGS...]`` runs one contender
    and prints its result as JSON (the line :func:`run_worker` reads; ARGS stay strings);
    without ``--worker`` it prints the section (``--quick``: a smoke run)."""
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        contender, n, warmup, *rest = sys.argv[2:]
        print(json.dumps(worker(contender, int(n), int(warmup), *rest)))
    else:
        print(run(quick="--quick" in sys.argv))


class ReceiverProcess:
    """A loopback receiver from ``tests/support/`` in its own process (``python -m
    tests.support.<module> ARGS``, from the repository root): it prints ``PORT n`` first,
    stops when its stdin closes and counts what it accepted under ``/_receiver/stats``."""

    def __init__(self, module: str, *args: str, counts: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", f"tests.support.{module}", *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=str(ROOT),
            env=_env())
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        if not line or line[0] != "PORT":
            raise RuntimeError(f"tests.support.{module} did not start")
        self.url = f"http://127.0.0.1:{line[1]}"
        self._counts = counts

    def count(self, name: str) -> int:
        """What the receiver accepted for ``name`` (a dataset or a service)."""
        with urllib.request.urlopen(self.url + "/_receiver/stats", timeout=10) as resp:
            return int(json.loads(resp.read())[self._counts].get(name, 0))

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(10)


class RecordFeeder:
    """Feeds a sink the way the pipeline does: each event with the fields the pipeline adds
    (timestamp, name, service, host, pid, trace ids, duration), its orjson serialisation
    (counted), handed over in batches of 512 records."""

    def __init__(self, sink: Any, service: str, batch: int = 512) -> None:
        import socket

        import orjson

        from wideevents._core.ids import new_span_id, new_trace_id
        from wideevents.sinks import Record

        self._sink = sink
        self._batch = batch
        self._pending: list[Any] = []
        self._record = Record
        self._dumps = orjson.dumps
        self._ids = new_trace_id, new_span_id
        self._static = {"name": "predict", "service.name": service,
                        "host.name": socket.gethostname(), "process.pid": os.getpid()}

    def add(self, fields: dict[str, Any]) -> None:
        new_trace_id, new_span_id = self._ids
        fields["timestamp"] = "2024-11-03T12:00:00.000000Z"
        fields.update(self._static)
        fields["trace.trace_id"] = new_trace_id()
        fields["trace.span_id"] = new_span_id()
        fields["duration_ms"] = 1.5
        pending = self._pending
        pending.append(self._record(fields, self._dumps(fields)))
        if len(pending) == self._batch:
            self._sink.export(pending)
            pending.clear()

    def close(self, timeout: float) -> bool:
        self._sink.export(self._pending)
        self._pending.clear()
        return bool(self._sink.close(timeout))


def pipeline_contender(inputs: Any, sink: Any, service: str, timeout: float) -> tuple[
        Callable[[int], None], Callable[[], bool], Any]:
    """wideevents as an application uses it: ``configure()`` with ``sink``, then one
    ``event`` per call of ``emit(i)`` carrying :func:`fixture.build_event`'s fields.
    Returns ``(emit, close, pipeline)``."""
    import wideevents

    from .fixture import build_event

    pipeline = wideevents.configure(service_name=service, sinks=[sink])

    def emit(i: int) -> None:
        ev = wideevents.event("predict")
        ev.add(build_event(inputs, i))
        ev.finish()

    def close() -> bool:
        return wideevents.shutdown(timeout=timeout)

    return emit, close, pipeline


def pin_to_one_core() -> None:
    """Keep this process (all its threads) on one core, where the platform allows it."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[-1]})


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, int(round(q / 100.0 * (len(ordered) - 1)))))
    return ordered[k]


def med(results: list[dict[str, Any]], key: str) -> float:
    return float(median(r[key] for r in results))


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def targets_table(checks: list[tuple[str, str, str, bool]]) -> list[str]:
    """The closing "target | wanted | measured | verdict" table of a section."""
    return [
        "| target | wanted | measured | |",
        "|---|---|---|---|",
        *[f"| {a} | {b} | {c} | {'PASS' if ok else 'FAIL'} |" for a, b, c, ok in checks],
        "",
    ]


class NoopSink:
    """A sink that accepts every batch and does nothing with it: what the pipeline costs
    without a sink's own work."""

    name = "noop"

    def export(self, batch: Any) -> None:
        return None


@contextlib.contextmanager
def noop_pipeline(service: str, **options: Any) -> Iterator[Any]:
    """``wideevents.configure()`` with a :class:`NoopSink` and ``options`` for the block;
    then the pipeline is shut down and, if it is still the current one, uninstalled (the
    next benchmark of the same process starts from the default)."""
    import wideevents
    from wideevents._core import runtime

    pipeline = wideevents.configure(service_name=service, sinks=[NoopSink()], **options)
    try:
        yield pipeline
    finally:
        pipeline.shutdown(timeout=5.0)
        if runtime.current() is pipeline:
            runtime.swap(None)
