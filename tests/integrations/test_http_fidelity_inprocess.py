"""The middlewares' url.query and WSGI exception recording, in process, for the cases a real
server does not send: raw UTF-8 query bytes, Flask loaded late, hostile exc_info.

Sources: PEP 3333 ("Unicode Issues": native strings hold the bytes decoded as Latin-1) and
the ASGI HTTP connection scope (``query_string``: the bytes after ``?``, percent-encoded);
OpenTelemetry semantic conventions, ``url.query`` (secret values replaced by ``REDACTED``);
Flask ``Flask.handle_exception`` (``got_request_exception`` is sent, then a 500 answered).
"""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
import textwrap
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from flask import Flask

from tests.support.hostile import Hostile
from wideevents.integrations.asgi import WideEventsMiddleware
from wideevents.integrations.wsgi import WideEventsWSGIMiddleware
from wideevents.testing import capture_events

UTF8_QUERY = "q=café crème&password=hunter2"
UTF8_EXPECTED = "q=café crème&password=REDACTED"


def wsgi_environ(path: str = "/items/7", query: str = "") -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": path, "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "10.9.8.7", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": io.StringIO(), "wsgi.version": (1, 0), "wsgi.multithread": True,
        "wsgi.multiprocess": False, "wsgi.run_once": False,
    }


def run_wsgi(app: Any, environ: dict[str, Any]) -> tuple[str, bytes]:
    """What a WSGI server does: call, iterate, close; returns (status, body)."""
    seen: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen.append(status)
        return lambda data: None

    result = app(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return seen[-1], body


def ok_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


@pytest.fixture()
def events() -> Iterator[list[dict[str, Any]]]:
    with capture_events() as captured:
        yield captured


def test_wsgi_query_string_bytes_beyond_ascii_are_read_as_utf8(
        events: list[dict[str, Any]]) -> None:
    """QUERY_STRING holds the raw bytes decoded as Latin-1 (PEP 3333): recorded as UTF-8 text."""
    latin1 = UTF8_QUERY.encode("utf-8").decode("latin-1")
    run_wsgi(WideEventsWSGIMiddleware(ok_app), wsgi_environ(query=latin1))
    assert [UTF8_EXPECTED] == [e.get("url.query") for e in events]


def test_asgi_query_string_bytes_beyond_ascii_are_read_as_utf8(
        events: list[dict[str, Any]]) -> None:
    """An ASGI query_string with raw UTF-8 bytes is recorded as that text, secrets masked."""
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "scheme": "http", "path": "/items/7", "raw_path": b"/items/7",
             "query_string": UTF8_QUERY.encode("utf-8"), "root_path": "", "headers": [],
             "client": ("10.1.2.3", 5555), "server": ("127.0.0.1", 8000)}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        pass

    asyncio.run(WideEventsMiddleware(app)(scope, receive, send))
    assert [UTF8_EXPECTED] == [e.get("url.query") for e in events]


def test_a_flask_exception_does_not_leak_into_the_next_request(
        events: list[dict[str, Any]]) -> None:
    """The exception Flask answered 500 belongs to its request only, not the next one."""
    app = Flask("fidelity_no_leak")

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("kaboom")

    @app.get("/fine")
    def fine() -> str:
        return "fine"

    app.wsgi_app = WideEventsWSGIMiddleware(app.wsgi_app)  # type: ignore[method-assign]
    statuses = [run_wsgi(app, wsgi_environ(p))[0][:3] for p in ("/boom", "/fine")]
    assert (["500", "200"], [("RuntimeError", 500), (None, 200)]) == (
        statuses, [(e.get("error.type"), e["http.response.status_code"]) for e in events])


def test_a_flask_app_outside_the_middleware_records_nothing(
        events: list[dict[str, Any]]) -> None:
    """A Flask app called without the middleware: its 500 makes no event and marks none."""
    bare = Flask("fidelity_bare")

    @bare.get("/boom")
    def boom() -> None:
        raise RuntimeError("kaboom")

    WideEventsWSGIMiddleware(ok_app)  # connects the signal receiver
    assert "500" == run_wsgi(bare, wsgi_environ("/boom"))[0][:3]
    run_wsgi(WideEventsWSGIMiddleware(ok_app), wsgi_environ())
    assert [(None, 200)] == [(e.get("error"), e["http.response.status_code"]) for e in events]


def test_hostile_exc_info_never_breaks_the_response(events: list[dict[str, Any]]) -> None:
    """An exc_info that is not a tuple, or holds a hostile object: the answer goes through."""
    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        start_response("500 Internal Server Error", [], Hostile())
        return [b"err"]

    def app2(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        start_response("500 Internal Server Error", [], (Hostile, Hostile(), None))
        return [b"err"]

    assert [("500 Internal Server Error", b"err")] * 2 == [
        run_wsgi(WideEventsWSGIMiddleware(a), wsgi_environ()) for a in (app, app2)]
    assert [("500", 500)] * 2 == [(e.get("error.type"), e["http.response.status_code"])
                                  for e in events]


FLASK_LOADED_LATE = """
    import sys
    from wideevents.integrations.wsgi import WideEventsWSGIMiddleware
    from wideevents.testing import capture_events

    flask_app = None

    def lazy(environ, start_response):
        global flask_app
        if flask_app is None:  # Flask is imported only now, after the middleware exists
            from flask import Flask
            flask_app = Flask("late")
            flask_app.add_url_rule("/boom", "boom", lambda: 1 / 0)
        return flask_app.wsgi_app(environ, start_response)

    assert "flask" not in sys.modules
    app = WideEventsWSGIMiddleware(lazy)
    environ = {"REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "PATH_INFO": "/boom",
               "QUERY_STRING": "", "SERVER_NAME": "x", "SERVER_PORT": "80",
               "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
               "wsgi.input": __import__("io").BytesIO(), "wsgi.errors": sys.stderr}
    with capture_events() as events:
        for _ in range(2):
            body = app(dict(environ), lambda status, headers, exc_info=None: None)
            b"".join(body)
            body.close()  # the server's close() ends the event (PEP 3333)
    print([e.get("error.type") for e in events])
"""


def test_flask_loaded_after_the_middleware_was_built_is_still_heard() -> None:
    """Flask imported after the middleware was built: heard from the next request on.

    The request during which Flask itself was first imported falls back to the status code
    (the documented limit); every later one gets the exception's type.
    """
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(FLASK_LOADED_LATE)],
                          capture_output=True, text=True, timeout=60)
    assert (0, "['500', 'ZeroDivisionError']") == (
        proc.returncode, proc.stdout.strip()), proc.stderr


def test_url_query_uses_the_pipelines_configured_names() -> None:
    """Names given to configure(redact=...) are redacted in url.query too, not only the
    defaults (the middlewares read the active pipeline's redaction rules)."""
    import wideevents
    from wideevents.sinks import MemorySink

    memory = MemorySink()
    wideevents.configure(sinks=[memory], redact=["session_key"])
    app = WideEventsWSGIMiddleware(ok_app)
    run_wsgi(app, wsgi_environ(query="session_key=abc123&page=2&password=x"))
    assert wideevents.flush(5.0) is True
    assert "session_key=REDACTED&page=2&password=REDACTED" == memory.events[0]["url.query"]
