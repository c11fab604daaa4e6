"""A WSGI prediction service for the gunicorn feedback test (tests/ml/test_feedback_gunicorn.py).

``POST /predict`` scores a row and returns the prediction id and its feedback context;
``POST /feedback`` emits the feedback with the context the client sent back. Each worker
writes its events to ``$FEEDBACK_EVENTS`` with ``{pid}`` filled in; the feedback key comes
from ``WIDEEVENTS_FEEDBACK_KEY``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from typing import Any

import wideevents
from wideevents.sinks import FileSink

wideevents.configure(sinks=[FileSink(os.environ["FEEDBACK_EVENTS"])])


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    size = int(environ.get("CONTENT_LENGTH") or 0)
    body = json.loads(environ["wsgi.input"].read(size) or b"{}")
    if environ["PATH_INFO"] == "/predict":
        with wideevents.event("predict") as ev:
            ev.model("churn", "v7", stage="prod")
            ev.add({"slice.plan": body["plan"]})
            p = body["p"]
            ev.scores([1.0 - p, p], labels=["stay", "churn"], threshold=0.5)
            reply = {"id": ev.prediction_id, "context": ev.feedback_context()}
    else:
        wideevents.feedback(body["id"], label=body["label"], context=body["context"])
        reply = {}
    reply["pid"] = os.getpid()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(reply).encode()]
