"""A Flask app for the process-lifecycle tests (served by gunicorn, preloaded).

Events go to the Honeycomb sink configured here; ``HONEYCOMB_API_HOST`` and
``HONEYCOMB_API_KEY`` come from the test. ``REL_SEND_INTERVAL`` (seconds) is how long a
partial batch may wait in the sender: the tests set it longer than the run, so only the
exit path of each worker can deliver the events. ``REL_EXIT_TIMEOUT=0`` leaves the
delivery to the ``worker_exit`` hook of ``gunicorn_conf.py`` (the documented recipe).
"""

from __future__ import annotations

import os

from flask import Flask

import wideevents
from wideevents.integrations.wsgi import WideEventsWSGIMiddleware
from wideevents.sinks import HoneycombSink

wideevents.configure(
    service_name="reliability-flask",
    exit_timeout=float(os.environ.get("REL_EXIT_TIMEOUT", "2")),
    sinks=[HoneycombSink(dataset="reliability-flask", compression="gzip",
                         send_interval=float(os.environ.get("REL_SEND_INTERVAL", "0.2")))],
)

app = Flask(__name__)
app.wsgi_app = WideEventsWSGIMiddleware(app.wsgi_app)  # type: ignore[method-assign]


@app.get("/work/<int:i>")
def work(i: int) -> dict[str, int]:
    wideevents.add({"work.i": i})
    return {"i": i, "pid": os.getpid()}
