"""wideevents' threads never take the host's signals (_core/threads.py).

A signal sent to the process goes to one thread that does not block it (signal(7),
"Signal mask and pending signals"); CPython runs handlers on the main thread only, and a
main thread blocked in a system call notices a signal only if it was delivered to it
(Python docs, signal module, "Signals and threads"). Found by the lifecycle test on a
loaded machine: a scenario sleeping 60 s ignored SIGINT, delivered to a background thread.
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import pytest

import wideevents
from tests.support.honeycomb_receiver import running
from wideevents.sampling import DynamicSampler
from wideevents.sinks import HoneycombSink


def blocked_signals(native_id: int) -> set[int]:
    """The signals a thread blocks, read from /proc (SigBlk is a hex mask, bit n-1 = n)."""
    status = Path(f"/proc/self/task/{native_id}/status").read_text()
    mask = int(next(line.split()[1] for line in status.splitlines()
                    if line.startswith("SigBlk:")), 16)
    return {n for n in range(1, 65) if mask >> (n - 1) & 1}


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_every_wideevents_thread_blocks_the_hosts_signals() -> None:
    """The worker, the sender threads and a sampler's thread block SIGINT, SIGTERM and the
    other asynchronous signals; faults stay unblocked; the main thread is untouched."""
    main_before = blocked_signals(threading.main_thread().native_id or 0)
    with running() as rx:
        wideevents.configure(
            sinks=[HoneycombSink(rx.api_key, "ds", rx.url, send_interval=0.01)],
            sampler=DynamicSampler(goal_rate=2, key_fields=["name"]))
        for i in range(50):
            with wideevents.event("e", i=i):
                pass
        assert wideevents.flush(10.0) is True
        ours = [t for t in threading.enumerate() if t.name.startswith("wideevents-")]
        names = {t.name.rsplit("-", 1)[0] if t.name.endswith("sender") else t.name
                 for t in ours}
        assert {"wideevents-worker", "wideevents-honeycomb"} <= names
        for thread in ours:
            blocked = blocked_signals(thread.native_id or 0)
            assert {signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1} <= blocked, (
                thread.name)
            assert not {signal.SIGSEGV, signal.SIGBUS, signal.SIGFPE} & blocked, thread.name
    assert main_before == blocked_signals(threading.main_thread().native_id or 0)
