"""PrometheusSink in prometheus_client's multiprocess mode, in a fresh process (the client
chooses its value class when first imported, from ``PROMETHEUS_MULTIPROC_DIR``).

``python -m tests.sinks.prometheus_mp_scenario SCENARIO``, with PROMETHEUS_MULTIPROC_DIR
set; prints one JSON line:

- ``weighted``: the sink (namespace ``sink``) and the client's own N ``observe`` calls
  (namespace ``ref``) for the same events, both read back through ``MultiProcessCollector``:
  ``{"multiprocess": bool, "sink": samples, "ref": samples}``.
- ``removed_dir``: the directory is removed after the sink was built, before its first
  series: ``{"stats": ..., "flush": bool, "flush_again": bool}``.
- ``fork_mid_increment``: ``os.fork()`` while another thread is inside the client's
  increment: ``{"child_exit": status, "fork_waited_s": s, "parent_sent": n}``.
- ``missing_dir``: PROMETHEUS_MULTIPROC_DIR names no directory when the sink is built:
  ``{"error": exception class or None, "message": ...}``.
"""

from __future__ import annotations

import faulthandler
import json
import os
import shutil
import sys
import threading
import time
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from tests.sinks.prometheus_support import parse, record, reference
from wideevents.sinks import PrometheusSink

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
# (model.version, duration_ms, samplerate): seconds that are exact binary fractions, so the
# weighted sum and the sum of N additions are the same float.
EVENTS = [("v1", 125.0, 3), ("v1", 7.8125, 1), ("v2", 500.0, 7), ("v2", 2000.0, 2),
          ("v1", 31.25, 12)]


def _collected() -> str:
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    return generate_latest(registry).decode()


def weighted() -> dict[str, Any]:
    sink = PrometheusSink(labels=["model.version"], buckets=BUCKETS, histograms={},
                          namespace="sink", registry=CollectorRegistry())
    sink.export([record({"model.version": v, "duration_ms": ms, "samplerate": n})
                 for v, ms, n in EVENTS])
    reference(CollectorRegistry(), "ref", ["model_version"],
              [({"model_version": v}, ms / 1000.0, n) for v, ms, n in EVENTS], BUCKETS)
    text = _collected()
    return {"multiprocess": sink.stats()["multiprocess"],
            "sink": sorted(map(list, parse(text, "sink_").items())),
            "ref": sorted(map(list, parse(text, "ref_").items()))}


def removed_dir() -> dict[str, Any]:
    sink = PrometheusSink(labels=["model.version"], registry=CollectorRegistry())
    shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    sink.export([record({"model.version": f"v{i}", "duration_ms": 5.0}) for i in range(3)])
    return {"stats": sink.stats(), "flush": sink.flush(1.0), "flush_again": sink.flush(1.0)}


def fork_mid_increment() -> dict[str, Any]:
    """A thread exports back to back; a profile hook (a real interpreter mechanism) stops
    it inside the client's ``MmapedDict.write_value``, which runs under the client's
    multiprocess lock, 0.2 s at each call until the fork is done; then this process forks.
    The child measures one event; it must not hang (faulthandler ends it after 5 s)."""
    sink = PrometheusSink(labels=["model.version"], histograms={}, registry=CollectorRegistry())
    batch = [record({"model.version": "v1", "duration_ms": 3.0}) for _ in range(64)]
    sink.export(batch[:1])
    want, inside, forked, stop = (threading.Event() for _ in range(4))

    def hook(frame: Any, event: str, arg: Any) -> None:
        if (event == "call" and frame.f_code.co_name == "write_value" and want.is_set()
                and not forked.is_set()):
            inside.set()
            forked.wait(0.2)  # the client's lock is held here

    def exporter() -> None:
        sys.setprofile(hook)
        while not stop.is_set():
            sink.export(batch)

    thread = threading.Thread(target=exporter, daemon=True)
    thread.start()
    want.set()
    assert inside.wait(30)
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        faulthandler.dump_traceback_later(5, exit=True)  # exit status 1 if it hangs
        sink.reset_after_fork()
        sink.export(batch[:1])
        os._exit(0 if sink.stats()["sent"] == 1 else 3)
    forked.set()
    waited = time.monotonic() - started
    _, status = os.waitpid(pid, 0)
    stop.set()
    thread.join(30)
    return {"child_exit": os.waitstatus_to_exitcode(status), "fork_waited_s": waited,
            "parent_sent": sink.stats()["sent"]}


def missing_dir() -> dict[str, Any]:
    try:
        PrometheusSink(registry=CollectorRegistry())
    except ValueError as exc:
        return {"error": type(exc).__name__, "message": str(exc)}
    return {"error": None}


if __name__ == "__main__":
    print(json.dumps({"weighted": weighted, "removed_dir": removed_dir,
                      "missing_dir": missing_dir,
                      "fork_mid_increment": fork_mid_increment}[sys.argv[1]]()))
    sys.stdout.flush()
