"""The HTTP middlewares as OpenTelemetry and the frameworks define them, through real servers.

Sources matched here:

- ``url.query``: OpenTelemetry semantic conventions, "HTTP spans" (HTTP server span:
  ``url.query`` is *Conditionally Required: if and only if one was received/sent*) and the
  URL attributes registry (``url.query``: the URI query component, RFC 3986 section 3.4,
  without the ``?``; "Sensitive content provided in url.query SHOULD be scrubbed"; the
  values of ``AWSAccessKeyId``, ``Signature``, ``sig``, ``X-Goog-Signature``,
  ``X-Amz-Signature``, ``X-Amz-Credential``, ``X-Amz-Security-Token`` SHOULD be replaced by
  ``REDACTED``, the key kept).
- Exceptions under WSGI: opentelemetry-python-contrib, Flask instrumentation,
  ``_wrapped_teardown_request`` / ``_teardown_request(exc)``: an exception Flask turned into
  a 500 is recorded on the server span with its type (``activation.__exit__(type(exc), exc,
  tb)``), the status code staying in ``http.response.status_code``; Flask's
  ``got_request_exception`` signal (``Flask.handle_exception``) is sent for exactly those
  exceptions. OpenTelemetry semantic conventions, "HTTP spans", ``error.type``: the
  exception type (fully qualified class name) when an exception was thrown, else the status
  code.
- PEP 3333, "The start_response() Callable" and "Error Handling": an error handler passes
  ``exc_info`` to ``start_response`` with the error status it answers.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from flask import Flask

import wideevents
from tests.support.integrations import (
    memory_pipeline,
    uvicorn_server,
    wait_for_events,
    waitress_server,
)
from wideevents import ConfigurationError
from wideevents.integrations.asgi import WideEventsMiddleware
from wideevents.integrations.wsgi import WideEventsWSGIMiddleware
from wideevents.sinks import MemorySink

# The seven keys the conventions name, plus this project's list (docs/reliability.md,
# "Secrets and redaction", URLs), each with a value that must never reach an event.
SECRET_QUERY = ("q=running+shoes&AWSAccessKeyId=AKIAEXAMPLE1&Signature=sig-value-2"
                "&sig=sig-value-3&X-Goog-Signature=sig-value-4&X-Amz-Signature=sig-value-5"
                "&X-Amz-Credential=cred-value-6&X-Amz-Security-Token=tok-value-7"
                "&api_key=key-value-8&access_token=tok-value-9&page=2")
REDACTED_QUERY = ("q=running+shoes&AWSAccessKeyId=REDACTED&Signature=REDACTED"
                  "&sig=REDACTED&X-Goog-Signature=REDACTED&X-Amz-Signature=REDACTED"
                  "&X-Amz-Credential=REDACTED&X-Amz-Security-Token=REDACTED"
                  "&api_key=REDACTED&access_token=REDACTED&page=2")
SECRET_VALUES = ("AKIAEXAMPLE1", "sig-value-2", "sig-value-3", "sig-value-4", "sig-value-5",
                 "cred-value-6", "tok-value-7", "key-value-8", "tok-value-9")


class ModelUnavailable(Exception):
    """An application exception with a module-qualified name."""


def build_asgi() -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    async def items(item_id: int) -> dict[str, int]:
        return {"item": item_id}

    return app


def build_flask() -> Flask:
    app = Flask("http_fidelity")

    @app.get("/items/<int:item_id>")
    def items(item_id: int) -> dict[str, int]:
        return {"item": item_id}

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("kaboom")

    @app.get("/model")
    def model() -> None:
        raise ModelUnavailable("ranker v3 not loaded")

    @app.get("/classified")
    def classified() -> None:
        raise KeyError("user 42")

    @app.errorhandler(KeyError)
    def classify(err: KeyError) -> tuple[str, int]:
        # The application's own 500 handler names the error: its fields are kept.
        wideevents.add({"error": True, "error.type": "feature_missing",
                        "error.message": "a feature was missing"})
        return "missing", 500

    @app.get("/not-found-handled")
    def handled() -> None:
        raise LookupError("no such user")

    @app.errorhandler(LookupError)
    def not_found(err: LookupError) -> tuple[str, int]:
        return "not found", 404

    return app


def exc_info_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    """A plain WSGI app whose error handler answers 503 with exc_info (PEP 3333)."""
    try:
        raise TimeoutError("feature store timed out")
    except TimeoutError:
        start_response("503 Service Unavailable", [("Content-Type", "text/plain")],
                       sys.exc_info())
        return [b"unavailable"]


def dispatch(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    if environ.get("PATH_INFO", "").startswith("/plain"):
        return exc_info_app(environ, start_response)
    return flask_app.wsgi_app(environ, start_response)


flask_app = build_flask()


@pytest.fixture(scope="module")
def asgi_urls() -> Iterator[tuple[str, str]]:
    """Two uvicorn servers: the default middleware, and one with capture_query=False."""
    with uvicorn_server(WideEventsMiddleware(build_asgi())) as on, \
            uvicorn_server(WideEventsMiddleware(build_asgi(), capture_query=False)) as off:
        yield on, off


@pytest.fixture(scope="module")
def wsgi_urls() -> Iterator[tuple[str, str]]:
    """Two waitress servers: the default middleware, and one with capture_query=False."""
    with waitress_server(WideEventsWSGIMiddleware(dispatch)) as on, \
            waitress_server(WideEventsWSGIMiddleware(dispatch, capture_query=False)) as off:
        yield on, off


@pytest.fixture()
def sink() -> Iterator[MemorySink]:
    with memory_pipeline() as s:
        yield s


def one_event(sink: MemorySink) -> dict[str, Any]:
    [ev] = wait_for_events(sink, 1)
    return ev


@pytest.mark.parametrize("server", ["asgi", "wsgi"])
def test_url_query_is_recorded_with_secret_values_redacted(
        server: str, asgi_urls: tuple[str, str], wsgi_urls: tuple[str, str],
        sink: MemorySink) -> None:
    """url.query is the query as sent, without '?', each secret parameter's value REDACTED."""
    base = (asgi_urls if server == "asgi" else wsgi_urls)[0]
    response = httpx.get(f"{base}/items/7?{SECRET_QUERY}", timeout=10)
    assert 200 == response.status_code
    ev = one_event(sink)
    assert (REDACTED_QUERY, "/items/7") == (ev.get("url.query"), ev["url.path"])
    assert [] == [v for v in SECRET_VALUES if any(v in str(x) for x in ev.values())]


@pytest.mark.parametrize("server", ["asgi", "wsgi"])
def test_url_query_is_absent_when_none_was_received(
        server: str, asgi_urls: tuple[str, str], wsgi_urls: tuple[str, str],
        sink: MemorySink) -> None:
    """No query in the request: no url.query field (semconv: if and only if one was received)."""
    base = (asgi_urls if server == "asgi" else wsgi_urls)[0]
    assert 200 == httpx.get(f"{base}/items/7", timeout=10).status_code
    assert "url.query" not in one_event(sink)


@pytest.mark.parametrize("server", ["asgi", "wsgi"])
def test_capture_query_false_records_no_query(
        server: str, asgi_urls: tuple[str, str], wsgi_urls: tuple[str, str],
        sink: MemorySink) -> None:
    """capture_query=False (privacy opt-out): the event has no url.query, nor its values."""
    base = (asgi_urls if server == "asgi" else wsgi_urls)[1]
    assert 200 == httpx.get(f"{base}/items/7?q=private+words&page=2",
                            timeout=10).status_code
    ev = one_event(sink)
    assert (None, False) == (ev.get("url.query"),
                             any("private" in str(v) for v in ev.values()))


@pytest.mark.parametrize("server", ["asgi", "wsgi"])
def test_url_query_keeps_percent_encoding(
        server: str, asgi_urls: tuple[str, str], wsgi_urls: tuple[str, str],
        sink: MemorySink) -> None:
    """The query is recorded as it was sent: percent-escapes kept, not decoded."""
    base = (asgi_urls if server == "asgi" else wsgi_urls)[0]
    # '%26' is an escaped '&' inside a value, '%3D' an escaped '=': neither splits anything.
    assert 200 == httpx.get(f"{base}/items/7?q=caf%C3%A9%26cr%C3%A8me&token=t%3Dx",
                            timeout=10).status_code
    assert "q=caf%C3%A9%26cr%C3%A8me&token=REDACTED" == one_event(sink).get("url.query")


def test_flask_view_exception_is_recorded_with_its_type(wsgi_urls: tuple[str, str],
                                                        sink: MemorySink) -> None:
    """A Flask view raising RuntimeError: error.type/message of the exception, status 500 beside."""
    response = httpx.get(f"{wsgi_urls[0]}/boom", timeout=10)
    assert 500 == response.status_code
    ev = one_event(sink)
    expected = {"name": "GET /boom", "http.route": "/boom", "http.response.status_code": 500,
                "error": True, "error.type": "RuntimeError", "error.message": "kaboom"}
    assert expected == {k: ev.get(k) for k in expected}


def test_flask_application_exception_type_is_module_qualified(wsgi_urls: tuple[str, str],
                                                              sink: MemorySink) -> None:
    """An application exception class is named with its module, as the ASGI side names it."""
    assert 500 == httpx.get(f"{wsgi_urls[0]}/model", timeout=10).status_code
    ev = one_event(sink)
    assert (f"{__name__}.ModelUnavailable", "ranker v3 not loaded", 500) == (
        ev.get("error.type"), ev.get("error.message"), ev["http.response.status_code"])


def test_flask_error_fields_set_by_the_application_are_kept(wsgi_urls: tuple[str, str],
                                                            sink: MemorySink) -> None:
    """An error handler answering 500 that names the error itself keeps its error fields."""
    assert 500 == httpx.get(f"{wsgi_urls[0]}/classified", timeout=10).status_code
    ev = one_event(sink)
    assert (True, "feature_missing", "a feature was missing", 500) == (
        ev.get("error"), ev.get("error.type"), ev.get("error.message"),
        ev["http.response.status_code"])


def test_flask_exception_the_application_handles_as_4xx_is_not_an_error(
        wsgi_urls: tuple[str, str], sink: MemorySink) -> None:
    """An exception the app's own handler turns into a 404 is no server error (semconv)."""
    assert 404 == httpx.get(f"{wsgi_urls[0]}/not-found-handled", timeout=10).status_code
    ev = one_event(sink)
    assert (None, None, 404) == (ev.get("error"), ev.get("error.type"),
                                 ev["http.response.status_code"])


def test_wsgi_exc_info_given_to_start_response_is_recorded(wsgi_urls: tuple[str, str],
                                                           sink: MemorySink) -> None:
    """A plain WSGI error handler passing exc_info with its 503: the exception is recorded."""
    assert 503 == httpx.get(f"{wsgi_urls[0]}/plain", timeout=10).status_code
    ev = one_event(sink)
    assert (True, "TimeoutError", "feature store timed out", 503) == (
        ev.get("error"), ev.get("error.type"), ev.get("error.message"),
        ev["http.response.status_code"])


@pytest.mark.parametrize("make", [
    pytest.param(lambda **kw: WideEventsMiddleware(build_asgi(), **kw), id="asgi"),
    pytest.param(lambda **kw: WideEventsWSGIMiddleware(dispatch, **kw), id="wsgi"),
])
def test_capture_query_must_be_a_bool(make: Any) -> None:
    """capture_query='no' is a configuration error whose message says what to pass."""
    with pytest.raises(ConfigurationError, match="capture_query=False"):
        make(capture_query="no")
