"""WideEventsWSGIMiddleware called in process, as a WSGI server would (PEP 3333)."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from flask import Flask

import wideevents
from wideevents import ConfigurationError
from wideevents.integrations.wsgi import WideEventsWSGIMiddleware
from wideevents.testing import capture_events


def environ(path: str = "/items/7", method: str = "GET", **extra: Any) -> dict[str, Any]:
    env: dict[str, Any] = {
        "REQUEST_METHOD": method, "SCRIPT_NAME": "", "PATH_INFO": path, "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "10.9.8.7", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": io.StringIO(), "wsgi.version": (1, 0), "wsgi.multithread": True,
        "wsgi.multiprocess": False, "wsgi.run_once": False,
    }
    env.update(extra)
    return env


class Server:
    """What a WSGI server does with an application: start, iterate, close."""

    def __init__(self) -> None:
        self.status = ""
        self.headers: list[tuple[str, str]] = []

    def start_response(self, status: str, headers: list[tuple[str, str]],
                       exc_info: Any = None) -> Any:
        self.status, self.headers = status, headers
        return lambda data: None

    def run(self, app: Any, env: dict[str, Any]) -> bytes:
        result = app(env, self.start_response)
        try:
            return b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()


def responder(status: str = "200 OK", chunks: tuple[bytes, ...] = (b"hello",),
              fields: dict[str, Any] | None = None) -> Any:
    def app(env: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if fields:
            wideevents.add(fields)
        start_response(status, [("Content-Type", "text/plain")])
        return list(chunks)

    return app


@pytest.fixture()
def events() -> Iterator[list[dict[str, Any]]]:
    with capture_events() as captured:
        yield captured


def test_semantic_convention_fields(events: list[dict[str, Any]]) -> None:
    """The OTel HTTP fields come from the environ, the status line and the body iterable."""
    env = environ("/things/9", "POST", CONTENT_LENGTH="11", HTTP_USER_AGENT="agent/2",
                  **{"wsgi.url_scheme": "https"})
    body = Server().run(WideEventsWSGIMiddleware(responder("201 Created", (b"abc", b"defg"))), env)
    assert b"abcdefg" == body
    [ev] = events
    expected = {"name": "POST", "http.request.method": "POST", "url.path": "/things/9",
                "url.scheme": "https", "client.address": "10.9.8.7",
                "user_agent.original": "agent/2", "http.request.body.size": 11,
                "http.response.body.size": 7, "http.response.status_code": 201}
    assert expected == {k: ev.get(k) for k in expected}
    assert "http.route" not in ev
    assert 7 == uuid.UUID(ev["request.id"]).version


def test_headers_request_id_and_traceparent(events: list[dict[str, Any]]) -> None:
    """Allowlisted headers (Content-Type included), X-Request-ID and traceparent are read."""
    tid, sid = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    env = environ(CONTENT_TYPE="application/json", HTTP_X_TENANT="acme",
                  HTTP_AUTHORIZATION="Bearer secret", HTTP_X_REQUEST_ID="rid-1",
                  HTTP_TRACEPARENT=f"00-{tid}-{sid}-01")
    app = WideEventsWSGIMiddleware(responder(), capture_headers=["Content-Type", "X-Tenant"])
    Server().run(app, env)
    [ev] = events
    expected = {"http.request.header.content-type": "application/json",
                "http.request.header.x-tenant": "acme", "request.id": "rid-1",
                "trace.trace_id": tid, "trace.parent_id": sid}
    assert expected == {k: ev.get(k) for k in expected}
    assert not any("secret" in str(v) for v in ev.values())


def test_route_from_a_werkzeug_style_request_object(events: list[dict[str, Any]]) -> None:
    """http.route is SCRIPT_NAME + environ['werkzeug.request'].url_rule.rule (duck typed)."""
    class Rule:
        rule = "/items/<int:item_id>"

    class Request:
        url_rule = Rule()

    def app(env: dict[str, Any], start_response: Any) -> list[bytes]:
        env["werkzeug.request"] = Request()
        start_response("200 OK", [])
        env["werkzeug.request"] = None  # as Flask does before returning
        return [b""]

    Server().run(WideEventsWSGIMiddleware(app), environ("/items/3", SCRIPT_NAME="/svc"))
    [ev] = events
    assert ("GET /svc/items/<int:item_id>", "/svc/items/<int:item_id>", "/svc/items/3") == (
        ev["name"], ev["http.route"], ev["url.path"])


def test_flask_in_process_routes_and_404(events: list[dict[str, Any]]) -> None:
    """A real Flask app: the url rule is the route; an unmatched path has none."""
    app = Flask("wsgi_in_process")

    @app.get("/users/<uid>")
    def user(uid: str) -> dict[str, str]:
        wideevents.add({"user.id": uid})
        return {"u": uid}

    app.wsgi_app = WideEventsWSGIMiddleware(app.wsgi_app)  # type: ignore[method-assign]
    for path in ("/users/ab12", "/nope"):
        Server().run(app, environ(path))
    assert [("GET /users/<uid>", "/users/<uid>", 200, "ab12"), ("GET", None, 404, None)] == [
        (e["name"], e.get("http.route"), e["http.response.status_code"], e.get("user.id"))
        for e in events]


def test_flask_propagated_exception_is_recorded_and_reraised(events: list[dict[str, Any]]) -> None:
    """With PROPAGATE_EXCEPTIONS the exception reaches the middleware, is recorded, re-raised;
    the route is read from Flask's got_request_exception, before Flask clears its request."""
    app = Flask("wsgi_propagate")
    app.config["PROPAGATE_EXCEPTIONS"] = True
    raised = LookupError("gone")

    @app.get("/boom")
    def boom() -> None:
        raise raised

    app.wsgi_app = WideEventsWSGIMiddleware(app.wsgi_app)  # type: ignore[method-assign]
    with pytest.raises(LookupError) as info:
        Server().run(app, environ("/boom"))
    assert info.value is raised
    [ev] = events
    assert (500, True, "LookupError", "gone", "/boom", "GET /boom") == (
        ev["http.response.status_code"], ev["error"], ev["error.type"], ev["error.message"],
        ev.get("http.route"), ev["name"])


def test_exception_from_the_app_propagates_unchanged(events: list[dict[str, Any]]) -> None:
    """The app's exception object reaches the server; the event has status 500 and the error."""
    raised = ValueError("bad input")

    def app(env: dict[str, Any], start_response: Any) -> list[bytes]:
        raise raised

    with pytest.raises(ValueError) as info:
        Server().run(WideEventsWSGIMiddleware(app), environ())
    assert info.value is raised
    [ev] = events
    assert (500, True, "ValueError", "bad input") == (
        ev["http.response.status_code"], ev["error"], ev["error.type"], ev["error.message"])


def test_exception_while_streaming_is_recorded(events: list[dict[str, Any]]) -> None:
    """An exception in the body generator propagates; close() finishes the event with it."""
    def app(env: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [])
        yield b"part"
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        Server().run(WideEventsWSGIMiddleware(app), environ())
    [ev] = events
    assert (200, 4, True, "OSError") == (ev["http.response.status_code"],
                                         ev["http.response.body.size"], ev["error"],
                                         ev["error.type"])


def test_5xx_answer_is_an_error(events: list[dict[str, Any]]) -> None:
    """A 503 status line gives error fields; a 200 none."""
    Server().run(WideEventsWSGIMiddleware(responder("503 Service Unavailable")), environ())
    Server().run(WideEventsWSGIMiddleware(responder()), environ())
    assert [(True, "503", "Service Unavailable"), (None, None, None)] == [
        (e.get("error"), e.get("error.type"), e.get("error.message")) for e in events]


def test_event_current_while_streaming_and_ends_at_close(events: list[dict[str, Any]]) -> None:
    """Chunks are produced inside the event; it is not current in between; close() ends it."""
    seen: list[bool] = []

    class Body:
        def __init__(self) -> None:
            self.chunks = iter([b"a", b"bb"])

        def __iter__(self) -> Iterator[bytes]:
            return self

        def __next__(self) -> bytes:
            chunk = next(self.chunks)
            wideevents.current_event().incr("body.chunks")
            return chunk

        def close(self) -> None:
            wideevents.add({"body.closed": True})

    def app(env: dict[str, Any], start_response: Any) -> Body:
        start_response("200 OK", [])
        return Body()

    server = Server()
    result = WideEventsWSGIMiddleware(app)(environ(), server.start_response)
    seen.append(wideevents.current_event().recording)
    chunks = list(result)
    seen.append(wideevents.current_event().recording)
    emitted_before_close = len(events)
    result.close()  # type: ignore[attr-defined]
    [ev] = events
    assert ([b"a", b"bb"], [False, False], 0) == (chunks, seen, emitted_before_close)
    assert (2, True, 3) == (ev["body.chunks"], ev["body.closed"], ev["http.response.body.size"])
    assert 0 <= ev["timing.response_ms"] <= ev["duration_ms"]


def test_late_fields_after_close_are_counted(events: list[dict[str, Any]]) -> None:
    """A field added to the request's event after close() is dropped and counted as late."""
    kept: list[wideevents.Event] = []

    def app(env: dict[str, Any], start_response: Any) -> list[bytes]:
        kept.append(wideevents.current_event())
        start_response("200 OK", [])
        return [b"ok"]

    Server().run(WideEventsWSGIMiddleware(app), environ())
    kept[0].add({"late.a": 1})
    assert (1, None) == (wideevents.stats()["fields"]["dropped"].get("late"),
                         events[0].get("late.a"))


def test_excluded_paths_and_prediction_header(events: list[dict[str, Any]]) -> None:
    """Excluded paths emit nothing; X-Prediction-ID is added when the event has one."""
    def app(env: dict[str, Any], start_response: Any) -> list[bytes]:
        if env["PATH_INFO"] == "/predict":
            wideevents.current_event().prediction_id  # noqa: B018 - creates prediction.id
        start_response("200 OK", [("A", "1")])
        return [b""]

    mw = WideEventsWSGIMiddleware(app, exclude_paths=["/health", "/static/*"],
                                  prediction_id_header="X-Prediction-ID")
    headers = []
    for path in ("/health", "/static/x.css", "/predict", "/plain"):
        server = Server()
        server.run(mw, environ(path))
        headers.append(server.headers)
    assert ["/predict", "/plain"] == [e["url.path"] for e in events]
    pid = events[0]["prediction.id"]
    assert [[("A", "1")], [("A", "1")], [("A", "1"), ("x-prediction-id", pid)], [("A", "1")]] \
        == headers


def test_non_ascii_path_is_decoded(events: list[dict[str, Any]]) -> None:
    """WSGI's latin-1 PATH_INFO is turned back into the UTF-8 path."""
    Server().run(WideEventsWSGIMiddleware(responder()),
                 environ("/caf\u00e9".encode().decode("latin-1")))
    assert ["/caf\u00e9"] == [e["url.path"] for e in events]


def test_unreadable_environ_runs_the_app_without_an_event(events: list[dict[str, Any]]) -> None:
    """An environ the middleware cannot read does not break the request."""
    body = Server().run(WideEventsWSGIMiddleware(responder()), environ(REQUEST_METHOD=None))
    assert (b"hello", []) == (body, events)


def test_bad_options_raise_configuration_error() -> None:
    """Credentials headers and malformed paths are refused at construction."""
    for kwargs in ({"capture_headers": ["Cookie"]}, {"exclude_paths": ["health"]}):
        with pytest.raises(ConfigurationError):
            WideEventsWSGIMiddleware(responder(), **kwargs)  # type: ignore[arg-type]
