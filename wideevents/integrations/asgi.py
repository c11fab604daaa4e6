"""``WideEventsMiddleware``: one wide event per HTTP request of any ASGI 3 application.

Pure ASGI, no framework imported; FastAPI and Starlette are read by duck typing::

    app.add_middleware(WideEventsMiddleware, exclude_paths=["/health"])   # or
    app = WideEventsMiddleware(app, capture_headers=["Content-Type"])

Each ``http`` request becomes one event, current while the application runs (so
``wideevents.add`` works in endpoints, dependencies, FastAPI's thread pool and background
tasks). The event ends when the application returns: after a streamed body and after
Starlette/FastAPI background tasks. ``duration_ms`` therefore includes background tasks;
``timing.response_ms`` is the time until the last body chunk was handed to the server
(what the client waited for). Fields added after the end are dropped and counted in
``stats()["fields"]["dropped"]["late"]``.

Fields (OpenTelemetry HTTP semantic conventions): ``http.request.method``, ``http.route``,
``url.path``, ``url.query`` (when the request has one: as sent, without ``?``, the value of
each secret-looking parameter replaced by ``REDACTED`` by ``wideevents._core.redact``;
``capture_query=False`` never records it), ``url.scheme``, ``http.response.status_code``,
``client.address``,
``user_agent.original``, ``http.request.body.size`` (``Content-Length``, else the bytes the
application read), ``http.response.body.size``, ``request.id`` (the incoming
``X-Request-ID`` or a new UUIDv7), ``http.request.header.<name>`` for allowlisted headers
(repeated headers joined with ``", "``; credentials headers are refused). The event is
named ``"{method} {route}"``; without a matched route (404) it has no ``http.route`` and
is named ``"{method}"``; an unknown method is recorded as ``_OTHER`` and named ``HTTP``.

Routes: FastAPI and Starlette leave the matched route in ``scope["route"]`` (its
``path``, e.g. ``/items/{item_id}``). Under a mount that route is relative to the mount,
whose path may hold parameters: the mounts' templates are rebuilt by matching the request
against ``scope["router"].routes`` (duck typed). When no route was recorded (older
Starlette; a 404) the request is matched again from the top, descending into mounts. The
template is never the raw path with ids in it.

Errors: an exception from the application gives ``error``, ``error.type``,
``error.message`` and propagates unchanged (status 500 when no response was started, since
that is what the server answers); a 5xx answer without an exception gives ``error=True``,
``error.type`` = the status code and ``error.message`` = its reason phrase (each only
where the application has not set it already, e.g. from its own error handler).
``lifespan`` and ``websocket`` scopes and excluded paths pass through with no event; at
``lifespan.shutdown`` the pipeline is flushed (within ``SHUTDOWN_FLUSH_TIMEOUT`` seconds)
before the server is told shutdown is complete, because servers such as uvicorn end their
worker processes with a signal that skips ``atexit``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from .._core import hooks, runtime
from .._core.event import Event, activate, deactivate
from .._core.ids import uuid7
from .._core.log import log_once
from .._core.normalize import safe_repr
from . import _http

__all__ = ["WideEventsMiddleware"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_perf_ns = time.perf_counter_ns
_UA, _CONTENT_LENGTH, _TRACEPARENT, _REQUEST_ID = 0, 1, 2, 3


class WideEventsMiddleware:
    """ASGI 3 middleware emitting one wide event per HTTP request.

    Options (validated here; a wrong one raises ConfigurationError):

    - ``exclude_paths``: paths that emit nothing (``"/health"``; ``"/static/*"`` is a prefix).
    - ``capture_headers``: request headers recorded as ``http.request.header.<name>``;
      ``Authorization``, ``Proxy-Authorization``, ``Cookie``, ``Set-Cookie`` are refused.
    - ``request_id_header``: where ``request.id`` comes from (None: always generated).
    - ``prediction_id_header``: if set (e.g. ``"X-Prediction-ID"``), the event's
      ``prediction.id`` is returned in this response header, when the event has one by
      the time the response starts.
    - ``capture_query``: record ``url.query`` (default True; secret values redacted); False
      keeps the query string out of events altogether (privacy).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        exclude_paths: Iterable[str] = (),
        capture_headers: Iterable[str] = (),
        request_id_header: str | None = "X-Request-ID",
        prediction_id_header: str | None = None,
        capture_query: bool = True,
    ) -> None:
        opts = _http.HTTPOptions(exclude_paths=exclude_paths, capture_headers=capture_headers,
                                 request_id_header=request_id_header,
                                 prediction_id_header=prediction_id_header,
                                 capture_query=capture_query)
        self.app = app
        self._capture_query = opts.capture_query
        self._exact = opts.exact_paths
        self._prefixes = opts.path_prefixes
        wanted: dict[bytes, tuple[int | str, ...]] = {
            b"user-agent": (_UA,), b"content-length": (_CONTENT_LENGTH,),
            b"traceparent": (_TRACEPARENT,),
        }
        if opts.request_id_header is not None:
            key = opts.request_id_header.encode("latin-1")
            wanted[key] = (*wanted.get(key, ()), _REQUEST_ID)
        for name in opts.capture_headers:
            key = name.encode("latin-1")
            wanted[key] = (*wanted.get(key, ()), f"http.request.header.{name}")
        self._wanted = wanted
        self._pid_header = (None if opts.prediction_id_header is None
                            else opts.prediction_id_header.encode("latin-1"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await self.app(scope, receive, _flush_before_shutdown_complete(send))
                return
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if path in self._exact or (self._prefixes and path.startswith(self._prefixes)):
            await self.app(scope, receive, send)
            return
        try:
            ev, method_name, body_size = self._start(scope, path)
        except Exception as exc:  # noqa: BLE001 - never break the application
            log_once("asgi-start", "wideevents: the ASGI middleware could not start an event; "
                     "the request runs without one: %s", safe_repr(exc, 200))
            await self.app(scope, receive, send)
            return
        t0 = _perf_ns()
        status = 0
        sent = 0
        done_ns = 0
        received = 0
        pid_header = self._pid_header

        async def send_wrapper(message: Message) -> None:
            nonlocal status, sent, done_ns
            try:
                kind = message.get("type")
                if kind == "http.response.body":
                    sent += len(message.get("body") or b"")
                    if not message.get("more_body", False):
                        done_ns = _perf_ns()
                elif kind == "http.response.start":
                    status = message.get("status", 0)
                    if pid_header is not None:
                        value = _http.safe_header_value(ev.get("prediction.id"))
                        if value is not None:
                            message = {**message, "headers": [*message.get("headers", ()),
                                                              (pid_header, value)]}
            except Exception as err:  # noqa: BLE001 - an odd message is the server's business
                log_once("asgi-send", "wideevents: could not read an ASGI message: %s",
                         safe_repr(err, 200))
            await send(message)

        app_receive = receive
        if body_size is None:
            # No Content-Length (chunked or HTTP/2): count what the application reads.
            async def receive_wrapper() -> Message:
                nonlocal received
                message = await receive()
                if message.get("type") == "http.request":
                    received += len(message.get("body") or b"")
                return message

            app_receive = receive_wrapper

        root_path = scope.get("root_path", "")
        token = activate(ev)
        try:
            await self.app(scope, app_receive, send_wrapper)
        except BaseException as exc:
            self._finish(ev, scope, root_path, method_name, status, sent, received,
                         done_ns - t0 if done_ns else -1, exc)
            raise
        else:
            self._finish(ev, scope, root_path, method_name, status, sent, received,
                         done_ns - t0 if done_ns else -1, None)
        finally:
            deactivate(token)

    def _start(self, scope: Scope, path: str) -> tuple[Event, str, int | None]:
        method_name, f = _http.method_fields(scope.get("method", "GET"))
        f["url.path"] = path
        if self._capture_query:
            query = _http.query_field(scope.get("query_string", b""))
            if query is not None:
                f["url.query"] = query
        f["url.scheme"] = scope.get("scheme", "http")
        client = scope.get("client")
        if client:
            f["client.address"] = client[0]
        request_id: str | None = None
        parent: tuple[str, str] | None = None
        body_size: int | None = None
        wanted = self._wanted
        for name, value in scope.get("headers") or ():
            roles = wanted.get(name)
            if roles is None:
                continue
            text = value.decode("latin-1")
            for role in roles:
                if isinstance(role, str):
                    prior = f.get(role)
                    f[role] = text if prior is None else f"{prior}, {text}"
                elif role == _UA:
                    f["user_agent.original"] = text
                elif role == _CONTENT_LENGTH:
                    if text.isascii() and text.isdigit():
                        body_size = int(text)
                elif role == _TRACEPARENT:
                    parent = _http.parse_traceparent(text)
                elif request_id is None:
                    request_id = _http.clean_request_id(text)
        f["request.id"] = request_id or uuid7()
        if body_size is not None:
            f["http.request.body.size"] = body_size
        if parent is None:
            ev = Event(method_name, f)
        else:
            ptoken = _http.remote_parent.set(parent)
            try:
                ev = Event(method_name, f)
            finally:
                _http.remote_parent.reset(ptoken)
        return ev, method_name, body_size

    def _finish(self, ev: Event, scope: Scope, root_path: str, method_name: str, status: int,
                sent: int, received: int, response_ns: int, exc: BaseException | None) -> None:
        try:
            f: dict[str, Any] = {"http.response.body.size": sent}
            if not status and isinstance(exc, Exception):
                status = 500
            if status:
                f["http.response.status_code"] = status
                if status >= 500 and exc is None:
                    for key, value in _http.status_error_fields(status).items():
                        if ev.get(key) is None:
                            f[key] = value
            if received:
                f["http.request.body.size"] = received
            if response_ns >= 0:
                f["timing.response_ms"] = response_ns / 1e6
            route = _route(scope, root_path)
            if route is not None:
                route = root_path + route
                f["http.route"] = route
                if ev.get("name") == method_name:
                    f["name"] = f"{method_name} {route}"
            ev.add(f)
            if hooks.request_finish_hooks:
                hooks.run_request_finish_hooks(ev)
        except Exception as err:  # noqa: BLE001 - never break the host's response
            log_once("asgi-finish", "wideevents: the ASGI middleware could not complete an "
                     "event: %s", safe_repr(err, 200))
        finally:
            ev.finish(exc)


def _route(scope: Scope, root_path: str) -> str | None:
    """The matched route's template, read from what the router left in ``scope``."""
    recorded = scope.get("route")
    path = getattr(recorded, "path", None)
    final_root = scope.get("root_path", "")
    if type(path) is str and final_root == root_path:
        return path
    router = scope.get("router") or scope.get("app")
    routes = getattr(router, "routes", None)
    if routes is None:
        return None
    probe = dict(scope)
    probe["root_path"] = root_path
    probe.pop("app_root_path", None)
    if type(path) is str:
        # Under a mount the recorded route is relative to it, and the mount's own path
        # may hold parameters: rebuild the mounts' templates in front of it.
        found = _http.mount_template(routes, probe, recorded, final_root)
        if found is not None:
            return found
    # No route recorded (older Starlette, a 404): match the request again from the top.
    return _http.walk_routes(routes, probe)


SHUTDOWN_FLUSH_TIMEOUT = 5.0


def _flush_before_shutdown_complete(send: Send) -> Send:
    """Wrap a lifespan ``send``: deliver buffered events before shutdown completes."""

    async def send_wrapper(message: Message) -> None:
        if message.get("type") in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
            try:
                import asyncio

                await asyncio.get_running_loop().run_in_executor(
                    None, runtime.flush, SHUTDOWN_FLUSH_TIMEOUT)
            except Exception as exc:  # noqa: BLE001 - never break the server's shutdown
                log_once("asgi-lifespan-flush", "wideevents: flushing at lifespan shutdown "
                         "failed: %s", safe_repr(exc, 200))
        await send(message)

    return send_wrapper
