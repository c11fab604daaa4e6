"""Honeycomb's Events API on the shared sender, and a libhoney transmission built on it.

- ``HoneycombCodec``: batch bodies (a JSON array of ``{"data", "time", "samplerate"}``
  elements, pre-encoded per event) and replies (per-event statuses; 401/403 logged once
  with a hint about the key; each distinct per-event error text logged once).
- :class:`HoneycombTransmission`: libhoney's transmission interface (``start``, ``send``,
  ``flush``, ``close``, ``get_response_queue``) feeding :class:`wideevents._sender.Sender`,
  for ``HoneycombSink`` and for any plain ``libhoney.Client(transmission_impl=...)``.

The write key only ever goes into the ``X-Honeycomb-Team`` header of a ``Destination``,
whose ``repr()`` leaves headers out; nothing here logs headers.
"""

from __future__ import annotations

import datetime
import functools
import queue
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import quote

import orjson

from ._log import log_once
from ._sender import (
    SENT,
    CountingLedger,
    Destination,
    LedgerReporter,
    Reply,
    Sender,
    SenderConfig,
    reply_for_status,
)
from ._sender_http import Response, parse_origin
from .sinks._base import Record, SinkLedger

__all__ = [
    "KEY_HINT", "HoneycombCodec", "HoneycombTransmission", "error_text", "rate_of",
    "record_elements",
]

KEY_HINT = (
    "check HONEYCOMB_API_KEY (or api_key=): it must be an ingest or configuration key of "
    "the target environment with permission to send events"
)
_MAX_REASON = 200
_CHUNK = 32  # events per chunk to compress: ~70 KB here, below glibc's mmap threshold
_dumps = orjson.dumps
_OPTS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def _default(value: Any) -> str:
    try:
        return str(value)  # libhoney's own fallback for values JSON cannot hold
    except Exception:  # noqa: BLE001
        return "libhoney was unable to encode value"


class HoneycombCodec:
    """Events API batches: a JSON array of elements; per-event statuses in the reply."""

    content_type = "application/json"

    def __init__(self, name: str) -> None:
        self._name = name

    def encode(self, items: Sequence[bytes]) -> Iterator[bytes]:
        yield b"["
        for start in range(0, len(items), _CHUNK):
            if start:
                yield b","
            yield b",".join(items[start:start + _CHUNK])
        yield b"]"

    def decode(self, body: bytes) -> list[bytes]:
        """The items of an encoded body again (to split a batch or resend some events)."""
        return [_dumps(element) for element in orjson.loads(body)]

    def interpret(self, response: Response, count: int) -> Reply:
        status = response.status
        if status != 200 and not 200 <= status < 300:
            return self._failed(status, response.body)
        if response.body == _all_accepted(count):
            return SENT  # the usual reply, recognised without parsing it
        try:
            statuses = orjson.loads(response.body)
        except orjson.JSONDecodeError:
            statuses = None
        if not isinstance(statuses, list):
            # HTTP 200 means Honeycomb took the batch: resending would duplicate it.
            log_once(f"{self._name}:malformed-reply",
                     "wideevents: %s: unreadable batch reply (HTTP %d); its events are "
                     "counted as sent", self._name, status)
            return SENT
        if len(statuses) == count and all(
                type(s) is dict and s.get("status") == 202 for s in statuses):
            return SENT
        return self._per_event(statuses, count, status)

    def _per_event(self, statuses: list[Any], count: int, status: int) -> Reply:
        rejected: list[tuple[int, str]] = []
        retry: list[int] = []
        for i, entry in enumerate(statuses[:count]):
            code = entry.get("status") if isinstance(entry, dict) else None
            if type(code) is not int or 200 <= code < 300:
                continue
            if code == 429 or code >= 500:
                retry.append(i)
                continue
            text = entry.get("error")
            reason = (text if isinstance(text, str) and text else str(code))[:_MAX_REASON]
            rejected.append((i, reason))
            log_once(f"{self._name}:rejected:{reason}",
                     "wideevents: %s: Honeycomb rejected an event (%d): %s",
                     self._name, code, reason)
        if len(statuses) != count:
            log_once(f"{self._name}:short-reply",
                     "wideevents: %s: batch reply has %d statuses for %d events (HTTP %d); "
                     "events without a status are counted as sent",
                     self._name, len(statuses), count, status)
        return Reply("done", rejected=rejected, retry=retry)

    def _failed(self, status: int, body: bytes) -> Reply:
        reply = reply_for_status(status)
        if status in (401, 403):
            log_once(f"{self._name}:auth:{status}",
                     "wideevents: %s: Honeycomb refused the API key (HTTP %d); %s. "
                     "Events are counted as rejected.", self._name, status, KEY_HINT)
        elif reply.action == "reject":
            log_once(f"{self._name}:request:{status}",
                     "wideevents: %s: Honeycomb rejected a batch (HTTP %d): %s",
                     self._name, status, error_text(body))
        return reply


@functools.lru_cache(maxsize=8)
def _all_accepted(count: int) -> bytes:
    return b"[" + b",".join([b'{"status":202}'] * count) + b"]"


def error_text(body: bytes) -> str:
    """The ``error`` of a JSON error reply, else the start of the body (at most 200 chars)."""
    try:
        parsed = orjson.loads(body)
        if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
            return str(parsed["error"])[:_MAX_REASON]
    except orjson.JSONDecodeError:
        pass
    return body[:_MAX_REASON].decode("utf-8", "replace")


class _Outcomes(LedgerReporter):
    """Reporter: counts into a ledger and, for libhoney users, fills the responses queue."""

    def __init__(self, responses: queue.Queue[Any] | None) -> None:
        super().__init__()
        self.responses = responses

    def report(self, outcome: str, reason: str, count: int,
               tags: Sequence[object] | None, status: int) -> None:
        super().report(outcome, reason, count, tags, status)
        if self.responses is None or tags is None:
            return
        if outcome == "sent":
            code, error = 202, ""
        else:
            # Per-event rejections arrive inside an HTTP 200; libhoney reports them as 4xx.
            code = 400 if (outcome == "rejected" and status == 200) else status
            error = reason
        for metadata in tags:
            try:
                self.responses.put_nowait({"status_code": code, "duration": 0,
                                           "metadata": metadata, "body": "", "error": error})
            except queue.Full:
                break  # as libhoney does: responses nobody reads are discarded


class HoneycombTransmission:
    """A libhoney transmission (``Client(transmission_impl=...)``) backed by our sender.

    Implements libhoney's interface: ``start()``, ``send(ev)``, ``flush()``, ``close()``,
    ``get_response_queue()``. Batches per (api_host, writekey, dataset) with honoured size
    and interval settings, compresses, retries with backoff, and bounds ``close()`` by
    ``close_timeout``. With ``responses=True`` each event's outcome is put on the response
    queue as libhoney does (``status_code``, ``metadata``, ``error``; ``duration`` is 0;
    events given up at close while their request was in flight get no response).
    Outcome counts are in :meth:`stats` (or a ledger given to :meth:`bind`).
    """

    def __init__(self, *, config: SenderConfig | None = None, responses: bool = True,
                 max_responses: int = 2000, close_timeout: float = 5.0,
                 name: str = "honeycomb") -> None:
        self._responses: queue.Queue[Any] = queue.Queue(maxsize=max_responses)
        self._outcomes = _Outcomes(self._responses if responses else None)
        self._sender = Sender(name, HoneycombCodec(name), self._outcomes, config)
        self._close_timeout = close_timeout
        self._tagged = responses
        self._dests: dict[tuple[str, str, str], Destination] = {}
        self._last: tuple[Any, Any, Any, Destination | None] = (None, None, None, None)
        self._staging: _Staging | None = None

    def __repr__(self) -> str:
        return f"HoneycombTransmission(pending={self._sender.pending})"

    # -- libhoney's interface ---------------------------------------------------------------
    def start(self) -> None:
        """Nothing to do: sender threads start on first use (and again after fork)."""

    def send(self, ev: Any) -> None:
        """Queue one libhoney event; never blocks on the network, never raises."""
        staging = self._staging
        if staging is not None and ev.__class__ is staging.event_class:
            # HoneycombSink.export(): its own events, bound to its client; one submit later.
            try:
                staging.elements.append(_element(ev))
            except Exception as exc:  # noqa: BLE001 - counted by the sink
                staging.failed += 1
                self._encode_failed(exc)
            return
        try:
            element = _element(ev)
            dest = self.destination(ev.api_host, ev.writekey, ev.dataset)
        except Exception as exc:  # noqa: BLE001 - a value we cannot encode must not raise
            self._encode_failed(exc)
            self._outcomes.report("dropped", "encode_error", 1,
                                  [getattr(ev, "metadata", None)] if self._tagged else None, 0)
            return
        self._sender.submit(dest, (element,), (ev.metadata,) if self._tagged else None)

    def _encode_failed(self, exc: Exception) -> None:
        log_once(f"{self._sender.name}:encode:{type(exc).__name__}",
                 "wideevents: %s: an event could not be encoded (%s) and was dropped",
                 self._sender.name, type(exc).__name__)

    def flush(self) -> None:
        """Deliver what is buffered, waiting at most ``close_timeout``."""
        self._sender.flush(self._close_timeout)

    def close(self) -> None:
        """Deliver what is buffered within ``close_timeout``; the rest is dropped "shutdown"."""
        self._sender.close(self._close_timeout)
        try:
            self._responses.put_nowait(None)  # libhoney: nothing more will come
        except queue.Full:
            pass

    def get_response_queue(self) -> queue.Queue[Any]:
        return self._responses

    # -- wideevents' interface ----------------------------------------------------------------
    def bind(self, ledger: SinkLedger) -> None:
        """Report outcome counts to ``ledger`` from now on."""
        self._outcomes.ledger = ledger

    @property
    def ledger(self) -> SinkLedger:
        """Where outcome counts go (a :class:`CountingLedger` until :meth:`bind`)."""
        return self._outcomes.ledger

    def reset_after_fork(self) -> None:
        """In a forked child: forget the parent's buffer (unreported), threads, connections."""
        self._staging = None
        self._sender.reset_after_fork()

    def stats(self) -> dict[str, object]:
        """Outcome counts when no ledger was bound, plus ``pending``."""
        ledger = self._outcomes.ledger
        out = ledger.snapshot() if isinstance(ledger, CountingLedger) else {}
        out["pending"] = self._sender.pending
        return out

    @property
    def sender(self) -> Sender:
        return self._sender

    def destination(self, api_host: Any, writekey: Any, dataset: Any) -> Destination:
        """The Destination for libhoney's (api_host, writekey, dataset), cached."""
        last = self._last
        if api_host is last[0] and writekey is last[1] and dataset is last[2] and last[3]:
            return last[3]
        key = (str(api_host), str(writekey), str(dataset))
        dest = self._dests.get(key)
        if dest is None:
            dest = _make_destination(*key)
            if len(self._dests) < 256:
                self._dests[key] = dest
        self._last = (api_host, writekey, dataset, dest)
        return dest

    def submit(self, dest: Destination, elements: Sequence[bytes]) -> None:
        """Queue ready-made batch elements (see :func:`record_elements`)."""
        self._sender.submit(dest, elements)

    def begin_batch(self, event_class: type, dest: Destination) -> _Staging:
        """Collect ``send()`` of ``event_class`` events for ``dest`` until :meth:`end_batch`.

        For ``HoneycombSink.export`` (which serialises calls): one buffer submit per batch
        instead of one per event. Other events sent meanwhile take the usual path.
        """
        staging = self._staging = _Staging(event_class, dest)
        return staging

    def end_batch(self) -> None:
        """Submit what :meth:`begin_batch` collected."""
        staging, self._staging = self._staging, None
        if staging is not None and staging.elements:
            self._sender.submit(staging.dest, staging.elements)


class _Staging:
    __slots__ = ("dest", "elements", "event_class", "failed")

    def __init__(self, event_class: type, dest: Destination) -> None:
        self.event_class = event_class
        self.dest = dest
        self.elements: list[bytes] = []
        self.failed = 0


def _make_destination(api_host: str, writekey: str, dataset: str) -> Destination:
    origin = parse_origin(api_host)
    return Destination(origin, "/1/batch/" + quote(dataset, safe=""),
                       (("X-Honeycomb-Team", writekey),))


def _element(ev: Any) -> bytes:
    """One batch element: ``{"data": ..., "time": ..., "samplerate": N}``."""
    rate = ev.sample_rate
    if type(rate) is not int or rate < 1:
        rate = rate_of(rate)
    data = getattr(ev, "_json", None)
    if data is None:
        data = _dumps(ev.fields(), default=_default, option=_OPTS)
    stamp = getattr(ev, "_timestamp", None)  # a wideevents record's own RFC 3339 text
    if stamp is None:
        stamp = _rfc3339(ev.created_at)
    return b'{"data":%b,"time":%b,"samplerate":%d}' % (data, _dumps(stamp), rate)


def record_elements(records: Sequence[Record]) -> tuple[list[bytes], int]:
    """Batch elements for finished records, and how many records were skipped.

    Byte for byte what ``send_presampled()`` of a libhoney event with the record's fields,
    ``sample_rate`` = its ``samplerate`` and ``created_at`` = its ``timestamp`` produces
    through :class:`HoneycombTransmission`, without building that event; records without
    fields are skipped, as libhoney skips empty events.
    """
    out: list[bytes] = []
    append = out.append
    skipped = 0
    for record in records:
        fields = record.fields
        if not fields:
            skipped += 1
            continue
        rate = fields.get("samplerate", 1)
        if type(rate) is not int or rate < 1:
            rate = rate_of(rate)
        stamp = fields.get("timestamp")
        if type(stamp) is not str:
            stamp = _rfc3339(None)
        append(b'{"data":%b,"time":%b,"samplerate":%d}' % (record.json, _dumps(stamp), rate))
    return out, skipped


def rate_of(value: Any) -> int:
    """A sample rate Honeycomb accepts: a positive integer (1 for anything unusable)."""
    try:
        rate = int(value)
    except (TypeError, ValueError, OverflowError):
        return 1
    return max(rate, 1)


def _rfc3339(created: Any) -> str:
    when = created if isinstance(created, datetime.datetime) else (
        datetime.datetime.now(datetime.UTC))
    text = when.isoformat()
    return text + "Z" if when.tzinfo is None else text  # libhoney's naive UTC
