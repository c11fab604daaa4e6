"""The docs/prometheus.md gunicorn recipe, for tests/integrations/test_prometheus_gunicorn.py.

Flask behind ``WideEventsWSGIMiddleware``, events to a ``PrometheusSink`` (the client's
default registry, written to ``PROMETHEUS_MULTIPROC_DIR`` by each worker) and then to
``FileSink(PROM_EVENTS)`` (``{pid}`` in the path: one file per worker), behind a
``DeterministicSampler(PROM_RATE, key="request.key")``. ``/metrics`` is
``make_wsgi_app()`` over a registry holding only a ``MultiProcessCollector`` (the
prometheus_client documentation, "Multiprocess Mode (E.g. Gunicorn)"), mounted outside the
wide-event middleware so scrapes are not traffic. The PrometheusSink comes first: when an
event is in the file, the sink has measured it (the worker exports to sinks in order).
"""

from __future__ import annotations

import os
import time
from typing import Any

from flask import Flask, request
from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.multiprocess import MultiProcessCollector
from werkzeug.middleware.dispatcher import DispatcherMiddleware

import wideevents
from wideevents.integrations.wsgi import WideEventsWSGIMiddleware
from wideevents.sampling import DeterministicSampler
from wideevents.sinks import FileSink, PrometheusSink

wideevents.configure(
    service_name="ranker-gunicorn",
    sinks=[PrometheusSink(), FileSink(os.environ["PROM_EVENTS"])],
    sampler=DeterministicSampler(int(os.environ.get("PROM_RATE", "1")), key="request.key"),
)

flask_app = Flask(__name__)


@flask_app.get("/predict/<version>")
def predict(version: str) -> Any:
    time.sleep(int(request.args["ms"]) / 1000)
    wideevents.current_event().model("ranker", version)
    wideevents.add({"request.key": request.args["key"]})
    if request.args.get("fail") == "1":
        raise RuntimeError("model failed")
    return {"version": version, "pid": os.getpid()}


def _metrics_app() -> Any:
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    return make_wsgi_app(registry)


app = DispatcherMiddleware(WideEventsWSGIMiddleware(flask_app.wsgi_app),
                           {"/metrics": _metrics_app()})
