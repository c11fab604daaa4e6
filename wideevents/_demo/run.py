"""``wideevents demo``: the search mixer under a real uvicorn, real traffic, real queries."""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
from typing import Any

import wideevents
from wideevents._core.terminal import escape
from wideevents.sinks import FileSink


class _Server:
    """uvicorn in a background thread on an ephemeral loopback port."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       name="demo-uvicorn", daemon=True)

    def __enter__(self) -> _Server:
        self.thread.start()
        deadline = time.monotonic() + 10.0
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        if not self.server.started:
            raise RuntimeError("the demo server did not start within 10 s")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10.0)
        self.sock.close()


class _IncidentNotes(logging.Filter):
    """Appends, to a wideevents log line an injected incident causes, which incident it is:
    the demo's reader should not take a warning the demo provoked for a fault of its own."""

    def __init__(self, notes: dict[str, str]) -> None:
        super().__init__()
        self.notes = notes

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
            for prefix, note in self.notes.items():
                if text.startswith(prefix):
                    record.msg, record.args = f"{text} <- {note}", None
                    break
        except Exception:  # noqa: BLE001 - a note must never cost the log line itself
            pass
        return True


def run_mixer_demo(*, requests: int, seed: int, out: str, extra_sinks: list[str]) -> int:
    notes = _IncidentNotes({})
    log = logging.getLogger("wideevents")
    log.addFilter(notes)
    try:
        return _run_mixer_demo(requests=requests, seed=seed, out=out, extra_sinks=extra_sinks,
                               notes=notes)
    finally:
        log.removeFilter(notes)


def _run_mixer_demo(*, requests: int, seed: int, out: str, extra_sinks: list[str],
                    notes: _IncidentNotes) -> int:
    from wideevents._config import sinks_from_spec

    from .load import run_load, simulate_clicks
    from .mixer import CANARY, Mixer, create_app
    from .report import command_line, run_questions

    file_sink = FileSink(out)  # a bad path fails here with a ConfigurationError (exit 2)
    os.truncate(file_sink.path, 0)  # each run starts a fresh file: the queries describe this run
    sinks: list[Any] = [file_sink]
    for spec in extra_sinks:
        sinks.extend(sinks_from_spec(spec))
    wideevents.configure(service_name="search-mixer", sinks=sinks)
    print(f"wideevents demo: the search mixer under uvicorn, {requests} requests "
          f"(seed {seed}); events -> {escape(out)}", file=sys.stderr)
    mixer = Mixer(seed=seed)
    incidents = mixer.incidents
    told = [f"the vector backend slows down in {incidents.slow_vector_region}"
            if incidents.slow_vector_region else "",
            f"tenant {incidents.zero_feature_tenant}'s click-through prior is silently 0"
            if incidents.zero_feature_tenant else "",
            f"the canary ranker ({CANARY}) scores queries of 34 characters or more NaN"
            if incidents.canary_nonfinite else ""]
    if any(told):
        print("  injected incidents, for the queries below to find:", file=sys.stderr)
        for t in told:
            if t:
                print(f"  - {t}", file=sys.stderr)
    if incidents.canary_nonfinite:
        notes.notes["wideevents.ml: ranking: non-finite scores"] = (
            f"the demo's injected incident: the canary ranker {CANARY} on long queries")
    with _Server(create_app(mixer)) as server:
        result = run_load(f"http://127.0.0.1:{server.port}", requests, seed)
    wideevents.flush(timeout=10.0)  # the worker has cached every prediction for feedback
    clicks = simulate_clicks(result.predictions, seed)
    wideevents.flush(timeout=10.0)
    stats = wideevents.stats()
    print(f"  {result.ok} ok / {result.failed} failed in {result.seconds:.1f} s; {clicks} feedback "
          f"events; emitted {stats['emitted']}, dropped {sum(stats['dropped'].values())}",
          file=sys.stderr)
    for question, _result, table in run_questions(out):
        print(f"\n## {question.title}\n   ({question.finding})\n")
        print(f"$ {escape(command_line(question.spec, out))}\n")
        print(table)  # format_table escapes every cell
    shown = escape(out)
    print(f"\nEvery field of every event is in {shown}: try `wideevents tail {shown}` or your own "
          "`wideevents query`; examples/honeycomb.md shows the same questions in Honeycomb.")
    wideevents.shutdown(timeout=5.0)
    return 0
