"""The wire as Honeycomb, libhoney and the OTLP specification have it: User-Agent, which
statuses are retried, ``Retry-After`` in both of its forms (issue 17)."""

from __future__ import annotations

import datetime
import email.utils
import importlib.metadata
import platform
import time
from typing import Any

import orjson
import pytest

from tests.sinks.recording_server import (
    RecordingServer,
    Reply,
    Seen,
    honeycomb_ok,
    otlp_ok,
    sequence,
)
from tests.support.honeycomb_receiver import ExactLedger
from tests.support.otel import make_records
from wideevents._transport.http import _retry_after
from wideevents.sinks import HoneycombSink, OTLPSink

CONFIG_KEY = "cfg7Key2ManageMarkers9x"  # shaped like a configuration key (22 characters)
FAST = {"backoff_initial": 0.01, "backoff_max": 0.02, "send_interval": 0.01}


def honeycomb(url: str, **options: Any) -> tuple[HoneycombSink, ExactLedger]:
    sink = HoneycombSink(CONFIG_KEY, "ds", url, **{**FAST, **options})
    ledger = ExactLedger()
    sink.bind(ledger)
    return sink, ledger


def otlp(url: str, **options: Any) -> tuple[OTLPSink, ExactLedger]:
    sink = OTLPSink(url, **{**FAST, **options})
    ledger = ExactLedger()
    sink.bind(ledger)
    return sink, ledger


def send(sink: Any, ledger: ExactLedger, n: int = 5) -> None:
    ledger.expect(n)
    sink.export(make_records(n))
    assert ledger.wait_reported(20.0)


def status_then(status: int, ok: Any, headers: dict[str, str] | None = None) -> Any:
    return sequence((status, headers or {}, orjson.dumps({"error": f"status {status}"})),
                    then=ok)


# -- User-Agent -----------------------------------------------------------------------------
def test_every_request_names_the_library_its_version_and_python() -> None:
    """Batches, markers and OTLP exports carry ``wideevents/<version> python/<version>``,
    as libhoney-py (transmission.py, Transmission.__init__: ``libhoney-py/{VERSION}
    python/{python_version()}``) and opentelemetry-exporter-otlp-proto-http
    (``_OTLP_HTTP_HEADERS``: ``OTel-OTLP-Exporter-Python/<version>``) name themselves."""
    want = f"wideevents/{importlib.metadata.version('wideevents')} python/{platform.python_version()}"
    with RecordingServer(honeycomb_ok) as hc, RecordingServer(otlp_ok) as ot:
        sink, ledger = honeycomb(hc.url)
        send(sink, ledger)
        assert sink.marker("deploy") is not None
        sink.close(2.0)
        exporter, ledger = otlp(ot.url)
        send(exporter, ledger)
        exporter.close(2.0)
        agents = [r.all("User-Agent") for r in hc.seen() + ot.seen()]
    assert [[want]] * 3 == agents


def test_a_user_agent_given_in_otlp_headers_replaces_ours() -> None:
    """``headers={"user-agent": ...}``: exactly one User-Agent goes out, the user's (header
    names are case-insensitive, RFC 9110 section 5.1; opentelemetry-python's
    ``_resolve_headers`` lets the user's headers win the same way)."""
    with RecordingServer(otlp_ok) as server:
        sink, ledger = otlp(server.url, headers={"user-agent": "my-gateway/2"})
        send(sink, ledger)
        sink.close(2.0)
        [request] = server.seen()
    assert ["my-gateway/2"] == request.all("User-Agent")


# -- retryable statuses -----------------------------------------------------------------------
@pytest.mark.parametrize("status", [429, 502, 503, 504, 400, 401, 403, 404, 408, 500, 501, 505])
def test_otlp_retries_exactly_the_specifications_codes(status: int) -> None:
    """OTLP specification, "Retryable Response Codes": 429, 502, 503 and 504 SHOULD be
    retried and every other 4xx/5xx MUST NOT (opentelemetry-python 1.45,
    exporter/otlp/common/http.py, ``_RETRYABLE_STATUS_CODES``)."""
    retryable = status in (429, 502, 503, 504)
    with RecordingServer(status_then(status, otlp_ok)) as server:
        sink, ledger = otlp(server.url)
        send(sink, ledger)
        sink.close(2.0)
        requests = len(server.seen())
    want = (2, (5, {}, {})) if retryable else (1, (0, {str(status): 5}, {}))
    assert want == (requests, ledger.outcome())


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, 400, 404, 501, 505])
def test_honeycomb_retries_what_libhoney_retries(status: int) -> None:
    """A whole batch answered 408, 429, 500, 502, 503 or 504 is sent again (libhoney-py,
    transmission.py ``_get_requests_session``: status_forcelist 500, 503, 504, 408, 429;
    502 too, a gateway's transient failure); 400, 404, 501, 505 are not."""
    retryable = status in (408, 429, 500, 502, 503, 504)
    with RecordingServer(status_then(status, honeycomb_ok)) as server:
        sink, ledger = honeycomb(server.url)
        send(sink, ledger)
        sink.close(2.0)
        requests = len(server.seen())
    want = (2, (5, {}, {})) if retryable else (1, (0, {str(status): 5}, {}))
    assert want == (requests, ledger.outcome())


@pytest.mark.parametrize("code", [429, 500, 503, 501, 505])
def test_honeycomb_per_event_statuses_follow_the_same_rule(code: int) -> None:
    """A per-event status in a 200 batch reply: resent when retryable (429, 500, 503), a
    rejection otherwise (501, 505 carry no promise that a resend would fare better)."""
    def first(request: Seen) -> Reply:
        count = len(orjson.loads(request.body))
        return 200, {}, orjson.dumps([{"status": code, "error": "no"}]
                                     + [{"status": 202}] * (count - 1))

    seen: list[int] = []

    def script(request: Seen) -> Reply:
        seen.append(len(orjson.loads(request.body)))
        return first(request) if len(seen) == 1 else honeycomb_ok(request)

    with RecordingServer(script) as server:
        sink, ledger = honeycomb(server.url)
        send(sink, ledger)
        sink.close(2.0)
    if code in (429, 500, 503):
        assert ([5, 1], (5, {}, {})) == (seen, ledger.outcome())
    else:
        assert ([5], (4, {"no": 1}, {})) == (seen, ledger.outcome())



# -- Retry-After ------------------------------------------------------------------------------
@pytest.mark.parametrize("make", ["otlp", "honeycomb"])
def test_retry_after_as_an_http_date_is_honoured(make: str) -> None:
    """``Retry-After: <HTTP-date>`` (RFC 9110, section 10.2.3) delays the retry until that
    time; without it the backoff here is 10-20 ms."""
    when = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=3)
    header = {"Retry-After": email.utils.format_datetime(when, usegmt=True)}
    ok = otlp_ok if make == "otlp" else honeycomb_ok
    with RecordingServer(status_then(503, ok, header)) as server:
        sink, ledger = (otlp if make == "otlp" else honeycomb)(server.url)
        send(sink, ledger)
        sink.close(2.0)
        first, second = server.seen()
    # The date has whole seconds: the wait is between 2 and 3 s.
    assert (5, True) == (ledger.outcome()[0], 1.5 <= second.at - first.at < 15.0)


@pytest.mark.parametrize(("value", "want"), [
    ("120", 120.0),
    ("0", 0.0),
    ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),  # RFC 9110's IMF-fixdate, 30 s after "now"
    ("Wednesday, 21-Oct-15 07:28:30 GMT", 30.0),  # the obsolete RFC 850 form
    ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),  # already past: retry at once
    ("-5", None), ("inf", None), ("nan", None), ("soon", None), ("", None), (None, None),
])
def test_retry_after_values(value: str | None, want: float | None) -> None:
    """Both forms of RFC 9110 section 10.2.3 (delay-seconds, HTTP-date), as
    opentelemetry-python's ``_extract_retry_after`` reads them; anything else is ignored
    (the usual backoff applies)."""
    now = datetime.datetime(2015, 10, 21, 7, 28, 0, tzinfo=datetime.UTC).timestamp()
    assert want == _retry_after(value, now=lambda: now)


def test_sender_retry_deadline_still_bounds_a_long_retry_after() -> None:
    """A ``Retry-After`` past the batch's ``retry_deadline`` ends the batch at once, counted
    (opentelemetry-python ends the export the same way)."""
    when = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
    header = {"Retry-After": email.utils.format_datetime(when, usegmt=True)}
    with RecordingServer(status_then(503, otlp_ok, header)) as server:
        sink, ledger = otlp(server.url, retry_deadline=5.0)
        started = time.monotonic()
        send(sink, ledger)
        elapsed = time.monotonic() - started
        sink.close(1.0)
    assert ((0, {}, {"retries_exhausted": 5}), True) == (ledger.outcome(), elapsed < 5.0)
