"""A FastAPI app for the process-lifecycle tests (served by ``uvicorn --workers 2``).

Configured as :mod:`flask_app` is. With ``REL_LIFESPAN_FLUSH=1`` the app uses the
documented recipe (``wideevents.shutdown()`` when the lifespan ends); without it, it has
no wideevents code beyond ``configure()`` and the middleware.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

import wideevents
from wideevents.integrations.asgi import WideEventsMiddleware
from wideevents.sinks import HoneycombSink

wideevents.configure(
    service_name="reliability-fastapi",
    sinks=[HoneycombSink(dataset="reliability-fastapi", compression="gzip",
                         send_interval=float(os.environ.get("REL_SEND_INTERVAL", "0.2")))],
)


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    yield
    # uvicorn's workers end by re-raising SIGTERM with the default action: atexit never
    # runs there, so the events still buffered are delivered here, after the last request.
    wideevents.shutdown(timeout=5.0)


app = FastAPI(lifespan=lifespan if os.environ.get("REL_LIFESPAN_FLUSH") == "1" else None)
app.add_middleware(WideEventsMiddleware)


@app.get("/work/{i}")
async def work(i: int) -> dict[str, int]:
    wideevents.add({"work.i": i})
    return {"i": i, "pid": os.getpid()}
