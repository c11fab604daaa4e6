"""HoneycombQueryClient never sends its key across a redirect and reads replies in bounded
memory (docs/query.md, "In Honeycomb"). Real loopback servers, no mocks.

Why redirects matter: urllib's HTTPRedirectHandler (CPython ``urllib/request.py``,
``HTTPRedirectHandler.redirect_request``) copies every header of the original request into
the redirected one, ``X-Honeycomb-Team`` included, whatever host and scheme the
``Location`` names.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from wideevents.query import HoneycombQueryClient, Query, QueryError
from wideevents.query._honeycomb import MAX_REPLY_BYTES, MAX_RESULT_BYTES

KEY = "hcaik_01hxsecretsecretsecretsecret"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    seen: list[dict[str, str]]
    sent_bytes: int
    reply: Callable[[BaseHTTPRequestHandler], None]


@contextmanager
def _server(reply: Callable[[BaseHTTPRequestHandler], None]) -> Iterator[_Server]:
    """A loopback HTTP server recording each request's headers; ``reply`` answers it."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _any(self) -> None:
            server: _Server = self.server  # type: ignore[assignment]
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            server.seen.append(dict(self.headers.items()))
            server.reply(self)

        do_GET = do_POST = _any  # noqa: N815 - stdlib naming

    server = _Server(("127.0.0.1", 0), Handler)
    server.seen, server.sent_bytes, server.reply = [], 0, reply
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _url(server: _Server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def _ok(handler: BaseHTTPRequestHandler) -> None:
    body = b'{"id": "q-1", "complete": true, "data": {"results": []}}'
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def _client(url: str, **kwargs: Any) -> HoneycombQueryClient:
    return HoneycombQueryClient(api_key=KEY, api_host=url, timeout=30, poll_interval=0.01,
                                sleep=lambda s: None, **kwargs)  # fmt: skip


def _redirect_to(status: int, location: str) -> Callable[[BaseHTTPRequestHandler], None]:
    def redirect(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    return redirect


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_an_error_and_the_key_never_reaches_its_target(status: int) -> None:
    """Honeycomb answering 3xx to a second loopback server: that server never sees a
    request (so never the key); the error is a QueryError with the status, naming the
    location, and the key is in no message."""
    with _server(_ok) as target:
        location = f"{_url(target)}/1/queries/ds"
        with _server(_redirect_to(status, location)) as honeycomb:
            with pytest.raises(QueryError) as caught:
                _client(_url(honeycomb)).run(Query(), "ds")
        message = str(caught.value)
        assert ([], 1, status, True, False) == (
            target.seen, len(honeycomb.seen), caught.value.status, location in message,
            KEY in message,
        ), message


def test_a_redirect_location_is_shown_with_its_secrets_masked() -> None:
    """Userinfo, query values and the fragment of the Location show as ***."""
    with _server(_ok) as target:
        port = target.server_address[1]
        location = f"http://user:pw@127.0.0.1:{port}/steal?token=abc&key={KEY}#frag"
        with _server(_redirect_to(302, location)) as honeycomb:
            with pytest.raises(QueryError) as caught:
                _client(_url(honeycomb)).run(Query(), "ds")
    message = str(caught.value)
    shown = f"http://***@127.0.0.1:{port}/steal?token=***&key=***#***"
    assert (True, False, False, False) == (
        shown in message, KEY in message, "abc" in message, "pw@" in message), message


def test_the_key_appears_masked_even_in_a_location_path() -> None:
    """A Location carrying the key in its path shows *** in its place."""
    with _server(_redirect_to(302, f"http://127.0.0.1:9/{KEY}/x")) as honeycomb:
        with pytest.raises(QueryError) as caught:
            _client(_url(honeycomb)).run(Query(), "ds")
    assert ("http://127.0.0.1:9/***/x" in str(caught.value), KEY in str(caught.value)) == (
        True, False)


def _endless(handler: BaseHTTPRequestHandler, limit: int, length: int | None = None) -> None:
    """200 with a body of ``limit`` bytes (no Content-Length unless given: read to close)."""
    server: _Server = handler.server  # type: ignore[assignment]
    handler.send_response(200)
    handler.send_header("Content-Type", "application/json")
    if length is not None:
        handler.send_header("Content-Length", str(length))
    handler.send_header("Connection", "close")
    handler.end_headers()
    chunk = b"[" + b" " * 65535
    try:
        while server.sent_bytes < limit:
            handler.wfile.write(chunk)
            server.sent_bytes += len(chunk)
    except OSError:
        pass  # the client stopped reading: what we want
    handler.close_connection = True


def test_an_endless_small_reply_is_cut_at_its_cap() -> None:
    """POST /1/queries answered with 64 MB: a clear error after reading at most the cap
    (the server's count includes what socket buffers swallowed, a few MB at most)."""
    limit = 64 * 1024 * 1024
    with _server(lambda h: _endless(h, limit)) as honeycomb:
        with pytest.raises(QueryError) as caught:
            _client(_url(honeycomb)).run(Query(), "ds")
        sent = honeycomb.sent_bytes
    assert (True, True) == ("larger than 256 KB" in str(caught.value),
                            sent < MAX_REPLY_BYTES + 16 * 1024 * 1024), (str(caught.value), sent)


def test_a_query_result_larger_than_its_cap_is_an_error() -> None:
    """GET /1/query_results/... over 50 MB (streamed, no Content-Length) is refused."""
    limit = MAX_RESULT_BYTES + 8 * 1024 * 1024

    def reply(handler: BaseHTTPRequestHandler) -> None:
        if handler.command == "POST":
            return _ok(handler) if "/1/queries/" in handler.path else _started(handler)
        _endless(handler, limit)

    def _started(handler: BaseHTTPRequestHandler) -> None:
        body = b'{"id": "r-1", "complete": false}'
        handler.send_response(201)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    with _server(reply) as honeycomb:
        with pytest.raises(QueryError) as caught:
            _client(_url(honeycomb)).run(Query(), "ds")
    assert "larger than 51200 KB" in str(caught.value)


def test_a_declared_length_over_the_cap_is_refused_before_reading() -> None:
    """A Content-Length over the cap: refused at once, nothing of the body read."""
    with _server(lambda h: _endless(h, 1024 * 1024, length=10 * 1024 * 1024 * 1024)) as hc:
        with pytest.raises(QueryError) as caught:
            _client(_url(hc)).run(Query(), "ds")
    assert "larger than 256 KB" in str(caught.value)


def _reply_with(status: int, body: bytes) -> Callable[[BaseHTTPRequestHandler], None]:
    def reply(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    return reply


@pytest.mark.parametrize("status", [200, 400])
def test_a_deeply_nested_reply_is_a_query_error(status: int) -> None:
    """A reply (or an error body) nested deeper than Python's parser goes: a QueryError,
    never a RecursionError out of run()."""
    with _server(_reply_with(status, b"[" * 100_000)) as honeycomb:
        with pytest.raises(QueryError) as caught:
            _client(_url(honeycomb)).run(Query(), "ds")
    assert (QueryError, None if status == 200 else 400) == (type(caught.value),
                                                            caught.value.status)
