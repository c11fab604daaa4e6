"""Everything that could leak an API key, in one process whose output the test scans.

    python -m tests.support.apps.secrets_scenario

Keys come from the environment (``HONEYCOMB_API_KEY``, ``OTEL_EXPORTER_OTLP_HEADERS``) and
from arguments. The scenario: debug logging at DEBUG for the ``wideevents``, ``libhoney``
and ``urllib3`` loggers (tracebacks included); wrong keys (401 from both receivers);
faults (500, 429, reset, malformed, hang with a bounded shutdown, refused connections);
configuration errors with the keys in the input (each setting that once echoed its value:
``HONEYCOMB_API_HOST``, the OTLP endpoint, ``OTEL_EXPORTER_OTLP_TIMEOUT/PROTOCOL/
COMPRESSION``, ``OTEL_RESOURCE_ATTRIBUTES``, ``WIDEEVENTS_SINK``), printed with their
tracebacks; backends that reflect the keys in their replies (a 400 body, per-event error
texts, a marker refusal, an OTLP Status message and partial-success message); ``repr()``
and ``str()`` of sinks, clients and stats; events whose fields hold the keys, printed by
a StdoutSink. Canary strings prove that each channel is captured.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from typing import Any

import wideevents
from tests.support.honeycomb_receiver import HoneycombReceiver
from tests.support.otlp_receiver import OTLPReceiver
from tests.support.scripted_http import Request, ScriptedServer, answer, reply
from wideevents.sinks import HoneycombSink, OTLPSink, StdoutSink

K1 = os.environ["HONEYCOMB_API_KEY"]
K2 = os.environ["REL_SECOND_KEY"]
K3 = os.environ["REL_THIRD_KEY"]


def show_error(label: str, build: Callable[[], Any]) -> None:
    """Run a call expected to fail at configuration time; print what the user would see."""
    try:
        build()
    except Exception as exc:  # noqa: BLE001 - the point is to print it
        print(f"{label}: {type(exc).__name__}: {exc}")
        print(repr(exc))
        traceback.print_exc()
    else:
        print(f"{label}: accepted")


def main() -> None:
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr,
                        format="%(levelname)s %(name)s %(threadName)s %(message)s")
    for name in ("wideevents", "libhoney", "urllib3"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    logging.captureWarnings(True)
    warnings.simplefilter("always")

    print("CANARY-STDOUT")
    print("CANARY-STDERR", file=sys.stderr)
    logging.getLogger("libhoney").debug("CANARY-LIBHONEY")
    logging.getLogger("urllib3").debug("CANARY-URLLIB3")
    logging.getLogger("wideevents").debug("CANARY-WIDEEVENTS")
    try:
        raise RuntimeError("CANARY-TRACEBACK")
    except RuntimeError:
        logging.getLogger("wideevents").debug("with traceback", exc_info=True)

    # -- configuration errors with the keys in the input ---------------------------------
    show_error("key with space", lambda: HoneycombSink(api_key=K1 + " x", api_host="http://h"))
    show_error("quoted key", lambda: HoneycombSink(api_key=f'"{K1}"', api_host="http://h"))
    show_error("bad host", lambda: HoneycombSink(api_key=K1, api_host="ftp://host"))
    show_error("bad compression", lambda: HoneycombSink(api_key=K1, compression="brotli"))
    show_error("headers item", lambda: OTLPSink("http://h", headers=f"x-honeycomb-team{K2}"))
    show_error("header value", lambda: OTLPSink("http://h", headers={"x-team": K2 + "\n"}))
    show_error("header name", lambda: OTLPSink("http://h", headers={"x team": K3}))
    os.environ["OTEL_EXPORTER_OTLP_HEADERS"] = f"x-honeycomb-team={K2},{K3}"
    show_error("env headers", lambda: wideevents.configure(sinks="otlp"))
    os.environ["OTEL_EXPORTER_OTLP_HEADERS"] = f"x-honeycomb-team={K2},authorization=Bearer%20{K3}"
    os.environ["HONEYCOMB_API_HOST"] = "http://127.0.0.1:1/?q=1"
    show_error("env host", lambda: wideevents.configure(sinks="honeycomb"))
    for value in (f"honeycomb:{K1}", f"otlp:{K2}", K1, f"{K3}:x"):
        os.environ["WIDEEVENTS_SINK"] = value
        show_error("env sink", lambda: wideevents.configure())
    del os.environ["WIDEEVENTS_SINK"]
    # Each setting that once echoed its value in a ConfigurationError.
    env_cases = [
        ("HONEYCOMB_API_HOST", K1, lambda: HoneycombSink(api_key="k")),
        ("HONEYCOMB_API_HOST", f"https://api.honeycomb.io:{K2}", lambda: HoneycombSink(api_key="k")),
        ("HONEYCOMB_API_HOST", f"ftp://{K3}", lambda: HoneycombSink(api_key="k")),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", K2, lambda: OTLPSink()),
        ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", f"grpc://collector/{K1}", lambda: OTLPSink()),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", K3, lambda: OTLPSink("http://h")),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", K1, lambda: OTLPSink("http://h")),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", K2, lambda: OTLPSink("http://h")),
        ("OTEL_RESOURCE_ATTRIBUTES", f"service.name=x,{K1}", lambda: wideevents.configure()),
        ("OTEL_RESOURCE_ATTRIBUTES", f"{K3}", lambda: OTLPSink("http://h")),
    ]
    saved = dict(os.environ)
    for name, value, build in env_cases:
        os.environ[name] = value
        show_error(f"env {name}", build)
        os.environ.clear()
        os.environ.update(saved)
    # (Credentials inside a URL and keys in header names: test_secrets_in_urls_and_header_names.)

    # -- wrong keys, faults, shutdown against hung backends ------------------------------
    with HoneycombReceiver(api_key="the-receiver-wants-another-key") as wrong, \
            HoneycombReceiver(api_key=K1) as right, \
            OTLPReceiver(required_headers={"x-honeycomb-team": "another"}) as otlp:
        os.environ["HONEYCOMB_API_HOST"] = wrong.url
        sinks = [
            HoneycombSink(),  # key and host from the environment: 401
            HoneycombSink(dataset="faults", api_host=right.url, max_attempts=5,
                          backoff_initial=0.05, backoff_max=0.1, request_timeout=1.0),
            OTLPSink(otlp.url),  # headers from the environment: 401
            StdoutSink(),
        ]
        # Beyond the defaults (api_key, authorization, cookie, password, secret...).
        pipeline = wideevents.configure(service_name="secrets", sinks=sinks,
                                        redact=["x-honeycomb-team", "*_secret"])
        for sink in sinks:
            print("repr", repr(sink), "str", str(sink))
        print("repr client", repr(sinks[0].client), repr(sinks[0].client.xmit))
        print("repr pipeline", repr(pipeline))
        for fault in ("500", "429", "reset", "malformed"):
            right.inject(fault)
        for i in range(20):
            with wideevents.event("leak-check", i=i) as ev:
                ev.add({"api_key": K1, "authorization": f"Bearer {K3}", "db.password": K2,
                        "headers.x-honeycomb-team": K1, "Cookie": K2, "client_secret": K3})
        wideevents.flush(5)
        right.refuse_for(0.5)
        for i in range(5):
            with wideevents.event("during-refusal", i=i):
                pass
        wideevents.flush(3)
        time.sleep(0.7)  # listening again
        right.fault_for("hang", 30)
        for i in range(5):
            with wideevents.event("during-hang", i=i):
                pass
        print("shutdown", wideevents.shutdown(timeout=1.5))
        right.release()
        print("STATS", json.dumps(wideevents.stats()))

    # -- backends that reflect the keys in their replies ---------------------------------
    replies = {"batch": 0, "otlp": 0}

    def reflect(request: Request) -> bytes:
        echoed = " ".join(request.headers.values())  # every header value, keys included
        if request.path.startswith("/1/markers/"):
            return reply(403, json.dumps({"error": f"no markers for {echoed}"}).encode())
        kind = "batch" if request.path.startswith("/1/batch/") else "otlp"
        replies[kind] += 1
        if replies[kind] == 1:
            if kind == "batch":
                return reply(400, f"<html>400 bad request from {echoed}</html>".encode(),
                             "text/html")
            return reply(400, json.dumps({"code": 3, "message": f"refused {echoed}"}).encode())
        if kind == "batch":
            events = json.loads(request.body)
            return reply(200, json.dumps([{"status": 400, "error": f"unknown key {echoed}"}
                                          for _ in events]).encode())
        return reply(200, json.dumps({"partialSuccess": {
            "rejectedLogRecords": "1", "errorMessage": f"dropped for {echoed}"}}).encode())

    with ScriptedServer(answer(reflect)) as mirror:
        os.environ.pop("HONEYCOMB_API_HOST", None)
        mirrored = [HoneycombSink(dataset="mirror", api_host=mirror.url, send_interval=0.05),
                    OTLPSink(mirror.url, encoding="json", send_interval=0.05)]
        wideevents.configure(service_name="mirror", sinks=mirrored)
        for round_ in range(2):
            for i in range(3):
                with wideevents.event("mirror", i=i, round=round_):
                    pass
            wideevents.flush(5)
        print("marker", mirrored[0].marker("deploy", timeout=5))
        print("MIRROR", json.dumps(wideevents.stats()))
        wideevents.shutdown(timeout=2)
        print("mirror requests", len(mirror.requests))


if __name__ == "__main__":
    main()
