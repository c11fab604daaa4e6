"""Honeycomb's Events API: batch elements, batch bodies and what replies mean.

- :class:`HoneycombCodec`: batch bodies (a JSON array of ``{"data", "time", "samplerate"}``
  elements, pre-encoded per event) and replies (per-event statuses; a 401 logged once with
  a hint about the key, a 403 as the administrative throttling it means on the batch
  endpoint; :data:`HONEYCOMB_RETRYABLE` resent). Per-event error texts are the backend's:
  the first 20 distinct ones (masked, cut to 100 characters) are rejection reasons, later
  ones ``"other"``; their detail is logged at most once a minute per reason, with a count.
- :func:`record_elements` (the sink's records) and :func:`element` (a libhoney event):
  the same element bytes either way.
- :func:`destination`: ``POST {api_host}/1/batch/{dataset}`` with ``X-Honeycomb-Team``.

The contract is written out in docs/backends.md ("Honeycomb Events API"). The write key
only ever goes into the ``X-Honeycomb-Team`` header of a ``Destination``, whose ``repr()``
leaves headers out; nothing here logs headers.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import quote

import orjson

from ..._core.log import log_once
from ..._core.record import Record
from ..._core.samplerate import sample_rate
from ..._core.secrets import clip, mask
from ..._core.timefmt import rfc3339
from ..._transport import (
    SENT,
    Destination,
    Reasons,
    Reply,
    Response,
    parse_origin,
    reply_for_status,
)

__all__ = ["HONEYCOMB_RETRYABLE", "KEY_HINT", "HoneycombCodec", "THROTTLED_HINT", "destination",
           "element", "error_text", "record_elements"]

KEY_HINT = (
    "check HONEYCOMB_API_KEY (or api_key=): it must be an ingest or configuration key of "
    "the target environment with permission to send events"
)
# Honeycomb's Events API reference, "Create Events" (batch): 403 is "Dropped due to
# administrative throttling", not a refused key (that is 401).
THROTTLED_HINT = (
    "Honeycomb is throttling this team's events on the batch endpoint (administrative "
    "throttling: the key itself was accepted); check the team's usage and limits in "
    "Honeycomb or ask Honeycomb support"
)
# Statuses resent, for a whole batch or one event of it: libhoney-py's own list
# (transmission.py, _get_requests_session: status_forcelist 500, 503, 504, 408, 429) plus
# 502, a proxy's "the upstream failed", transient by definition (the OTLP specification
# retries it too). Any other 4xx/5xx (501, 505...) would fail again: not retried.
HONEYCOMB_RETRYABLE = frozenset({408, 429, 500, 502, 503, 504})
_MAX_REASON = 200
_CHUNK = 32  # events per chunk to compress: ~70 KB here, below glibc's mmap threshold
_dumps = orjson.dumps
_OPTS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def _default(value: Any) -> str:
    try:
        return str(value)  # libhoney's own fallback for values JSON cannot hold
    except Exception:  # noqa: BLE001 - a user object's __str__ may raise anything
        return "libhoney was unable to encode value"


class HoneycombCodec:
    """Events API batches: a JSON array of elements; per-event statuses in the reply."""

    content_type = "application/json"

    def __init__(self, name: str) -> None:
        self._name = name
        self._reasons = Reasons(limit=20)

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
        by_reason: dict[str, list[int]] = {}  # reason -> [events, first code]
        bounded = self._reasons.reason
        for i, entry in enumerate(statuses[:count]):
            code = entry.get("status") if isinstance(entry, dict) else None
            if type(code) is not int or 200 <= code < 300:
                continue
            if code in HONEYCOMB_RETRYABLE:
                retry.append(i)
                continue
            text = entry.get("error")
            reason = bounded(clip(text, 1000) if isinstance(text, str) and text else
                             str(code) if 100 <= code <= 999 else "rejected")
            rejected.append((i, reason))
            seen = by_reason.get(reason)
            if seen is None:
                by_reason[reason] = [1, code]
            else:
                seen[0] += 1
        for reason, (events, code) in by_reason.items():
            self._reasons.note(f"rejected:{reason}",
                               "wideevents: %s: Honeycomb rejected %d events of a batch (%d): %s",
                               self._name, events, code, reason)
        if len(statuses) != count:
            log_once(f"{self._name}:short-reply",
                     "wideevents: %s: batch reply has %d statuses for %d events (HTTP %d); "
                     "events without a status are counted as sent",
                     self._name, len(statuses), count, status)
        return Reply("done", rejected=rejected, retry=retry)

    def _failed(self, status: int, body: bytes) -> Reply:
        reply = reply_for_status(status, HONEYCOMB_RETRYABLE)
        if status == 401:
            log_once(f"{self._name}:auth:{status}",
                     "wideevents: %s: Honeycomb refused the API key (HTTP %d); %s. "
                     "Events are counted as rejected.", self._name, status, KEY_HINT)
        elif status == 403:
            log_once(f"{self._name}:throttled:{status}",
                     "wideevents: %s: Honeycomb dropped a batch (HTTP 403): %s. Its events "
                     "are counted as rejected \"403\".", self._name, THROTTLED_HINT)
        elif reply.action == "reject":
            self._reasons.note(f"request:{status}",
                               "wideevents: %s: Honeycomb rejected a batch (HTTP %d): %s",
                               self._name, status, error_text(body))
        return reply


@functools.lru_cache(maxsize=8)
def _all_accepted(count: int) -> bytes:
    return b"[" + b",".join([b'{"status":202}'] * count) + b"]"


def error_text(body: bytes) -> str:
    """The ``error`` of a JSON error reply, else the start of the body (at most 200
    chars), masked: a reply may echo the key it refused."""
    try:
        parsed = orjson.loads(body)
        if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
            return mask(clip(str(parsed["error"]), 4096), _MAX_REASON)
    except orjson.JSONDecodeError:
        pass
    head = body[:4096].decode("utf-8", "replace")
    return mask(clip(head, 4096, more=len(body) > 4096), _MAX_REASON)


def destination(api_host: str, writekey: str, dataset: str) -> Destination:
    """Where a batch of events for ``dataset`` goes (the key in a header, never in repr)."""
    origin = parse_origin(api_host)
    return Destination(origin, "/1/batch/" + quote(dataset, safe=""),
                       (("X-Honeycomb-Team", writekey),))


def element(ev: Any) -> bytes:
    """A libhoney event as one batch element: ``{"data": ..., "time": ..., "samplerate": N}``."""
    rate = ev.sample_rate
    if type(rate) is not int or rate < 1:
        rate = sample_rate(rate)
    data = getattr(ev, "_json", None)
    if data is None:
        data = _dumps(ev.fields(), default=_default, option=_OPTS)
    stamp = getattr(ev, "_timestamp", None)  # a wideevents record's own RFC 3339 text
    if stamp is None:
        created = ev.created_at  # libhoney's own: a naive datetime in UTC
        stamp = rfc3339(created if isinstance(created, datetime.datetime) else None)
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
            rate = sample_rate(rate)
        stamp = fields.get("timestamp")
        if type(stamp) is not str:
            stamp = rfc3339()
        append(b'{"data":%b,"time":%b,"samplerate":%d}' % (record.json, _dumps(stamp), rate))
    return out, skipped
