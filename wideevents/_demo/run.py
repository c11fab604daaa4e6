"""``wideevents demo``: the search mixer under a real uvicorn, real traffic, real queries."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import Any, Literal

import wideevents
from wideevents._core.terminal import escape
from wideevents.sinks import FileSink

# Requests in flight. The mixer spends ~10 ms of CPU per request (three real backend calls
# through httpx among it) under one GIL: more in flight only queues them on its event loop,
# and the events would then measure that queue instead of the backends (a 2-core machine).
LOAD_CONCURRENCY = 6


class _Server:
    """uvicorn in a background thread on an ephemeral loopback port."""

    def __init__(self, app: Any, *, lifespan: Literal["on", "off"] = "off") -> None:
        import uvicorn

        from .backends import loopback_listener

        self.sock = loopback_listener()  # TCP_NODELAY on its connections: see its docstring
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan=lifespan)
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
    from wideevents.integrations import clients

    from .backends import BackendServers
    from .load import run_load, simulate_clicks
    from .mixer import CANARY, Mixer, create_app
    from .report import (
        analysis_command,
        command_line,
        run_analyses,
        run_questions,
        write_html_report,
    )

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
            if incidents.canary_nonfinite else "",
            f"the canary's click probability ({CANARY}) is over-confident"
            if incidents.canary_overconfident else ""]
    if any(told):
        print("  injected incidents, for the queries below to find:", file=sys.stderr)
        for t in told:
            if t:
                print(f"  - {t}", file=sys.stderr)
    notes.notes["wideevents.ml: shadow: both rankings are empty"] = (
        "a request whose three backends all failed or timed out (the demo's error rates)")
    if incidents.canary_nonfinite:
        notes.notes["wideevents.ml: ranking: non-finite scores"] = (
            f"the demo's injected incident: the canary ranker {CANARY} on long queries")
    # The backends are real HTTP services on loopback; the instrumentation records each call
    # in the request's event as http.client.<backend>.count / .duration_ms / .errors.
    was_instrumented = bool(clients.instrumented())
    try:
        with BackendServers(seed, incidents.slow_vector_region) as backends:
            clients.instrument(peer_names=backends.peer_names)
            mixer.bind_backends(backends.urls)
            with _Server(create_app(mixer), lifespan="on") as server:
                result = run_load(f"http://127.0.0.1:{server.port}", requests, seed,
                                  concurrency=LOAD_CONCURRENCY)
    finally:
        if not was_instrumented:
            clients.uninstrument()  # the demo's own patches, not a host's
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
    # The same incidents answered in one command each (docs/analysis.md), the drift against
    # the training profile saved beside the events.
    profile = os.path.join(os.path.dirname(out), "profile.json")
    mixer.profile.save(profile)
    for analysis, text in run_analyses(out, profile):
        print(f"\n## {analysis.title}\n   ({analysis.finding})\n")
        print(f"$ {escape(analysis_command(analysis, out, profile))}\n")
        print(text)  # the commands' text output escapes every value
    shown = escape(out)
    print(f"\nEvery field of every event is in {shown}: try `wideevents tail {shown}` or your own "
          "`wideevents query`; examples/honeycomb.md shows the same questions in Honeycomb.")
    page = write_html_report(out)  # the last step: the same answers as pictures (issue 20)
    if page:
        print(f"The charts: {escape(page)} (one offline HTML file: open it in a browser).")
    wideevents.shutdown(timeout=5.0)
    return 0
