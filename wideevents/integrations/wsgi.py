"""``WideEventsWSGIMiddleware``: one wide event per request of any WSGI application.

No framework imported; Flask (werkzeug) is read by duck typing::

    app.wsgi_app = WideEventsWSGIMiddleware(app.wsgi_app, exclude_paths=["/health"])

The event is current while the application runs and while the server iterates the
response body (each chunk is produced inside it), and ends when the server closes the
response (PEP 3333 ``close()``), so a streamed body and the framework's teardown callbacks
are covered. Fields added later are dropped and counted in
``stats()["fields"]["dropped"]["late"]``.

Fields and options are those of :mod:`wideevents.integrations.asgi`. ``http.route`` is
the url rule of the request object the framework leaves in
``environ["werkzeug.request"]`` (``url_rule.rule``, e.g. ``/items/<int:item_id>``), read
when the response starts or Flask signals an exception (Flask clears it before
returning), prefixed with
``SCRIPT_NAME``. ``http.request.body.size`` is ``CONTENT_LENGTH`` when given;
``http.response.body.size`` counts the bytes the server took from the iterable (data
written through the legacy ``write()`` callable is not counted). The response iterable is
wrapped, so a server's ``wsgi.file_wrapper`` shortcut is not used.

Errors, as on the ASGI side and as OpenTelemetry's Flask instrumentation records them
(``_teardown_request(exc)``): an exception the application raises is recorded
(``error``, ``error.type`` = its class, ``error.message``) and re-raised unchanged, with
``http.response.status_code`` 500 when no response was started. An exception the framework
turns into an error answer itself is recorded the same way, the status code staying in
``http.response.status_code``:

- Flask: through its ``got_request_exception`` signal (sent by ``Flask.handle_exception``
  for exactly the exceptions no error handler of the application took, the ones answered
  500). The signal is connected once, when a middleware is built or called in a process
  where Flask is loaded (Flask is never imported here): a request during which Flask is
  first imported falls back to the status code below. An exception that an application's
  error handler turned into its own answer (a 404, say) is not an error.
- Any WSGI framework: an ``exc_info`` passed to ``start_response`` with a 5xx status
  (PEP 3333, "Error Handling").

Where the application set ``error.type`` itself (in its 500 handler, say), its error
fields are kept. A 5xx answer with no exception known gets ``error=True``, ``error.type``
= the status code, ``error.message`` = its reason phrase (each only where not set).

``url.query`` is ``QUERY_STRING`` when non-empty, secret values redacted (see
:mod:`wideevents.integrations.asgi`; ``capture_query=False`` never records it).
"""

from __future__ import annotations

import contextvars
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any

from .._core import hooks
from .._core.event import Event, activate, deactivate
from .._core.ids import uuid7
from .._core.log import log_once
from .._core.normalize import safe_repr
from . import _http

__all__ = ["WideEventsWSGIMiddleware"]

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

_perf_ns = time.perf_counter_ns


def _environ_key(header: str) -> str:
    name = header.upper().replace("-", "_")
    return name if name in ("CONTENT_TYPE", "CONTENT_LENGTH") else f"HTTP_{name}"


class _Request:
    """One request's state, shared by ``start_response`` and the body iterable."""

    __slots__ = ("ev", "environ", "method_name", "status", "sent", "route", "t0", "done_ns",
                 "exc", "handled", "finished")

    def __init__(self, ev: Event, environ: dict[str, Any], method_name: str) -> None:
        self.ev = ev
        self.environ = environ
        self.method_name = method_name
        self.status = 0
        self.sent = 0
        self.route: str | None = None
        self.t0 = _perf_ns()
        self.done_ns = 0
        self.exc: BaseException | None = None  # raised through the middleware
        self.handled: BaseException | None = None  # answered by the framework (a 500)
        self.finished = False

    def read_route(self) -> None:
        """The url rule of the framework's request object (werkzeug), while it is there."""
        environ = self.environ
        rule = getattr(getattr(environ.get("werkzeug.request"), "url_rule", None), "rule", None)
        if type(rule) is str:
            self.route = environ.get("SCRIPT_NAME", "") + rule

    def finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        ev, exc = self.ev, self.exc
        try:
            f: dict[str, Any] = {"http.response.body.size": self.sent}
            status = self.status
            if not status and isinstance(exc, Exception):
                status = 500
            if exc is None and self.handled is not None and ev.get("error.type") is None:
                exc = self.handled  # recorded by ev.finish() below, as a raised one is
            if status:
                f["http.response.status_code"] = status
                if status >= 500 and exc is None:
                    for key, value in _http.status_error_fields(status).items():
                        if ev.get(key) is None:
                            f[key] = value
            if self.done_ns:
                f["timing.response_ms"] = (self.done_ns - self.t0) / 1e6
            route = self.route
            if route is not None:
                f["http.route"] = route
                if ev.get("name") == self.method_name:
                    f["name"] = f"{self.method_name} {route}"
            ev.add(f)
            if hooks.request_finish_hooks:
                hooks.run_request_finish_hooks(ev)
        except Exception as err:  # noqa: BLE001 - never break the host's response
            log_once("wsgi-finish", "wideevents: the WSGI middleware could not complete an "
                     "event: %s", safe_repr(err, 200))
        finally:
            ev.finish(exc)


class _Body:
    """The application's response iterable, produced inside the event and closing it."""

    __slots__ = ("_inner", "_it", "_req")

    def __init__(self, inner: Iterable[bytes], req: _Request) -> None:
        self._inner = inner
        self._it: Iterator[bytes] | None = None
        self._req = req

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        req = self._req
        token = activate(req.ev)
        try:
            it = self._it
            if it is None:
                it = self._it = iter(self._inner)
            chunk = next(it)
        except StopIteration:
            req.done_ns = _perf_ns()
            raise
        except BaseException as exc:
            req.exc = exc
            raise
        finally:
            _reset(token)
        try:
            req.sent += len(chunk)
        except TypeError:
            pass
        return chunk

    def close(self) -> None:
        req = self._req
        close = getattr(self._inner, "close", None)
        token = activate(req.ev)
        try:
            if close is not None:
                close()
        except BaseException as exc:
            if req.exc is None:
                req.exc = exc
            raise
        finally:
            _reset(token)
            req.finish()


def _reset(token: Any) -> None:
    deactivate(token)  # tolerates a server that switched contexts between calls


def _reset_running(token: contextvars.Token[_Request | None]) -> None:
    try:
        _running.reset(token)
    except ValueError:  # a server that switched contexts between calls
        _running.set(None)


# The request whose application is running on this thread (or task): where a framework's
# error signal, which does not carry the WSGI environ, records its exception.
_running: contextvars.ContextVar[_Request | None] = contextvars.ContextVar(
    "wideevents_wsgi_request", default=None)
_flask_connected = False


def _connect_flask() -> None:
    """Connect :func:`_on_flask_exception` to Flask's ``got_request_exception``, once, if
    Flask is loaded (it is never imported here)."""
    global _flask_connected
    flask = sys.modules.get("flask")
    if flask is None or _flask_connected:
        return
    _flask_connected = True
    try:
        # blinker: connecting the same receiver twice (two threads racing here) is one
        # connection; weak=False because the receiver is a module function anyway.
        flask.got_request_exception.connect(_on_flask_exception, weak=False)
    except Exception as err:  # noqa: BLE001 - an old Flask without blinker: 500s keep the code
        log_once("wsgi-flask-signal", "wideevents: could not connect to Flask's "
                 "got_request_exception signal; a Flask 500 is recorded with error.type = "
                 "the status code: %s", safe_repr(err, 200))


def _on_flask_exception(sender: object, exception: object = None, **extra: object) -> None:
    """Flask's ``got_request_exception`` receiver: remember the exception it answered 500."""
    try:
        req = _running.get()
        if req is None or req.finished or not isinstance(exception, BaseException):
            return
        if req.handled is None:
            req.handled = exception
        # With PROPAGATE_EXCEPTIONS Flask re-raises and clears its request before the
        # response starts: the route is read here, while the request is still there.
        req.read_route()
    except Exception as err:  # noqa: BLE001 - a receiver's exception would reach Flask
        log_once("wsgi-flask-exception", "wideevents: could not record a Flask exception: %s",
                 safe_repr(err, 200))


class WideEventsWSGIMiddleware:
    """WSGI middleware emitting one wide event per request.

    Options as :class:`wideevents.integrations.asgi.WideEventsMiddleware`:
    ``exclude_paths``, ``capture_headers``, ``request_id_header``, ``prediction_id_header``,
    ``capture_query``.
    """

    def __init__(
        self,
        app: WSGIApp,
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
        _connect_flask()
        self.app = app
        self._capture_query = opts.capture_query
        self._exact = opts.exact_paths
        self._prefixes = opts.path_prefixes
        self._rid_key = (None if opts.request_id_header is None
                         else _environ_key(opts.request_id_header))
        self._captured = tuple((_environ_key(h), f"http.request.header.{h}")
                               for h in opts.capture_headers)
        self._pid_header = opts.prediction_id_header

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        if not path.isascii():
            # WSGI hands the path over as latin-1-decoded bytes; recover the UTF-8 text.
            try:
                path = path.encode("latin-1").decode("utf-8", "replace")
            except UnicodeEncodeError:
                pass
        if path in self._exact or (self._prefixes and path.startswith(self._prefixes)):
            return self.app(environ, start_response)
        if not _flask_connected:
            _connect_flask()  # Flask may have been loaded after the middleware was built
        try:
            req = self._start(environ, path)
        except Exception as exc:  # noqa: BLE001 - never break the application
            log_once("wsgi-start", "wideevents: the WSGI middleware could not start an event; "
                     "the request runs without one: %s", safe_repr(exc, 200))
            return self.app(environ, start_response)
        pid_header = self._pid_header

        def start_response_wrapper(status: str, headers: list[tuple[str, str]],
                                   exc_info: ExcInfo | None = None) -> Callable[[bytes], object]:
            try:
                req.status = int(status[:3])
                req.read_route()
                if (exc_info is not None and req.status >= 500 and req.handled is None
                        and isinstance(exc_info[1], BaseException)):
                    req.handled = exc_info[1]  # PEP 3333: an error handler's answer
                if pid_header is not None:
                    value = _http.safe_header_value(req.ev.get("prediction.id"))
                    if value is not None:
                        headers = [*headers, (pid_header, value.decode("ascii"))]
            except Exception as err:  # noqa: BLE001 - never break the host's response
                log_once("wsgi-start-response", "wideevents: could not read the WSGI response "
                         "start: %s", safe_repr(err, 200))
            if exc_info is None:
                return start_response(status, headers)
            return start_response(status, headers, exc_info)

        token = activate(req.ev)
        running = _running.set(req)
        try:
            result = self.app(environ, start_response_wrapper)
        except BaseException as exc:
            req.exc = exc
            req.finish()
            raise
        finally:
            _reset_running(running)
            _reset(token)
        return _Body(result, req)

    def _start(self, environ: dict[str, Any], path: str) -> _Request:
        method_name, f = _http.method_fields(environ.get("REQUEST_METHOD", "GET"))
        f["url.path"] = path
        if self._capture_query:
            query = _http.query_field(environ.get("QUERY_STRING", ""))
            if query is not None:
                f["url.query"] = query
        f["url.scheme"] = environ.get("wsgi.url_scheme", "http")
        get = environ.get
        client = get("REMOTE_ADDR")
        if client:
            f["client.address"] = client
        ua = get("HTTP_USER_AGENT")
        if ua is not None:
            f["user_agent.original"] = ua
        length = get("CONTENT_LENGTH")
        if length and length.isascii() and length.isdigit():
            f["http.request.body.size"] = int(length)
        for key, field in self._captured:
            value = get(key)
            if value is not None:
                f[field] = value
        request_id = None
        if self._rid_key is not None:
            given = get(self._rid_key)
            if given:
                request_id = _http.clean_request_id(given)
        f["request.id"] = request_id or uuid7()
        traceparent = get("HTTP_TRACEPARENT")
        parent = None if traceparent is None else _http.parse_traceparent(traceparent)
        if parent is None:
            ev = Event(method_name, f)
        else:
            ptoken = _http.remote_parent.set(parent)
            try:
                ev = Event(method_name, f)
            finally:
                _http.remote_parent.reset(ptoken)
        return _Request(ev, environ, method_name)
