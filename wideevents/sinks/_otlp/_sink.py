"""``OTLPSink``: events to an OTLP/HTTP endpoint (a collector, Honeycomb...) without the SDK.

Each record is encoded once on the pipeline's worker (:mod:`._encode`:
hand-written protobuf or OTLP/JSON) and handed to :mod:`wideevents._transport`, the
machinery the Honeycomb sink uses: bounded buffer, batches, compression, retries with
backoff and jitter (429, 502, 503, 504 and connection errors only, as the OTLP
specification's "Retryable Response Codes" says and opentelemetry-python's exporters do;
``Retry-After`` honoured, in seconds or as an HTTP-date), deadlines and exact accounting.
A partial success counts exactly the ``rejected_log_records`` / ``rejected_spans`` the
endpoint reports as rejected. The resource carries ``OTEL_RESOURCE_ATTRIBUTES``,
``service.name`` and the required ``telemetry.sdk.*`` attributes. With
``OTEL_SDK_DISABLED=true`` the sink sends nothing: its events are counted as dropped
``"sdk_disabled"`` (a decision, not a loss).

Settings follow the OpenTelemetry exporter specification (argument first, then the
per-signal variable, then the generic one)::

    endpoint     OTEL_EXPORTER_OTLP_{LOGS,TRACES}_ENDPOINT (used as is), else
                 OTEL_EXPORTER_OTLP_ENDPOINT + /v1/{logs,traces} (not appended again when
                 it already ends so: logged once), else http://localhost:4318
    headers      OTEL_EXPORTER_OTLP_{LOGS,TRACES}_HEADERS, else OTEL_EXPORTER_OTLP_HEADERS
    encoding     OTEL_EXPORTER_OTLP_{LOGS,TRACES}_PROTOCOL / OTEL_EXPORTER_OTLP_PROTOCOL
                 (http/protobuf or http/json), else protobuf
    compression  OTEL_EXPORTER_OTLP_{LOGS,TRACES}_COMPRESSION / ..._COMPRESSION, else gzip
    timeout      OTEL_EXPORTER_OTLP_{LOGS,TRACES}_TIMEOUT / ..._TIMEOUT (ms; 0: no limit
                 on one request, retry_deadline still bounds it; negative: a warning and
                 the default), else 10 s

Header values (API keys) are only ever sent: never in ``repr()``, logs or errors.
"""

from __future__ import annotations

import math
import re
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..._core.env import env, first_env
from ..._core.ledger import Ledger
from ..._core.log import log_once
from ..._core.record import Record, SinkLedger
from ..._core.secrets import clip, mask, shown
from ..._core.service import default_service_name, parse_resource_attributes
from ..._correlation import sdk_disabled
from ..._errors import ConfigurationError
from ..._transport import (
    COMPRESSIONS,
    SENT,
    Destination,
    Reasons,
    Reply,
    Response,
    Sender,
    SenderConfig,
    parse_origin,
    reply_for_status,
)
from ..._version import __version__
from ._encode import ENCODINGS, SIGNALS, Encoder, parse_export_response, parse_status_message

__all__ = ["OTLPSink"]

DEFAULT_ENDPOINT = "http://localhost:4318"
DEFAULT_TIMEOUT = 10.0
# Statuses retried: the OTLP specification, "Retryable Response Codes" (every other 4xx
# and 5xx MUST NOT be retried); opentelemetry-python 1.45's exporters retry exactly these
# (opentelemetry/exporter/otlp/common/http.py, _RETRYABLE_STATUS_CODES).
OTLP_RETRYABLE = frozenset({429, 502, 503, 504})
# Required on every resource (OpenTelemetry semantic conventions, "telemetry.sdk.*"; the
# Resource SDK's "SDK-provided resource attributes"); OTEL_RESOURCE_ATTRIBUTES may override.
SDK_RESOURCE = {"telemetry.sdk.name": "wideevents", "telemetry.sdk.language": "python",
                "telemetry.sdk.version": __version__}
# Headers that describe the body: the sink writes them.
_BODY_HEADERS = frozenset({"content-type", "content-encoding", "content-length"})
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_PROTOCOLS = {"http/protobuf": "protobuf", "http/json": "json"}
_KEY_HINT = ("check the API key header (for Honeycomb: x-honeycomb-team, from "
             "HONEYCOMB_API_KEY or headers=)")


class _OTLPCodec:
    """Request bodies from encoded records; replies per the OTLP/HTTP specification."""

    def __init__(self, encoder: Encoder, name: str) -> None:
        self._encoder = encoder
        self._name = name
        self.content_type = encoder.content_type
        self._notes = Reasons()  # the endpoint's messages: rate-limited, masked log lines

    def encode(self, items: Sequence[bytes]) -> Iterable[bytes]:
        return self._encoder.body(items)

    def interpret(self, response: Response, count: int) -> Reply:
        status = response.status
        if 200 <= status < 300:
            return self._accepted(response.body, count, status)
        reply = reply_for_status(status, OTLP_RETRYABLE)
        if reply.action == "reject":
            message = _message(parse_status_message(response.body))
            hint = f"; {_KEY_HINT}" if status in (401, 403) else ""
            self._notes.note(f"rejected:{status}",
                             "wideevents: %s: the OTLP endpoint rejected a batch (HTTP %d): %s%s",
                             self._name, status, message, hint)
        return reply

    def _accepted(self, body: bytes, count: int, status: int) -> Reply:
        encoder = self._encoder
        try:
            rejected, message = parse_export_response(body, encoder.signal, encoder.json)
        except Exception:  # noqa: BLE001 - an unreadable 2xx reply: the batch was taken
            log_once(f"{self._name}:malformed-reply",
                     "wideevents: %s: unreadable export response (HTTP %d); its events are "
                     "counted as sent", self._name, status)
            return SENT
        if rejected <= 0:
            if message:
                self._notes.note("warning", "wideevents: %s: the OTLP endpoint warns: %s",
                                 self._name, _message(message))
            return SENT
        rejected = min(rejected, count)
        self._notes.note("partial", "wideevents: %s: the OTLP endpoint rejected %d of %d %s: %s",
                         self._name, rejected, count,
                         "spans" if encoder.signal == "traces" else "log records",
                         _message(message) or "(no message)")
        # The response says how many, not which: the count is what is reported.
        return Reply("done", rejected=[(i, "partial_success") for i in range(rejected)])


def _message(text: str) -> str:
    """A message from the endpoint as a log line may show it: masked, at most 200 chars."""
    return mask(clip(text, 4096), 200)


def _parse_headers(raw: str, source: str) -> dict[str, str]:
    """``k=v,k2=v2`` (values percent-encoded, W3C baggage style) into a dict."""
    out: dict[str, str] = {}
    for position, item in enumerate(raw.split(","), 1):
        item = item.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            # Never echo the item: it may hold an API key.
            raise ConfigurationError(
                f"{source}: entry {position} is not 'name=value'; use comma-separated "
                "name=value pairs, e.g. 'x-honeycomb-team=YOUR_KEY,x-other=value'")
        out[key.strip()] = urllib.parse.unquote(value.strip())
    return out


def _check_headers(headers: Mapping[str, str], source: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for position, (name, value) in enumerate(headers.items(), 1):
        if not isinstance(name, str) or not _TOKEN.match(name):
            # The name itself is not shown: a misplaced key may be in it.
            raise ConfigurationError(
                f"{source}: header #{position} has an invalid HTTP header name (letters, digits "
                "and !#$%&'*+-.^_`|~ only; a key belongs in the value, e.g. "
                "'x-honeycomb-team=KEY')")
        if not isinstance(value, str) or not value.isprintable() or not value.isascii():
            raise ConfigurationError(
                f"{source}: the value of header {shown(name)} must be printable ASCII text without "
                "line breaks; copy it again without surrounding whitespace or quotes")
        if name.lower() in _BODY_HEADERS:
            raise ConfigurationError(
                f"{source}: header {shown(name)} describes the request body, which OTLPSink "
                "writes itself; leave it out (encoding= and compression= choose the body)")
        out[name] = value
    return out


def _ends_with_signal(url: str, signal: str) -> bool:
    return urllib.parse.urlsplit(url.strip()).path.rstrip("/").endswith(f"/v1/{signal}")


def _with_signal_path(url: str, signal: str) -> str:
    suffix = f"/v1/{signal}"
    parts = urllib.parse.urlsplit(url.strip())
    path = parts.path.rstrip("/")
    if not path.endswith(suffix):
        path += suffix
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))


class OTLPSink:
    """Send events as OTLP log records (``signal="logs"``) or spans (``"traces"``) over HTTP.

    ``endpoint`` is a base URL like ``OTEL_EXPORTER_OTLP_ENDPOINT`` (``/v1/logs`` or
    ``/v1/traces`` is appended unless the URL already ends with it); ``headers`` a mapping
    or an ``OTEL_EXPORTER_OTLP_HEADERS``-style string; ``encoding`` ``"protobuf"`` or
    ``"json"``; ``compression`` ``"gzip"``, ``"zstd"`` or ``"none"``. For Honeycomb's
    endpoint (``https://api.honeycomb.io``) the ``x-honeycomb-team`` header defaults to
    ``HONEYCOMB_API_KEY``. The resource is ``telemetry.sdk.*``, ``OTEL_RESOURCE_ATTRIBUTES``
    and ``service.name``, then each event's ``service.*``, ``host.name``, ``process.pid``,
    ``deployment.environment.name`` and fields named in ``OTEL_RESOURCE_ATTRIBUTES``.
    ``timeout`` is in seconds (``math.inf``: no limit on one request).

    Bad settings raise ``ConfigurationError`` here; afterwards nothing raises: outcomes
    are reported through the pipeline's ledger (sent; rejected ``"400"``...,
    ``"partial_success"``; dropped ``"buffer_full"``, ``"retries_exhausted"``,
    ``"shutdown"``, ``"encode_error"``). The other keyword arguments are the sending
    settings of :class:`wideevents._transport.SenderConfig`.
    """

    name = "otlp"

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        headers: Mapping[str, str] | str | None = None,
        signal: str = "logs",
        encoding: str | None = None,
        compression: str | None = None,
        timeout: float | None = None,
        max_batch_events: int = 512,
        send_interval: float = 0.2,
        max_in_flight: int = 4,
        buffer_events: int = 20_000,
        buffer_bytes: int = 48 * 1024 * 1024,
        max_attempts: int = 8,
        retry_deadline: float = 30.0,
        backoff_initial: float = 0.1,
        backoff_max: float = 5.0,
    ) -> None:
        if signal not in SIGNALS:
            raise ConfigurationError(
                f"OTLPSink(signal={shown(signal)}) is not supported; use 'logs' (events as log "
                "records) or 'traces' (events as spans)")
        per = f"OTEL_EXPORTER_OTLP_{signal.upper()}_"
        url, source, written = self._endpoint(endpoint, signal, per)
        try:
            parse_origin(written)  # first: an error quotes what the user wrote, masked
            origin = parse_origin(url)
        except ValueError as exc:
            raise ConfigurationError(
                f"OTLPSink endpoint from {source}: {exc}; use a URL such as "
                f"{DEFAULT_ENDPOINT} (a collector) or https://api.honeycomb.io") from None
        path = origin.base_path or "/"
        origin = origin._replace(base_path="")
        self.endpoint = f"{origin}{path}"
        self.signal = signal
        self.encoding = self._encoding(encoding, per)
        resolved = self._compression(compression, per)
        request_timeout = self._timeout(timeout, per)
        header_map = self._headers(headers, per, origin.host)
        config = SenderConfig(
            max_batch_events=max_batch_events, send_interval=send_interval,
            max_in_flight=max_in_flight, buffer_events=buffer_events, buffer_bytes=buffer_bytes,
            compression=resolved, request_timeout=request_timeout, max_attempts=max_attempts,
            retry_deadline=retry_deadline, backoff_initial=backoff_initial,
            backoff_max=backoff_max)
        try:
            config.check()
        except ValueError as exc:
            raise ConfigurationError(f"OTLPSink: {mask(str(exc))}") from None
        try:
            resource: dict[str, Any] = dict(parse_resource_attributes(
                env("OTEL_RESOURCE_ATTRIBUTES"), strict=True))
        except ConfigurationError as exc:
            raise ConfigurationError(f"OTLPSink: {exc}") from None
        resource = {**SDK_RESOURCE, **resource, "service.name": default_service_name()}
        self.compression = resolved
        self._disabled = sdk_disabled()
        self._encoder = Encoder(signal, self.encoding, resource, __version__)
        self._own_ledger = Ledger(self.name)
        self._sender = Sender(self.name, _OTLPCodec(self._encoder, self.name), config,
                              ledger=self._own_ledger)
        self._dest = Destination(origin, path, tuple(header_map.items()))
        self._nulls_reported = 0

    # -- configuration ----------------------------------------------------------------------
    @staticmethod
    def _endpoint(endpoint: str | None, signal: str, per: str) -> tuple[str, str, str]:
        """``(URL, where it came from, the value as written there)``."""
        if endpoint is not None:
            if not isinstance(endpoint, str) or not endpoint.strip():
                raise ConfigurationError(
                    f"OTLPSink(endpoint={shown(endpoint)}): use a base URL such as "
                    f"{DEFAULT_ENDPOINT}")
            return _with_signal_path(endpoint, signal), "endpoint=", endpoint
        value = env(per + "ENDPOINT")
        if value:  # the per-signal URL is used as is (specification)
            return value, per + "ENDPOINT", value
        value = env("OTEL_EXPORTER_OTLP_ENDPOINT")
        if value:
            if _ends_with_signal(value, signal):
                # The OTLP exporter specification ("Endpoint URLs for OTLP/HTTP") appends
                # /v1/<signal> to this variable whatever it ends with; a URL already ending
                # so is kept as the user surely meant it, and said.
                log_once(f"otlp-endpoint-path:{signal}",
                         "wideevents: OTEL_EXPORTER_OTLP_ENDPOINT=%s already ends in /v1/%s: "
                         "used as is (the OpenTelemetry specification would append /v1/%s "
                         "again; %sENDPOINT is the variable for a full URL)",
                         shown(value), signal, signal, per)
            return _with_signal_path(value, signal), "OTEL_EXPORTER_OTLP_ENDPOINT", value
        return _with_signal_path(DEFAULT_ENDPOINT, signal), "the default", DEFAULT_ENDPOINT

    @staticmethod
    def _encoding(encoding: str | None, per: str) -> str:
        if encoding is not None:
            if encoding not in ENCODINGS:
                raise ConfigurationError(
                    f"OTLPSink(encoding={shown(encoding)}) is not supported; use 'protobuf' or "
                    "'json'")
            return encoding
        name, value = first_env(per + "PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL")
        if not value:
            return "protobuf"
        found = _PROTOCOLS.get(value.lower())
        if found is None:
            raise ConfigurationError(
                f"{name}={shown(value)} is not supported by OTLPSink (OTLP over HTTP only); use "
                "'http/protobuf' or 'http/json' (and the HTTP port, usually 4318)")
        return found

    @staticmethod
    def _compression(compression: str | None, per: str) -> str:
        if compression is not None:
            if compression not in COMPRESSIONS:
                raise ConfigurationError(
                    f"OTLPSink(compression={shown(compression)}) is not supported; use 'gzip', "
                    "'zstd' or 'none'")
            return compression
        name, value = first_env(per + "COMPRESSION", "OTEL_EXPORTER_OTLP_COMPRESSION")
        if not value:
            return "gzip"
        if value.lower() not in COMPRESSIONS:
            raise ConfigurationError(f"{name}={shown(value)}: use 'gzip' or 'none'")
        return value.lower()

    @staticmethod
    def _timeout(timeout: float | None, per: str) -> float:
        if timeout is not None:
            if (isinstance(timeout, bool) or not isinstance(timeout, (int, float))
                    or not timeout > 0):
                raise ConfigurationError(
                    f"OTLPSink(timeout={shown(timeout)}): use seconds > 0 (math.inf: no limit "
                    "on one request; retry_deadline still bounds it)")
            return float(timeout)
        name, value = first_env(per + "TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT")
        if not value:
            return DEFAULT_TIMEOUT
        try:
            millis = float(value)
        except ValueError:
            millis = math.nan
        if not math.isfinite(millis):
            raise ConfigurationError(
                f"{name}={shown(value)}: use a timeout in milliseconds, e.g. 10000 (0: no limit)")
        # OpenTelemetry "Common Configuration Specification", Timeout: 0 means no limit;
        # a negative value is ignored with a warning and the default applies.
        if millis < 0:
            log_once(f"otlp-timeout-negative:{name}",
                     "wideevents: %s=%s is negative; the default of %g s applies (a timeout "
                     "is 0 for no limit, or a positive number of milliseconds)",
                     name, shown(value), DEFAULT_TIMEOUT)
            return DEFAULT_TIMEOUT
        return millis / 1000.0 if millis > 0 else math.inf

    @staticmethod
    def _headers(headers: Mapping[str, str] | str | None, per: str, host: str) -> dict[str, str]:
        if headers is None:
            name, raw = first_env(per + "HEADERS", "OTEL_EXPORTER_OTLP_HEADERS")
            parsed = _parse_headers(raw, name) if raw else {}
            source = name or "headers"
        elif isinstance(headers, str):
            parsed, source = _parse_headers(headers, "OTLPSink(headers=...)"), "headers="
        elif isinstance(headers, Mapping):
            parsed, source = dict(headers), "headers="
        else:
            raise ConfigurationError(
                "OTLPSink(headers=...): use a dict of header name -> value or a string "
                "'name=value,name2=value2'")
        checked = _check_headers(parsed, source)
        if host == "honeycomb.io" or host.endswith(".honeycomb.io"):
            if not any(k.lower() == "x-honeycomb-team" for k in checked):
                key = env("HONEYCOMB_API_KEY")
                if not key:
                    raise ConfigurationError(
                        "OTLPSink: Honeycomb's OTLP endpoint needs an API key: set "
                        "HONEYCOMB_API_KEY, or pass headers={'x-honeycomb-team': KEY} (or set "
                        "OTEL_EXPORTER_OTLP_HEADERS='x-honeycomb-team=KEY')")
                checked.update(_check_headers({"x-honeycomb-team": key}, "HONEYCOMB_API_KEY"))
        return checked

    def __repr__(self) -> str:
        return (f"OTLPSink(endpoint={shown(self.endpoint)}, signal={self.signal!r}, "
                f"encoding={self.encoding!r}, compression={self.compression!r})")

    # -- the sink interface -----------------------------------------------------------------
    @property
    def pending(self) -> int:
        """Events handed to the sink and not yet reported."""
        return self._sender.pending

    @property
    def sender(self) -> Sender:
        return self._sender

    def bind(self, ledger: SinkLedger) -> None:
        """Report every event's outcome to ``ledger`` (called once by the pipeline)."""
        self._sender.ledger = ledger

    def export(self, batch: Sequence[Record]) -> None:
        """Encode the records and hand them to the sender (no network I/O here); never raises."""
        if self._disabled:
            if batch:  # OTEL_SDK_DISABLED=true: a decision, counted; not a loss
                self._sender.ledger.dropped("sdk_disabled", len(batch))
            return
        encode = self._encoder.encode
        items: list[bytes] = []
        failed = 0
        for record in batch:
            try:
                items.append(encode(record.fields))
            except Exception as exc:  # noqa: BLE001 - counted, never raised
                failed += 1
                log_once(f"{self.name}:encode:{type(exc).__name__}",
                         "wideevents: %s: an event could not be encoded (%s); it was dropped",
                         self.name, type(exc).__name__)
        if failed:
            self._sender.drop("encode_error", failed)
        if items:
            self._sender.submit(self._dest, items)
        self._report_nulls()

    def _report_nulls(self) -> None:
        nulls = self._encoder.null_fields
        new = nulls - self._nulls_reported
        if new <= 0:
            return
        self._nulls_reported = nulls
        try:
            self._sender.ledger.fields_dropped("null", new)
        except Exception:  # noqa: BLE001 - accounting must not break export
            pass

    def flush(self, timeout: float = 5.0) -> bool:
        """Send what is buffered within ``timeout``. True when nothing is pending and
        nothing was dropped or rejected since the previous flush/close returned."""
        return self._sender.flush(timeout)

    def close(self, timeout: float = 5.0) -> bool:
        """Flush within ``timeout``; what is left is dropped "shutdown". True as for
        :meth:`flush`: everything delivered, nothing lost since the previous call."""
        return self._sender.close(timeout)

    def reset_after_fork(self) -> None:
        """In a forked child: forget the parent's buffer (unreported), threads, connections."""
        self._sender.reset_after_fork()

    def stats(self) -> dict[str, object]:
        """Outcome counts when no pipeline ledger is bound, ``pending``, and omitted nulls."""
        out = self._own_ledger.snapshot() if self._sender.ledger is self._own_ledger else {}
        out["pending"] = self._sender.pending
        out["fields_dropped"] = {"null": self._encoder.null_fields}
        return out
