"""A plain process using ``wideevents.install_signal_handlers()``, for the signal tests.

    python -m tests.support.apps.signal_scenario MODE EVENTS TIMEOUT

Sends EVENTS events to the Honeycomb receiver at ``HONEYCOMB_API_HOST`` (batches wait
up to 60 s in the sender, so only a flush delivers them), installs the handlers with
TIMEOUT, prints ``READY`` and waits. MODE picks the handler in place before:

- ``default``: Python's defaults, set explicitly (SIGTERM terminates; SIGINT raises
  KeyboardInterrupt, printed);
- ``python``: a Python handler that prints ``PREVIOUS <signum>`` and exits with 3;
- ``ignore``: SIG_IGN (the process goes on: it prints ``ALIVE`` and exits 0 later);
- ``locked``: none, and the signal is raised while the main thread holds the pipeline's
  lock, as when it arrives inside ``finish()``;
- ``busy``: none, and the main thread emits events in a tight loop after ``READY``.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import sys
import time

import wideevents
from wideevents._core import runtime
from wideevents.sinks import HoneycombSink


def main() -> None:
    mode, count, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    # A scenario that hangs shows where: every thread's stack on stderr after 25 s.
    faulthandler.dump_traceback_later(25, exit=False)
    # "default" means Python's defaults, whatever this process inherited: a test run started
    # in the background by a non-interactive shell (`cmd &`) inherits SIGINT ignored, and
    # Python then never installs its KeyboardInterrupt handler (seen in a CI rehearsal).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    wideevents.configure(service_name="signal-scenario",
                         sinks=[HoneycombSink(dataset="signals", compression="gzip",
                                              send_interval=60.0, request_timeout=30.0)])
    for i in range(count):
        with wideevents.event("before-signal", i=i) as ev:
            ev.add({"request.id": f"sig-{i}"})
    if mode == "python":
        def previous(signum: int, frame: object) -> None:
            print(f"PREVIOUS {signum}", flush=True)
            os._exit(3)

        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous)
    elif mode == "ignore":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    wideevents.install_signal_handlers(timeout=timeout)
    try:
        print("READY", flush=True)
        if mode == "locked":
            lock = runtime.active_pipeline()._lock
            with lock:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.2)  # the handler runs in here, while the lock is held
            time.sleep(60)
        elif mode == "busy":
            i = 0
            while True:
                with wideevents.event("busy", i=i):
                    pass
                i += 1
        elif mode == "ignore":
            time.sleep(timeout + 0.5)
            print("ALIVE", wideevents.stats()["sinks"]["honeycomb"]["sent"], flush=True)
            return
        else:
            time.sleep(60)
    except KeyboardInterrupt:
        print("KeyboardInterrupt", flush=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
