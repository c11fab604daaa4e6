"""WideEventsMiddleware called in process: fields, routes, errors, options, pass-through."""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route, Router

import wideevents
from wideevents import ConfigurationError
from wideevents._core import log as _log
from wideevents.integrations.asgi import WideEventsMiddleware
from wideevents.testing import capture_events

Message = dict[str, Any]


def http_scope(path: str = "/items/7", method: str = "GET",
               headers: list[tuple[bytes, bytes]] | None = None, **extra: Any) -> dict[str, Any]:
    scope: dict[str, Any] = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "https", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": headers or [], "client": ("10.1.2.3", 5555),
        "server": ("127.0.0.1", 8000),
    }
    scope.update(extra)
    return scope


def call(app: Any, scope: dict[str, Any], body: list[bytes] | None = None) -> list[Message]:
    """Run one ASGI request; returns the messages the app sent."""
    incoming = [{"type": "http.request", "body": chunk, "more_body": i < len(body) - 1}
                for i, chunk in enumerate(body)] if body else [
        {"type": "http.request", "body": b"", "more_body": False}]
    sent: list[Message] = []

    async def receive() -> Message:
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def responder(status: int = 200, chunks: tuple[bytes, ...] = (b"hello",),
              headers: list[tuple[bytes, bytes]] | None = None, fields: dict[str, Any] | None = None,
              read_body: bool = False) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if read_body:
            while True:
                message = await receive()
                if not message.get("more_body"):
                    break
        if fields:
            wideevents.add(fields)
        await send({"type": "http.response.start", "status": status, "headers": headers or []})
        for i, chunk in enumerate(chunks):
            await send({"type": "http.response.body", "body": chunk,
                        "more_body": i < len(chunks) - 1})

    return app


@pytest.fixture()
def events() -> Iterator[list[dict[str, Any]]]:
    with capture_events() as captured:
        yield captured


def test_semantic_convention_fields(events: list[dict[str, Any]]) -> None:
    """A plain request records the OTel HTTP fields from the scope, headers and messages."""
    headers = [(b"user-agent", b"agent/1.0"), (b"content-length", b"11"), (b"host", b"x")]
    call(WideEventsMiddleware(responder(201, (b"abc", b"defg"))),
         http_scope("/things/9", "POST", headers), [b"hello", b" world"])
    [ev] = events
    expected = {"name": "POST", "http.request.method": "POST", "url.path": "/things/9",
                "url.scheme": "https", "client.address": "10.1.2.3",
                "user_agent.original": "agent/1.0", "http.request.body.size": 11,
                "http.response.body.size": 7, "http.response.status_code": 201}
    assert expected == {k: ev.get(k) for k in expected}
    assert "http.route" not in ev and "error" not in ev
    assert 7 == uuid.UUID(ev["request.id"]).version


def test_request_body_counted_without_content_length(events: list[dict[str, Any]]) -> None:
    """Without Content-Length the bytes the application read are the request body size."""
    call(WideEventsMiddleware(responder(read_body=True)), http_scope(method="POST"),
         [b"12345", b"678", b""])
    assert [8] == [e["http.request.body.size"] for e in events]


def test_request_id_header_is_honoured_cleaned_or_replaced(events: list[dict[str, Any]]) -> None:
    """X-Request-ID is kept (bounded to 128 chars); a non-printable one is replaced."""
    app = WideEventsMiddleware(responder())
    long_id = "r" * 300
    for value in (b"abc-123", long_id.encode(), b"bad\x01id"):
        call(app, http_scope(headers=[(b"x-request-id", value)]))
    ids = [e["request.id"] for e in events]
    assert ["abc-123", "r" * 128] == ids[:2]
    assert 7 == uuid.UUID(ids[2]).version


def test_request_id_header_option(events: list[dict[str, Any]]) -> None:
    """request_id_header picks another header; None always generates a new id."""
    call(WideEventsMiddleware(responder(), request_id_header="X-Correlation-ID"),
         http_scope(headers=[(b"x-correlation-id", b"corr-1"), (b"x-request-id", b"no")]))
    call(WideEventsMiddleware(responder(), request_id_header=None),
         http_scope(headers=[(b"x-request-id", b"ignored")]))
    assert "corr-1" == events[0]["request.id"]
    assert 7 == uuid.UUID(events[1]["request.id"]).version


def test_traceparent_is_honoured_and_does_not_leak(events: list[dict[str, Any]]) -> None:
    """A valid traceparent parents the event; an invalid one starts a new trace; nothing leaks."""
    trace_id, parent = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
    app = WideEventsMiddleware(responder())
    call(app, http_scope(headers=[(b"traceparent", f"00-{trace_id}-{parent}-01".encode())]))
    call(app, http_scope(headers=[(b"traceparent", f"00-{trace_id.upper()}-{parent}-01".encode())]))
    with wideevents.event("after"):
        pass
    valid, invalid, after = events
    assert (trace_id, parent) == (valid["trace.trace_id"], valid["trace.parent_id"])
    assert "trace.parent_id" not in invalid and invalid["trace.trace_id"] != trace_id.upper()
    assert "trace.parent_id" not in after and after["trace.trace_id"] != trace_id


def test_captured_headers_follow_the_allowlist(events: list[dict[str, Any]]) -> None:
    """Only allowlisted headers are recorded (repeats joined); credentials never are."""
    headers = [(b"content-type", b"application/json"), (b"x-tenant", b"a"), (b"x-tenant", b"b"),
               (b"authorization", b"Bearer secret"), (b"cookie", b"s=1"), (b"x-other", b"o")]
    call(WideEventsMiddleware(responder(), capture_headers=["Content-Type", "X-Tenant"]),
         http_scope(headers=headers))
    [ev] = events
    captured = {k: v for k, v in ev.items() if k.startswith("http.request.header.")}
    assert {"http.request.header.content-type": "application/json",
            "http.request.header.x-tenant": "a, b"} == captured
    assert not any("secret" in str(v) or "s=1" == v for v in ev.values())


@pytest.mark.parametrize("kwargs", [
    {"capture_headers": ["Authorization"]}, {"capture_headers": ["cookie"]},
    {"capture_headers": ["Set-Cookie"]}, {"capture_headers": ["Proxy-Authorization"]},
    {"capture_headers": ["bad header"]}, {"capture_headers": "Content-Type"},
    {"exclude_paths": ["health"]}, {"exclude_paths": "/health"}, {"exclude_paths": [3]},
    {"request_id_header": "a:b"}, {"prediction_id_header": ""},
])
def test_bad_options_raise_configuration_error(kwargs: dict[str, Any]) -> None:
    """Every wrong option fails at construction with ConfigurationError."""
    with pytest.raises(ConfigurationError):
        WideEventsMiddleware(responder(), **kwargs)


def test_excluded_paths_exact_and_prefix(events: list[dict[str, Any]]) -> None:
    """Exact paths and '*' prefixes emit nothing; neighbours still do."""
    app = WideEventsMiddleware(responder(), exclude_paths=["/health", "/static/*"])
    for path in ("/health", "/static/app.js", "/static/", "/healthz", "/stat"):
        call(app, http_scope(path))
    assert ["/healthz", "/stat"] == [e["url.path"] for e in events]


def test_methods_follow_semantic_conventions(events: list[dict[str, Any]]) -> None:
    """Known methods kept; other spellings canonicalised; unknown ones become _OTHER/HTTP."""
    app = WideEventsMiddleware(responder())
    for method in ("DELETE", "get", "BREW"):
        call(app, http_scope(method=method))
    got = [(e["name"], e["http.request.method"], e.get("http.request.method_original"))
           for e in events]
    assert [("DELETE", "DELETE", None), ("GET", "GET", "get"), ("HTTP", "_OTHER", "BREW")] == got


def test_exception_propagates_unchanged_with_error_fields(events: list[dict[str, Any]]) -> None:
    """The app's own exception object reaches the caller; the event records it with status 500."""
    raised = KeyError("missing")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise raised

    with pytest.raises(KeyError) as info:
        call(WideEventsMiddleware(app), http_scope())
    assert info.value is raised
    [ev] = events
    expected = {"error": True, "error.type": "KeyError", "error.message": "'missing'",
                "http.response.status_code": 500}
    assert expected == {k: ev.get(k) for k in expected}


def test_exception_after_the_response_started_keeps_the_sent_status(
        events: list[dict[str, Any]]) -> None:
    """An exception after the response started keeps the status sent and records the error."""
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        raise ConnectionError("upstream went away")

    with pytest.raises(ConnectionError):
        call(WideEventsMiddleware(app), http_scope())
    [ev] = events
    assert (200, True, "ConnectionError", 4) == (
        ev["http.response.status_code"], ev["error"], ev["error.type"],
        ev["http.response.body.size"])


def test_5xx_answer_without_exception_is_an_error(events: list[dict[str, Any]]) -> None:
    """A 503 answer gives error fields from the status; an app-set error.type is kept."""
    call(WideEventsMiddleware(responder(503)), http_scope())
    call(WideEventsMiddleware(responder(502, fields={"error.type": "UpstreamTimeout"})),
         http_scope())
    call(WideEventsMiddleware(responder(404)), http_scope())
    got = [(e.get("error"), e.get("error.type"), e.get("error.message")) for e in events]
    assert [(True, "503", "Service Unavailable"), (True, "UpstreamTimeout", "Bad Gateway"),
            (None, None, None)] == got


def test_websocket_scope_passes_through_untouched(events: list[dict[str, Any]]) -> None:
    """A websocket scope reaches the app with the very same scope, receive and send objects."""
    seen: list[tuple[Any, Any, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((scope, receive, send))

    async def receive() -> Message:
        return {}

    async def send(message: Message) -> None:
        return None

    websocket = {"type": "websocket", "path": "/ws", "headers": []}
    asyncio.run(WideEventsMiddleware(app)(websocket, receive, send))
    assert [(websocket, receive, send)] == seen
    assert seen[0][0] is websocket
    assert [] == events


def test_lifespan_shutdown_flushes_before_completing() -> None:
    """Lifespan messages pass unchanged; events are delivered before shutdown completes."""
    from wideevents.sinks import MemorySink

    memory = MemorySink()
    wideevents.configure(sinks=[memory])
    got: list[tuple[str, int]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "lifespan"
        assert (await receive())["type"] == "lifespan.startup"
        await send({"type": "lifespan.startup.complete"})
        assert (await receive())["type"] == "lifespan.shutdown"
        for i in range(5):
            with wideevents.event("last-words", i=i):
                pass
        await send({"type": "lifespan.shutdown.complete"})

    incoming = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

    async def receive() -> Message:
        return next(incoming)

    async def send(message: Message) -> None:
        got.append((message["type"], len(memory.events)))

    scope = {"type": "lifespan", "asgi": {"version": "3.0"}}
    asyncio.run(WideEventsMiddleware(app)(scope, receive, send))
    assert got == [("lifespan.startup.complete", 0), ("lifespan.shutdown.complete", 5)]


def test_prediction_id_header_only_when_the_event_has_one(events: list[dict[str, Any]]) -> None:
    """The response header carries prediction.id when set, is absent otherwise or when unsafe."""
    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["path"] == "/pred":
            wideevents.current_event().prediction_id  # noqa: B018 - creates prediction.id
        elif scope["path"] == "/unsafe":
            wideevents.add({"prediction.id": "x\r\nSet-Cookie: a=b"})
        await send({"type": "http.response.start", "status": 200, "headers": [(b"a", b"1")]})
        await send({"type": "http.response.body", "body": b""})

    mw = WideEventsMiddleware(app, prediction_id_header="X-Prediction-ID")
    started = [call(mw, http_scope(p))[0]["headers"] for p in ("/pred", "/plain", "/unsafe")]
    pid = events[0]["prediction.id"]
    assert [[(b"a", b"1"), (b"x-prediction-id", pid.encode())], [(b"a", b"1")],
            [(b"a", b"1")]] == [list(h) for h in started]


def test_context_is_reset_after_the_request(events: list[dict[str, Any]]) -> None:
    """After the request the event is no longer current (no leak into the next work)."""
    async def scenario() -> bool:
        async def receive() -> Message:
            return {"type": "http.request", "body": b""}

        async def send(message: Message) -> None:
            return None

        await WideEventsMiddleware(responder())(http_scope(), receive, send)
        return wideevents.current_event().recording

    assert False is asyncio.run(scenario())
    assert 1 == len(events)


def test_late_fields_are_counted_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    """Fields added after the request's event ended are dropped, counted and logged once."""
    kept: list[wideevents.Event] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        kept.append(wideevents.current_event())
        await responder()(scope, receive, send)

    _log.reset()
    with capture_events() as captured, caplog.at_level(logging.WARNING, logger="wideevents"):
        call(WideEventsMiddleware(app), http_scope())
        kept[0].add({"late.a": 1, "late.b": 2})
        kept[0]["late.c"] = 3
        late = wideevents.stats()["fields"]["dropped"].get("late")
    assert 3 == late
    assert [] == [k for k in captured[0] if k.startswith("late.")]
    assert 1 == sum("after it finished" in r.getMessage() for r in caplog.records)


def test_broken_scope_runs_the_app_without_an_event(events: list[dict[str, Any]]) -> None:
    """A scope the middleware cannot read does not break the request: no event, app runs."""
    sent = call(WideEventsMiddleware(responder(204)),
                http_scope(headers=[(b"user-agent", "not-bytes")]))  # type: ignore[list-item]
    assert (204, []) == (sent[0]["status"], events)


def test_root_path_is_part_of_the_route(events: list[dict[str, Any]]) -> None:
    """The application root (scope root_path) prefixes http.route."""
    class FakeRoute:
        path = "/items/{id}"

    async def app(scope: Any, receive: Any, send: Any) -> None:
        scope["route"] = FakeRoute()
        await responder()(scope, receive, send)

    call(WideEventsMiddleware(app), http_scope("/api/items/3", root_path="/api"))
    assert [("GET /api/items/{id}", "/api/items/{id}")] == [
        (e["name"], e["http.route"]) for e in events]


def test_a_name_set_by_the_application_is_kept(events: list[dict[str, Any]]) -> None:
    """If the application renames its event, the middleware does not overwrite the name."""
    class FakeRoute:
        path = "/x"

    async def app(scope: Any, receive: Any, send: Any) -> None:
        scope["route"] = FakeRoute()
        wideevents.add({"name": "predict"})
        await responder()(scope, receive, send)

    call(WideEventsMiddleware(app), http_scope("/x"))
    assert [("predict", "/x")] == [(e["name"], e["http.route"]) for e in events]


# -- routes of real frameworks ------------------------------------------------------------


def fastapi_app() -> FastAPI:
    app = FastAPI()
    api = APIRouter(prefix="/api")

    @api.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"i": item_id}

    app.include_router(api)

    @app.get("/users/{uid}")
    def user(uid: str) -> dict[str, str]:
        return {"u": uid}

    inner = FastAPI()

    @inner.get("/models/{name}")
    def model(name: str) -> dict[str, str]:
        return {"m": name}

    v2 = APIRouter(prefix="/v2")

    @v2.get("/things/{thing_id}")
    def thing(thing_id: int) -> dict[str, int]:
        return {"t": thing_id}

    inner.include_router(v2)

    app.mount("/tenants/{tenant}", inner)
    return app


async def _hello(request: Any) -> PlainTextResponse:
    return PlainTextResponse("hi")


class FilesApp:
    """A mounted ASGI app without routes (like StaticFiles)."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await PlainTextResponse("file")(scope, receive, send)


def starlette_app() -> Starlette:
    return Starlette(routes=[
        Route("/h/{n:int}", _hello),
        Route("/only-post", _hello, methods=["POST"]),
        Mount("/m/{org}", routes=[Route("/k/{z}", _hello)]),
        Mount("/static", app=FilesApp()),
        Mount("/n/{a}", routes=[Mount("/o/{b}", routes=[Route("/p/{c}", _hello)])]),
    ])


def _routes_of(app: Any, paths: list[str]) -> list[tuple[int, str, str | None]]:
    async def run() -> list[int]:
        transport = httpx.ASGITransport(app=WideEventsMiddleware(app))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return [(await client.get(p)).status_code for p in paths]

    with capture_events() as captured:
        statuses = asyncio.run(run())
    return [(s, e["name"], e.get("http.route")) for s, e in zip(statuses, captured, strict=True)]


def test_fastapi_routes_are_templates() -> None:
    """FastAPI: router prefixes and parametrised mounts give templates, 404 gives no route."""
    got = _routes_of(fastapi_app(), ["/api/items/3", "/users/ab12", "/tenants/acme/models/m1",
                                     "/tenants/acme/v2/things/5", "/nope/42"])
    assert [(200, "GET /api/items/{item_id}", "/api/items/{item_id}"),
            (200, "GET /users/{uid}", "/users/{uid}"),
            (200, "GET /tenants/{tenant}/models/{name}", "/tenants/{tenant}/models/{name}"),
            (200, "GET /tenants/{tenant}/v2/things/{thing_id}",
             "/tenants/{tenant}/v2/things/{thing_id}"),
            (404, "GET", None)] == got


def test_fastapi_add_middleware_records_exceptions() -> None:
    """Installed with app.add_middleware (inside FastAPI's error handler), options pass through."""
    app = FastAPI()

    @app.get("/fail/{n}")
    async def fail(n: int) -> None:
        raise ZeroDivisionError(f"n={n}")

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"ok": "yes"}

    app.add_middleware(WideEventsMiddleware, exclude_paths=["/health"])

    async def run() -> list[int]:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return [(await client.get(p)).status_code for p in ("/fail/3", "/health")]

    with capture_events() as captured:
        assert [500, 200] == asyncio.run(run())
    assert [("GET /fail/{n}", 500, "ZeroDivisionError", "n=3")] == [
        (e["name"], e["http.response.status_code"], e["error.type"], e["error.message"])
        for e in captured]


def test_starlette_routes_are_templates() -> None:
    """Starlette: converters kept, mounts descended, route-less mounts, 405 and 404."""
    got = _routes_of(starlette_app(), ["/h/5", "/m/acme/k/9", "/static/css/a.css", "/only-post",
                                       "/n/1/o/2/p/3", "/zz"])
    assert [(200, "GET /h/{n:int}", "/h/{n:int}"), (200, "GET /m/{org}/k/{z}", "/m/{org}/k/{z}"),
            (200, "GET /static/{path:path}", "/static/{path:path}"),
            (405, "GET /only-post", "/only-post"),
            (200, "GET /n/{a}/o/{b}/p/{c}", "/n/{a}/o/{b}/p/{c}"), (404, "GET", None)] == got


def test_route_rematched_when_the_router_records_none(events: list[dict[str, Any]]) -> None:
    """An older router that records no scope['route'] is matched again by duck typing."""
    router = Router(routes=[Route("/a/{x}", _hello), Mount("/b", routes=[Route("/c/{y}", _hello)])])

    async def old_style(scope: Any, receive: Any, send: Any) -> None:
        await router(scope, receive, send)
        scope.pop("route", None)  # what Starlette < 0.33 left behind

    app = WideEventsMiddleware(old_style)
    for path in ("/a/1", "/b/c/2", "/zzz"):
        call(app, http_scope(path))
    assert [("/a/1", "/a/{x}"), ("/b/c/2", "/b/c/{y}"), ("/zzz", None)] == [
        (e["url.path"], e.get("http.route")) for e in events]


def test_streamed_body_timing(events: list[dict[str, Any]]) -> None:
    """timing.response_ms ends at the last chunk; duration_ms includes work after it."""
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(3):
            await asyncio.sleep(0.02)
            await send({"type": "http.response.body", "body": b"x" * 10, "more_body": i < 2})
        await asyncio.sleep(0.05)  # a background task after the response

    call(WideEventsMiddleware(app), http_scope())
    [ev] = events
    assert 30 == ev["http.response.body.size"]
    assert 60 <= ev["timing.response_ms"] <= ev["duration_ms"] - 50


def test_import_pulls_in_no_web_framework() -> None:
    """Importing the middlewares and bridges loads no framework or structlog."""
    import subprocess
    import sys

    code = ("import sys, wideevents.integrations.asgi, wideevents.integrations.wsgi, "
            "wideevents.integrations.structlog, wideevents.integrations.logging; "
            "print(sorted(m for m in ('fastapi', 'starlette', 'flask', 'werkzeug', "
            "'structlog', 'uvicorn') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "[]" == out.stdout.strip()


def test_integrations_package_exports() -> None:
    """The integrations package exports exactly its six public names, lazily (the layout
    issue made libhoney's HoneycombTransmission public here)."""
    import wideevents.integrations as integrations

    assert ["AddToEvent", "HoneycombTransmission", "WideEventsHandler", "WideEventsMiddleware",
            "WideEventsWSGIMiddleware", "add_to_event"] == sorted(integrations.__all__)
    assert WideEventsMiddleware is integrations.WideEventsMiddleware
    assert re.fullmatch(r"<wideevents\.integrations\.structlog\.AddToEvent object at .*>",
                        repr(integrations.add_to_event))
