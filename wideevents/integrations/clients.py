"""Outgoing HTTP calls in the wide event: httpx, requests, aiohttp and urllib3, in one place.

::

    from wideevents.integrations import clients

    clients.instrument(peer_names={"search-vector.internal": "vector"})

Every call made while an event is open then adds ``http.client.count``,
``http.client.duration_ms``, ``http.client.errors`` and the same per peer
(``http.client.vector.count``...) to the current event and, as ``rollup.http.client.*``,
to the request's event; carries a W3C ``traceparent`` so the backend's events join the
trace; and, with ``child_events=True``, becomes an event of its own with OpenTelemetry's
HTTP client fields. :mod:`wideevents.integrations._outgoing` says exactly what is recorded.
A failed or timed-out call is recorded and its exception re-raised unchanged; recording
never raises.

What is patched (each library only when it is installed; none is imported otherwise):

- httpx: ``HTTPTransport.handle_request`` and ``AsyncHTTPTransport.handle_async_request``,
  one call per request sent (each redirect hop too), as opentelemetry-instrumentation-httpx
  wraps them. Clients built with another transport (``MockTransport``, ``ASGITransport``)
  are not recorded;
- requests: ``HTTPAdapter.send``, once per request sent (each redirect hop too);
- urllib3: ``HTTPConnectionPool.urlopen`` (``PoolManager``, ``HTTPSConnectionPool`` and
  everything built on them, botocore included), once per call, its own retries included;
- aiohttp: a ``TraceConfig`` (aiohttp's client tracing API) added to every
  ``ClientSession`` created after ``instrument()``, once per ``session.request`` (its
  redirects included).

Each call is counted and propagated once, however the libraries are layered: a call made
inside an instrumented call (requests runs on urllib3) is left to the outer one.

``instrument()`` is idempotent and additive: a library is patched once, whatever the
number of calls; the options of the latest call apply. ``uninstrument()`` restores the
libraries' own functions (a patch another library has wrapped since is switched off
instead, and switched back on by the next ``instrument()``).
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import threading
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar
from typing import Any

from .._core.log import log_once
from .._core.normalize import safe_repr
from . import _outgoing
from ._outgoing import begin, end, split_url

__all__ = ["instrument", "instrumented", "uninstrument"]

LIBRARIES = ("httpx", "requests", "urllib3", "aiohttp")
# True while an instrumented call runs in this context: a call it makes through another
# instrumented library (requests -> urllib3) is not counted twice.
_in_call: ContextVar[bool] = ContextVar("wideevents_http_client_call", default=False)
_lock = threading.Lock()
_enabled: set[str] = set()
# library -> [(owner, attribute, original, wrapper)]
_patches: dict[str, list[tuple[Any, str, Any, Any]]] = {}


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # a parent's thread may have held it at fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def instrument(*, httpx: bool = True, requests: bool = True, aiohttp: bool = True,
               urllib3: bool = True, peer_names: Mapping[str, str] | None = None,
               propagate_to: Iterable[str] | None = None, child_events: bool = False
               ) -> list[str]:
    """Record outgoing HTTP calls of the named libraries that are installed; returns the
    libraries instrumented now (sorted). Raises ConfigurationError for a bad option.

    ``peer_names``: host (or ``host:port``) -> peer name used in field names. ``propagate_to``:
    the hosts that receive ``traceparent`` (``"api.internal"``, ``"*.svc.cluster.local"``;
    None, the default: every host). ``child_events``: one event per call.
    """
    opts = _outgoing.Options(peer_names, propagate_to, child_events)
    wanted = {"httpx": httpx, "requests": requests, "aiohttp": aiohttp, "urllib3": urllib3}
    with _lock:
        _outgoing.options = opts
        for name in LIBRARIES:
            if not wanted[name] or importlib.util.find_spec(name) is None:
                continue
            if name not in _patches:
                try:
                    _patches[name] = _PATCHERS[name](importlib.import_module(name))
                except Exception as exc:  # noqa: BLE001 - an unexpected version: say so
                    log_once(f"clients-patch:{name}", "wideevents: cannot instrument %s (%s); "
                             "its calls are not recorded", name, safe_repr(exc, 200))
                    continue
            else:
                _repatch(_patches[name])
            _enabled.add(name)
        return sorted(_enabled)


def uninstrument() -> None:
    """Undo :func:`instrument` for every library. Never raises."""
    with _lock:
        _enabled.clear()
        for name in list(_patches):
            kept = []
            for owner, attr, original, wrapper in _patches[name]:
                if owner.__dict__.get(attr) is wrapper:
                    setattr(owner, attr, original)
                else:  # wrapped again since by someone else: left in place, switched off
                    kept.append((owner, attr, original, wrapper))
            if kept:
                _patches[name] = kept
            else:
                del _patches[name]


def instrumented() -> list[str]:
    """The libraries whose calls are recorded now (sorted)."""
    return sorted(_enabled)


def _repatch(patches: list[tuple[Any, str, Any, Any]]) -> None:
    for owner, attr, _original, wrapper in patches:
        if owner.__dict__.get(attr) is not wrapper and not _wraps(owner.__dict__.get(attr),
                                                                  wrapper):
            setattr(owner, attr, wrapper)


def _wraps(fn: Any, wrapper: Any) -> bool:
    """True when ``fn`` is, or wraps (``__wrapped__`` chain), ``wrapper``."""
    for _ in range(16):
        if fn is wrapper:
            return True
        fn = getattr(fn, "__wrapped__", None)
        if fn is None:
            return False
    return False


def _patch(owner: Any, attr: str, make: Callable[[Any], Any]) -> tuple[Any, str, Any, Any]:
    original = owner.__dict__[attr]
    wrapper = make(original)
    setattr(owner, attr, wrapper)
    return owner, attr, original, wrapper


# -- httpx ----------------------------------------------------------------------------------
# httpx keeps a request's headers as a list of (raw name, lower-case name, value) byte
# triples (httpx/_models.py, Headers._list); the public ``in`` and ``[]=`` re-encode and
# lower-case every name on each call, 2 µs of the 3 that noting a call cost. When the
# installed httpx passes the check in _httpx_list_works, the list is read and appended
# directly; otherwise the public methods are used.
_httpx_fast_headers = False


def _httpx_list_works(httpx: Any) -> bool:
    """True when appending to ``Headers._list`` is seen by the public API as a header."""
    try:
        headers = httpx.Headers({"Host": "example.com"})
        entries = headers._list
        if not (type(entries) is list and entries and len(entries[0]) == 3):
            return False
        entries.append((b"traceparent", b"traceparent", b"00-x"))
        return bool(headers.get("traceparent") == "00-x"
                    and headers.raw[-1] == (b"traceparent", b"00-x")
                    and "traceparent" in headers)
    except Exception:  # noqa: BLE001 - another httpx: the public methods then
        return False


def _httpx_begin(request: Any) -> _outgoing.Call | None:
    url = request.url
    scheme = url.scheme
    port = url.port or _outgoing._DEFAULT_PORTS.get(scheme, 0)
    headers = request.headers

    def inject(value: str) -> None:
        if _httpx_fast_headers:
            entries = headers._list
            for entry in entries:
                if entry[1] == b"traceparent":
                    return
            entries.append((b"traceparent", b"traceparent", value.encode("ascii")))
        elif "traceparent" not in headers:
            headers["traceparent"] = value

    return begin(request.method, scheme, url.host.lower(), port, lambda: str(url), inject)


def _patch_httpx(httpx: Any) -> list[tuple[Any, str, Any, Any]]:
    global _httpx_fast_headers
    _httpx_fast_headers = _httpx_list_works(httpx)

    def sync(original: Any) -> Any:
        @functools.wraps(original)
        def handle_request(self: Any, request: Any) -> Any:
            if "httpx" not in _enabled or _in_call.get():
                return original(self, request)
            call = _safe(_httpx_begin, request)
            if call is None:
                return original(self, request)
            return _measured(call, "status_code", original, self, request)
        return handle_request

    def asynchronous(original: Any) -> Any:
        @functools.wraps(original)
        async def handle_async_request(self: Any, request: Any) -> Any:
            if "httpx" not in _enabled or _in_call.get():
                return await original(self, request)
            call = _safe(_httpx_begin, request)
            if call is None:
                return await original(self, request)
            token = _in_call.set(True)
            try:
                response = await original(self, request)
            except BaseException as exc:
                _reset(token)
                end(call, None, exc)
                raise
            _reset(token)
            end(call, getattr(response, "status_code", None), None)
            return response
        return handle_async_request

    return [_patch(httpx.HTTPTransport, "handle_request", sync),
            _patch(httpx.AsyncHTTPTransport, "handle_async_request", asynchronous)]


# -- requests -------------------------------------------------------------------------------
def _requests_begin(request: Any) -> _outgoing.Call | None:
    full = request.url
    scheme, host, port = split_url(full)
    headers = request.headers

    def inject(value: str) -> None:
        if "traceparent" not in headers:  # a CaseInsensitiveDict
            headers["traceparent"] = value

    return begin(request.method, scheme, host, port, lambda: full, inject)


def _patch_requests(requests: Any) -> list[tuple[Any, str, Any, Any]]:
    adapters = importlib.import_module("requests.adapters")

    def make(original: Any) -> Any:
        @functools.wraps(original)
        def send(self: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
            if "requests" not in _enabled or _in_call.get():
                return original(self, request, *args, **kwargs)
            call = _safe(_requests_begin, request)
            if call is None:
                return original(self, request, *args, **kwargs)
            return _measured(call, "status_code", original, self, request, *args, **kwargs)
        return send

    return [_patch(adapters.HTTPAdapter, "send", make)]


# -- urllib3 --------------------------------------------------------------------------------
_HEADERS_AT = 1  # urlopen(method, url, body, headers, ...): after method and url, the 2nd


def _urllib3_begin(pool: Any, method: str, url: str, args: list[Any], kwargs: dict[str, Any]
                   ) -> _outgoing.Call | None:
    if "://" in url:  # an absolute URL: a request through a proxy
        scheme, host, port = split_url(url)
        full = url
    else:
        scheme = pool.scheme
        host = str(pool.host).strip("[]").lower()
        port = pool.port or _outgoing._DEFAULT_PORTS.get(scheme, 0)
        shown_host = f"[{host}]" if ":" in host else host
        default = _outgoing._DEFAULT_PORTS.get(scheme)
        full = f"{scheme}://{shown_host}{'' if port == default else f':{port}'}{url}"

    def inject(value: str) -> None:
        positional = len(args) > _HEADERS_AT
        given = args[_HEADERS_AT] if positional else kwargs.get("headers")
        if given is None:
            given = pool.headers
        if any(str(k).lower() == "traceparent" for k in given):
            return
        headers = given.copy()  # never the caller's (or the pool's) own mapping
        headers["traceparent"] = value
        if positional:
            args[_HEADERS_AT] = headers
        else:
            kwargs["headers"] = headers

    return begin(method, scheme, host, port, lambda: full, inject)


def _patch_urllib3(urllib3: Any) -> list[tuple[Any, str, Any, Any]]:
    pools = importlib.import_module("urllib3.connectionpool")

    def make(original: Any) -> Any:
        @functools.wraps(original)
        def urlopen(self: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            if "urllib3" not in _enabled or _in_call.get():
                return original(self, method, url, *args, **kwargs)
            extra = list(args)
            call = _safe(_urllib3_begin, self, method, url, extra, kwargs)
            if call is None:
                return original(self, method, url, *args, **kwargs)
            return _measured(call, "status", original, self, method, url, *extra, **kwargs)
        return urlopen

    return [_patch(pools.HTTPConnectionPool, "urlopen", make)]


# -- aiohttp --------------------------------------------------------------------------------
def _aiohttp_begin(params: Any) -> _outgoing.Call | None:
    url = params.url
    scheme = url.scheme
    port = url.port or _outgoing._DEFAULT_PORTS.get(scheme, 0)
    headers = params.headers

    def inject(value: str) -> None:
        if "traceparent" not in headers:  # a CIMultiDict: case-insensitive
            headers["traceparent"] = value

    return begin(params.method, scheme, (url.host or "").lower(), port, lambda: str(url),
                 inject)


def _trace_config(aiohttp: Any) -> Any:
    async def on_start(session: Any, ctx: Any, params: Any) -> None:
        if "aiohttp" in _enabled:
            ctx.wideevents_call = _safe(_aiohttp_begin, params)

    async def on_end(session: Any, ctx: Any, params: Any) -> None:
        call = getattr(ctx, "wideevents_call", None)
        if call is not None:
            ctx.wideevents_call = None
            end(call, getattr(params.response, "status", None), None)

    async def on_exception(session: Any, ctx: Any, params: Any) -> None:
        call = getattr(ctx, "wideevents_call", None)
        if call is not None:
            ctx.wideevents_call = None
            end(call, None, params.exception)

    config = aiohttp.TraceConfig()
    config.on_request_start.append(on_start)
    config.on_request_end.append(on_end)
    config.on_request_exception.append(on_exception)
    config.freeze()
    return config


def _patch_aiohttp(aiohttp: Any) -> list[tuple[Any, str, Any, Any]]:
    config = _trace_config(aiohttp)

    def make(original: Any) -> Any:
        @functools.wraps(original)
        def __init__(self: Any, *args: Any, trace_configs: Any = None, **kwargs: Any) -> None:
            configs = list(trace_configs or ())
            if config not in configs:
                configs.append(config)
            original(self, *args, trace_configs=configs, **kwargs)
        return __init__

    return [_patch(aiohttp.ClientSession, "__init__", make)]


_PATCHERS: dict[str, Callable[[Any], list[tuple[Any, str, Any, Any]]]] = {
    "httpx": _patch_httpx, "requests": _patch_requests, "urllib3": _patch_urllib3,
    "aiohttp": _patch_aiohttp,
}


def _measured(call: _outgoing.Call, status_attr: str, fn: Callable[..., Any], *args: Any,
              **kwargs: Any) -> Any:
    """Run a synchronous library call with the layers below it silenced (requests over
    urllib3 is one call), then record its outcome; its exception is re-raised unchanged."""
    token = _in_call.set(True)
    try:
        response = fn(*args, **kwargs)
    except BaseException as exc:
        _in_call.reset(token)
        end(call, None, exc)
        raise
    _in_call.reset(token)
    end(call, getattr(response, status_attr, None), None)
    return response


def _safe(fn: Callable[..., _outgoing.Call | None], *args: Any) -> _outgoing.Call | None:
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 - a request object we did not expect
        _outgoing._contain("request", exc)
        return None


def _reset(token: Any) -> None:
    try:
        _in_call.reset(token)
    except ValueError:  # resumed in another context (a coroutine moved between tasks)
        _in_call.set(False)
