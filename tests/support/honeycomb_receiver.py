"""A loopback Honeycomb Events API for tests and benchmarks (a real HTTP/1.1 server).

Implements the contract of docs/backends.md, "Honeycomb Events API":
``POST /1/batch/{dataset}`` with ``X-Honeycomb-Team`` (401 otherwise), bodies optionally
gzip or zstd, a JSON array of ``{"data", "time", "samplerate"}`` answered with one
``{"status": 202}`` or ``{"status": 400, "error": ...}`` per event in order; per-event
limits (2,000 fields: "Event has too many columns.", 1 MB per event, 64 KB strings); a 413
past the batch limit; ``POST /1/markers/{dataset}``. Faults can be injected: HTTP
500/503/429/401/413, slow replies, connection resets, malformed reply bodies, replies that
never come, a per-event 500 for the first event ("partial"), and refused connections for a
period (the listening socket is closed and the same port bound again).

Also :class:`ExactLedger`, the test ledger that fails when a record is reported twice.

As a script (the benchmarks run it in its own process)::

    python -m tests.support.honeycomb_receiver --key KEY [--delay 0.1] [--no-store]

prints ``PORT <n>`` and serves until stdin closes; ``GET /_receiver/stats`` returns the
event counts per dataset.
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import unquote

import orjson

from .loopback_http import LoopbackHandler, LoopbackReceiver, LoopbackServer, slow_reply
from .loopback_http import decode_body as _decode

MAX_FIELDS = 2000
MAX_EVENT_BYTES = 1_000_000
MAX_STRING_BYTES = 64 * 1024
MAX_BATCH_BYTES = 5_000_000
FAULTS = ("500", "503", "429", "401", "413", "slow", "reset", "malformed", "hang", "partial")


@dataclass
class RequestInfo:
    """One batch request as received."""

    dataset: str
    encoding: str
    wire_bytes: int
    body_bytes: int
    events: int
    status: int
    fault: str


_Server = LoopbackServer  # the name support/reliability.py builds its faulty receiver on


class _Handler(LoopbackHandler):
    def _reply(self, status: int, body: Any) -> None:
        data = body if isinstance(body, bytes) else orjson.dumps(body)
        self.send_body(status, data, "application/json")

    def not_found(self, message: str) -> None:
        self._reply(404, {"error": message})

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        receiver = cast(HoneycombReceiver, self.server.receiver)
        raw = self.read_body()
        parts = self.path.split("/")
        if len(parts) != 4 or parts[1] != "1" or parts[2] not in ("batch", "markers"):
            self.not_found("unknown endpoint")
            return
        key = self.headers.get("X-Honeycomb-Team")
        if not key:
            self._reply(401, {"error": "missing API key"})
            return
        if key != receiver.api_key:
            self._reply(401, {"error": "unknown API key - check your credentials"})
            return
        dataset = unquote(parts[3])
        if parts[2] == "markers":
            self._reply(*receiver.handle_marker(dataset, raw))
            return
        encoding = (self.headers.get("Content-Encoding") or "").strip().lower()
        status, body, fault = receiver.handle_batch(dataset, encoding, raw)
        if not self.ended_by_fault(fault):
            self._reply(status, body)


class HoneycombReceiver(LoopbackReceiver):
    """The server; use as a context manager. ``url`` is the api_host to give the sink."""

    handler = _Handler
    faults = FAULTS
    thread_name = "honeycomb-receiver"
    stats_key = "events"

    def __init__(self, api_key: str = "test-key", *, store: bool = True,
                 max_batch_bytes: int = MAX_BATCH_BYTES, delay: float = 0.0) -> None:
        super().__init__()
        self.api_key = api_key
        self.store = store
        self.max_batch_bytes = max_batch_bytes
        self.delay = delay
        self.events: list[dict[str, Any]] = []
        self.markers: list[dict[str, Any]] = []
        self.requests: list[RequestInfo] = []

    # -- assertions --------------------------------------------------------------------------
    def received(self, dataset: str | None = None) -> list[dict[str, Any]]:
        """Accepted events (each ``{"dataset", "data", "time", "samplerate"}``)."""
        with self.lock:
            return [e for e in self.events if dataset is None or e["dataset"] == dataset]

    # -- the Events API ----------------------------------------------------------------------
    def handle_batch(self, dataset: str, encoding: str, raw: bytes) -> tuple[int, Any, str]:
        fault = self._next_fault()
        if fault in ("500", "503", "429", "401"):
            errors = {"500": "internal error", "503": "service unavailable",
                      "429": "request dropped due to rate limiting", "401": "unknown API key"}
            return int(fault), {"error": errors[fault]}, fault
        if fault in ("reset", "hang"):
            return 0, None, fault
        try:
            body = _decode(encoding, raw)
        except ValueError as exc:
            return 400, {"error": str(exc)}, fault
        if fault == "413" or len(body) > self.max_batch_bytes:
            return 413, {"error": "request body is too large"}, fault
        try:
            batch = orjson.loads(body)
        except orjson.JSONDecodeError:
            return 400, {"error": "request body is malformed and cannot be read as JSON"}, fault
        if not isinstance(batch, list):
            return 400, {"error": "request body should be a JSON array of events"}, fault
        statuses: list[dict[str, Any]] = []
        accepted: list[dict[str, Any]] = []
        for index, element in enumerate(batch):
            if fault == "partial" and index == 0:  # a per-event server error: resend it
                statuses.append({"status": 500, "error": "internal error, try again"})
                continue
            error = _check_event(element)
            if error:
                statuses.append({"status": 400, "error": error})
                continue
            statuses.append({"status": 202})
            accepted.append({"dataset": dataset, "data": element["data"],
                             "time": element.get("time"), "samplerate": element.get("samplerate")})
        slow_reply(fault, self.delay)
        with self.lock:
            if self.store:
                self.events.extend(accepted)
            self.counts[dataset] = self.counts.get(dataset, 0) + len(accepted)
            self.requests.append(RequestInfo(dataset, encoding, len(raw), len(body), len(batch),
                                             200, fault))
        if fault == "malformed":
            return 200, b"<html>proxy says hi", fault
        return 200, statuses, fault

    def handle_marker(self, dataset: str, raw: bytes) -> tuple[int, Any]:
        try:
            marker = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return 400, {"error": "request body is malformed"}
        if not isinstance(marker, dict) or not isinstance(marker.get("message", ""), str):
            return 400, {"error": "a marker is a JSON object"}
        with self.lock:
            marker = dict(marker, dataset=dataset, id=f"m{len(self.markers) + 1}")
            self.markers.append(marker)
        return 201, marker



def _check_event(element: Any) -> str:
    if not isinstance(element, dict) or not isinstance(element.get("data"), dict):
        return "event must be an object with a data object"
    data = element["data"]
    if len(data) > MAX_FIELDS:
        return "Event has too many columns."
    stamp = element.get("time")
    if stamp is not None and not _is_rfc3339(stamp):
        return "time must be an RFC 3339 string"
    rate = element.get("samplerate")
    if rate is not None and (type(rate) is not int or rate < 0):
        return "samplerate must be a non-negative integer"
    if len(orjson.dumps(data)) >= MAX_EVENT_BYTES:
        return f"Event exceeds max event size of {MAX_EVENT_BYTES} bytes."
    for value in data.values():
        if isinstance(value, str) and len(value.encode()) > MAX_STRING_BYTES:
            return "string field exceeds 64KB"
    return ""


def _is_rfc3339(value: Any) -> bool:
    if not isinstance(value, str) or "T" not in value:
        return False
    from datetime import datetime

    try:
        return datetime.fromisoformat(value).tzinfo is not None
    except ValueError:
        return False


@contextmanager
def running(**kwargs: Any) -> Iterator[HoneycombReceiver]:
    """``with running(api_key=...) as receiver:`` a started receiver, stopped at exit."""
    with HoneycombReceiver(**kwargs) as receiver:
        yield receiver


class ExactLedger:
    """A SinkLedger that knows how many records were exported and flags double reports
    (shared by the Honeycomb, OTLP and OpenTelemetry sink tests)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.exported = 0
        self.sent_count = 0
        self.rejected_by: dict[str, int] = {}
        self.dropped_by: dict[str, int] = {}
        self.fields: dict[str, int] = {}
        self.overcounted = False

    def fields_dropped(self, reason: str, n: int = 1) -> None:
        with self.lock:
            self.fields[reason] = self.fields.get(reason, 0) + n

    def outcome(self) -> tuple[int, dict[str, int], dict[str, int]]:
        with self.lock:
            return self.sent_count, dict(self.rejected_by), dict(self.dropped_by)

    def expect(self, n: int) -> None:
        with self.lock:
            self.exported += n

    def _add(self, n: int) -> None:
        if self.reported + n > self.exported:
            self.overcounted = True

    def sent(self, n: int = 1) -> None:
        with self.lock:
            self._add(n)
            self.sent_count += n

    def rejected(self, reason: str, n: int = 1) -> None:
        with self.lock:
            self._add(n)
            self.rejected_by[reason] = self.rejected_by.get(reason, 0) + n

    def dropped(self, reason: str, n: int = 1) -> None:
        with self.lock:
            self._add(n)
            self.dropped_by[reason] = self.dropped_by.get(reason, 0) + n

    @property
    def reported(self) -> int:
        return self.sent_count + sum(self.rejected_by.values()) + sum(self.dropped_by.values())

    def wait_reported(self, timeout: float = 10.0) -> bool:
        """Wait until every exported record has been reported."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if self.reported >= self.exported:
                    return True
            time.sleep(0.005)
        return False


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--key", default="test-key")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds per batch request")
    parser.add_argument("--no-store", action="store_true", help="count events, do not keep them")
    args = parser.parse_args(argv)
    receiver = HoneycombReceiver(args.key, store=not args.no_store, delay=args.delay)
    receiver.serve_until_stdin_closes(args.port)


if __name__ == "__main__":
    main()
