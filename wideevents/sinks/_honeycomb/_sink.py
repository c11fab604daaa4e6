"""``HoneycombSink``: events to Honeycomb's Events API through libhoney and our sender.

The sink keeps libhoney's client and event model: it owns a ``libhoney.Client`` whose
``transmission_impl`` is :class:`HoneycombTransmission`, and an event goes out as
libhoney's ``send_presampled()`` sends it: the record's fields as ``data``, its
``samplerate`` as the sample rate (already sampled: never sampled again) and its
``timestamp`` as ``created_at``. The transmission hands batch elements to
:mod:`wideevents._transport` (bounded buffer, batching, zstd/gzip, retries with backoff,
exact accounting) instead of libhoney's own, which sends two statsd packets per event on
the caller's thread, retries once without backoff and can block ``close()`` for seconds.

Per-event cost. ``libhoney.Event(...)`` copies every field through a method call, and
its transmission serialises the fields again; both cost more than everything else the
sink does per event. So by default ``export`` writes each element straight from the
record's JSON (serialised once by the pipeline): the same bytes ``send_presampled()`` of
a libhoney event with those fields, rate and time would produce (a test checks this
against libhoney's own ``Client``). Once fields are added to the client
(``sink.client.add_field``...), libhoney's semantics need its event model, and each
record goes through ``send_presampled()`` of a lean ``Event`` subclass over the record
(no copy unless the client adds fields or the event is changed).

The API key is only ever placed in the ``X-Honeycomb-Team`` header: never in ``repr()``,
log messages or exceptions; libhoney's ``debug`` (which logs it) is never enabled.
"""

from __future__ import annotations

import datetime
import re
import threading
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import orjson

from ..._core.env import env
from ..._core.log import log_once
from ..._core.record import Record, SinkLedger
from ..._core.samplerate import sample_rate
from ..._core.secrets import mask, shown
from ..._core.service import default_service_name
from ..._errors import ConfigurationError
from ..._transport import COMPRESSIONS, USER_AGENT, SenderConfig, parse_origin, post_once
from ._codec import error_text, record_elements
from ._libhoney import HoneycombTransmission

__all__ = ["HoneycombSink"]

DEFAULT_API_HOST = "https://api.honeycomb.io"
# Honeycomb's API permissions reference: markers need a configuration key with the
# "Manage Markers" permission; an ingest key can only send events.
MARKER_HINT = (
    "markers need a configuration key with the Manage Markers permission (Honeycomb: "
    "Environment settings > API Keys > Configuration): set HONEYCOMB_CONFIG_KEY or pass "
    "HoneycombSink(marker_key=...)"
)
# Ingest keys: hc + region letter + "ik_" (or "ic_", classic ingest) + 58 characters, as
# libhoney-go (classicIngestKeyRegex) and Honeycomb's OpenTelemetry distributions read them.
_INGEST_PREFIX = re.compile(r"hc[a-z]i[kc]_")
_dumps = orjson.dumps


def _record_event_class(client_: Any) -> type:
    """A libhoney ``Event`` over a finished record, bound to ``client`` (built once)."""
    import libhoney  # type: ignore[import-untyped]
    from libhoney.fields import FieldHolder  # type: ignore[import-untyped]

    class RecordEvent(libhoney.Event):  # type: ignore[misc]
        """Fields, time and sample rate as libhoney has them, plus the record's JSON."""

        # libhoney copies these from the client into every event; here they are shared.
        writekey = client_.writekey
        dataset = client_.dataset
        api_host = client_.api_host
        metadata = None
        client = client_

        def __init__(self, record: Record, rate: int) -> None:
            # libhoney.Event.__init__ is skipped on purpose: it copies every field through
            # a method call and stamps utcnow(); the record already has both.
            self.sample_rate = rate
            holder = FieldHolder.__new__(FieldHolder)
            holder._data = record.fields
            holder._dyn_fields = ()
            self._fields = holder
            stamp = record.fields.get("timestamp")
            self._timestamp = stamp if type(stamp) is str else None
            self._json: bytes | None = record.json
            shared = client_.fields
            if shared._data or shared._dyn_fields:
                # As libhoney: the client's fields, then the event's, then dynamic fields.
                data = dict(shared._data)
                data.update(record.fields)
                for fn in shared._dyn_fields:
                    data[fn.__name__] = fn()
                holder._data = data
                self._json = None

        @property
        def created_at(self) -> datetime.datetime:
            stored = self.__dict__.get("_created_at")
            if stored is not None:
                return stored  # type: ignore[no-any-return]
            try:
                return datetime.datetime.fromisoformat(self._timestamp or "")
            except ValueError:
                return datetime.datetime.now(datetime.UTC)

        @created_at.setter
        def created_at(self, value: datetime.datetime) -> None:
            self.__dict__["_created_at"] = value
            self._timestamp = None

        def _own(self) -> None:
            if self._json is not None:  # first change: stop sharing the record's dict
                self._json = None
                self._fields._data = dict(self._fields._data)

        def add_field(self, name: str, val: Any) -> None:
            self._own()
            super().add_field(name, val)

        def add(self, data: Any) -> None:
            self._own()
            super().add(data)

    return RecordEvent


def _check_key(key: str, source: str = "HONEYCOMB_API_KEY (or api_key=)") -> None:
    if (not key.isascii() or not key.isprintable() or any(c.isspace() for c in key)
            or '"' in key or "'" in key):
        raise ConfigurationError(
            f"The Honeycomb key in {source} contains spaces, quotes or control characters; "
            "copy the key again without surrounding whitespace")


def is_ingest_key(key: str) -> bool:
    """True for a key shaped like an ingest key (which can send events, nothing else)."""
    return _INGEST_PREFIX.match(key) is not None


def _marker_key(marker_key: str | None) -> str | None:
    """The configuration key for markers: ``marker_key=``, else ``HONEYCOMB_CONFIG_KEY``."""
    source = "HoneycombSink(marker_key=...)"
    if marker_key is None:
        marker_key, source = env("HONEYCOMB_CONFIG_KEY"), "HONEYCOMB_CONFIG_KEY"
    key = marker_key.strip() if isinstance(marker_key, str) else marker_key
    if not key:
        if source == "HONEYCOMB_CONFIG_KEY":
            return None
        raise ConfigurationError(f"{source}: use a Honeycomb configuration key; {MARKER_HINT}")
    if not isinstance(key, str):
        raise ConfigurationError(f"{source}: use the configuration key as a string")
    _check_key(key, source)
    if is_ingest_key(key):
        raise ConfigurationError(f"{source} holds an ingest key, which cannot create markers; "
                                 f"{MARKER_HINT}")
    return key


def _check_dataset(name: str, source: str) -> None:
    # Honeycomb's Events API reference: dataset names "may contain URL-encoded spaces or
    # other special characters, but not URL-encoded slashes"; a raw "/" splits the path.
    if "/" in name:
        raise ConfigurationError(
            f"Honeycomb dataset {shown(name)} (from {source}) contains '/', which Honeycomb "
            "does not accept in a dataset name; set HONEYCOMB_DATASET (or dataset=) to a "
            f"name without '/', e.g. {shown(name.replace('/', '-'))}")


class HoneycombSink:
    """Send events to Honeycomb (``POST {api_host}/1/batch/{dataset}``).

    ``api_key`` / ``dataset`` / ``api_host`` default to ``HONEYCOMB_API_KEY`` /
    ``HONEYCOMB_DATASET`` (else the events' ``service.name``, taken from the first event;
    until then, and for markers sent before it, :func:`default_service_name`) /
    ``HONEYCOMB_API_HOST`` (else ``https://api.honeycomb.io``). A dataset name may not
    contain ``/`` (Honeycomb does not accept it). ``marker_key`` (else
    ``HONEYCOMB_CONFIG_KEY``) is the configuration key :meth:`marker` uses (markers need
    the Manage Markers permission, which ingest keys lack); without it, markers are sent
    with ``api_key``. Bad settings raise ``ConfigurationError`` here; afterwards nothing
    raises: outcomes are reported through the pipeline's ledger (sent on 202, rejected
    with the error text or the HTTP code, dropped with a reason).

    Sending settings (see :class:`wideevents._transport.SenderConfig`): ``compression``
    ("zstd", "gzip" or "none"), ``max_batch_events``, ``send_interval`` (seconds a partial
    batch may wait), ``max_in_flight`` (concurrent requests), ``buffer_events`` and
    ``buffer_bytes`` (the bound on what waits while Honeycomb is slow or unreachable),
    ``request_timeout``, ``max_attempts``, ``retry_deadline`` (per batch), ``backoff_initial``
    and ``backoff_max``.
    """

    name = "honeycomb"

    def __init__(
        self,
        api_key: str | None = None,
        dataset: str | None = None,
        api_host: str | None = None,
        *,
        compression: str = "zstd",
        max_batch_events: int = 1000,
        send_interval: float = 0.2,
        max_in_flight: int = 8,
        buffer_events: int = 20_000,
        buffer_bytes: int = 48 * 1024 * 1024,
        request_timeout: float = 10.0,
        max_attempts: int = 8,
        retry_deadline: float = 30.0,
        backoff_initial: float = 0.1,
        backoff_max: float = 5.0,
        marker_key: str | None = None,
    ) -> None:
        key = (api_key if api_key is not None else env("HONEYCOMB_API_KEY")).strip()
        if not key:
            raise ConfigurationError(
                "HoneycombSink needs an API key: set HONEYCOMB_API_KEY or pass api_key=... "
                "(an ingest key from Honeycomb: Environment settings > API Keys)")
        _check_key(key)
        self._marker_key = _marker_key(marker_key)
        name = (dataset if dataset is not None else env("HONEYCOMB_DATASET")).strip()
        source = "dataset=" if dataset is not None else "HONEYCOMB_DATASET"
        # Without an explicit dataset, it is the events' service.name (docs/backends.md,
        # "Honeycomb Events API"): the default below until the first event shows the
        # pipeline's service.name.
        self._adopt_dataset = not name
        if not name:
            name, source = default_service_name(), "the service name"
        _check_dataset(name, source)
        host = (api_host if api_host is not None else env("HONEYCOMB_API_HOST")).strip()
        host = (host or DEFAULT_API_HOST).rstrip("/")
        try:
            origin = parse_origin(host)
        except ValueError as exc:
            raise ConfigurationError(
                f"Honeycomb API host: {exc}; set HONEYCOMB_API_HOST (or api_host=) to a URL "
                f"such as {DEFAULT_API_HOST} or https://api.eu1.honeycomb.io") from None
        if compression not in COMPRESSIONS:
            raise ConfigurationError(
                f"HoneycombSink(compression={shown(compression)}) is not supported; use one of "
                f"{', '.join(repr(c) for c in COMPRESSIONS)}")
        config = SenderConfig(
            max_batch_events=max_batch_events, send_interval=send_interval,
            max_in_flight=max_in_flight, buffer_events=buffer_events, buffer_bytes=buffer_bytes,
            compression=compression, request_timeout=request_timeout,
            max_attempts=max_attempts, retry_deadline=retry_deadline,
            backoff_initial=backoff_initial, backoff_max=backoff_max)
        try:
            config.check()
        except ValueError as exc:
            raise ConfigurationError(f"HoneycombSink: {mask(str(exc))}") from None
        self.dataset = name
        self.api_host = host
        self._origin = origin
        self._key = key
        self._transmission = HoneycombTransmission(config=config, responses=False,
                                                   name=self.name)
        import libhoney

        # Never debug=True: libhoney then logs the write key.
        self._client = libhoney.Client(writekey=key, dataset=name, api_host=host,
                                       transmission_impl=self._transmission)
        self._export_lock = threading.Lock()
        self._closed = False
        self._use_dataset(name)

    def _use_dataset(self, name: str) -> None:
        self.dataset = self._client.dataset = name
        self._event_class = _record_event_class(self._client)
        self._dest = self._transmission.destination(
            self._client.api_host, self._client.writekey, self._client.dataset)

    def __repr__(self) -> str:
        return f"HoneycombSink(dataset={self.dataset!r}, api_host={shown(self.api_host)})"

    @property
    def client(self) -> Any:
        """The ``libhoney.Client`` the events go through."""
        return self._client

    @property
    def pending(self) -> int:
        """Events handed to the sink and not yet reported."""
        return self._transmission.sender.pending

    def bind(self, ledger: SinkLedger) -> None:
        """Report every event's outcome to ``ledger`` (called once by the pipeline)."""
        self._transmission.bind(ledger)

    def export(self, batch: Sequence[Record]) -> None:
        """Hand records to the sender (no network I/O here); never raises."""
        transmission = self._transmission
        sender = transmission.sender
        failure = ""
        queued = failed = 0
        with self._export_lock:
            if self._closed:
                sender.drop("shutdown", len(batch))
                return
            if self._adopt_dataset and batch:
                self._adopt_dataset = False
                service = batch[0].fields.get("service.name")
                if isinstance(service, str) and service.strip() not in ("", self.dataset):
                    self._adopt(service.strip())
            try:
                if self._client_adds_nothing():
                    elements, _ = record_elements(batch)
                    transmission.submit(self._dest, elements)
                    queued = len(elements)
                else:
                    queued, failed = self._send_as_libhoney_events(batch)
            except Exception as exc:  # noqa: BLE001 - counted below, never raised
                failure = type(exc).__name__
        if failed:
            sender.drop("encode_error", failed)
        missing = len(batch) - queued - failed
        if missing > 0:
            # libhoney's send_presampled() skips events without fields; so do we.
            reason = "export_error" if failure else "unsendable"
            log_once(f"{self.name}:export:{reason}:{failure}",
                     "wideevents: %s: %d events could not be queued (%s)", self.name,
                     missing, failure or "events without fields")
            sender.drop(reason, missing)

    def _adopt(self, service: str) -> None:
        """Use the events' service.name as the dataset, unless Honeycomb would refuse it."""
        if "/" in service:
            log_once(f"{self.name}:dataset-slash",
                     "wideevents: %s: the events' service.name %s contains '/', which "
                     "Honeycomb does not accept in a dataset name; they go to dataset %s. Set "
                     "HONEYCOMB_DATASET (or dataset=) to choose the name", self.name,
                     shown(service), shown(self.dataset))
            return
        self._use_dataset(service)

    def _client_adds_nothing(self) -> bool:
        """True unless fields were added to the libhoney client (``sink.client.add_field``)."""
        fields = self._client.fields
        return bool(fields.is_empty() and not fields._dyn_fields)

    def _send_as_libhoney_events(self, batch: Sequence[Record]) -> tuple[int, int]:
        """``send_presampled()`` of one libhoney event per record: client fields apply."""
        new_event = self._event_class
        transmission = self._transmission
        staging = transmission.begin_batch(new_event, self._dest)
        try:
            for record in batch:
                rate = record.fields.get("samplerate", 1)
                new_event(record, rate if type(rate) is int and rate > 0 else sample_rate(rate)
                          ).send_presampled()
        finally:
            transmission.end_batch()
        return len(staging.elements), staging.failed

    def flush(self, timeout: float = 5.0) -> bool:
        """Send what is buffered within ``timeout``. True when nothing is pending and
        nothing was dropped or rejected since the previous flush/close returned."""
        return self._transmission.sender.flush(timeout)

    def close(self, timeout: float = 5.0) -> bool:
        """Flush within ``timeout``; what is left is dropped "shutdown". True as for
        :meth:`flush`: everything delivered, nothing lost since the previous call."""
        with self._export_lock:
            self._closed = True
        ok = self._transmission.sender.close(timeout)
        self._client.xmit = None  # as libhoney.Client.close() does, without its own close
        return ok

    def reset_after_fork(self) -> None:
        """In a forked child: forget the parent's buffer (unreported), threads, connections."""
        self._export_lock = threading.Lock()  # it may have been held when the parent forked
        self._transmission.reset_after_fork()

    def marker(self, message: str, *, type: str = "model-deploy", url: str | None = None,
               timeout: float = 5.0) -> dict[str, Any] | None:
        """Create a Honeycomb marker (``POST /1/markers/{dataset}``) now; blocks up to ``timeout``
        (the whole request: a server that answers slowly cannot hold it longer).

        Sent with ``marker_key`` / ``HONEYCOMB_CONFIG_KEY`` (a configuration key with the
        Manage Markers permission), else with ``api_key``. Returns the marker Honeycomb
        created, or None when it failed (logged, with a hint about the key on 401/403;
        never raised).
        """
        body: dict[str, Any] = {"message": str(message), "type": str(type),
                                "start_time": int(time.time())}
        if url:
            body["url"] = str(url)
        key = self._marker_key or self._key
        headers = {"X-Honeycomb-Team": key, "Content-Type": "application/json",
                   "User-Agent": USER_AGENT}
        path = "/1/markers/" + quote(self.dataset, safe="")
        try:
            response = post_once(self._origin, path, _dumps(body), headers, timeout)
        except Exception as exc:  # noqa: BLE001 - any transport failure is a marker failure
            cause = exc.__class__.__name__  # ``type`` is the marker type here
            log_once(f"{self.name}:marker:{cause}",
                     "wideevents: %s: could not create a marker (%s)", self.name, cause)
            return None
        if 200 <= response.status < 300:
            try:
                created = orjson.loads(response.body)
            except orjson.JSONDecodeError:
                created = None
            return created if isinstance(created, dict) else body
        hint = ""
        if response.status in (401, 403):
            if self._marker_key is None:
                which = "an ingest key" if is_ingest_key(key) else "the events' key"
                hint = f"; it was sent with {which} (api_key / HONEYCOMB_API_KEY): {MARKER_HINT}"
            else:
                hint = ("; check the configuration key (HONEYCOMB_CONFIG_KEY or marker_key=): "
                        "it needs the Manage Markers permission in the dataset's environment")
        log_once(f"{self.name}:marker:{response.status}",
                 "wideevents: %s: Honeycomb refused a marker (HTTP %d): %s%s", self.name,
                 response.status, error_text(response.body), hint)
        return None
