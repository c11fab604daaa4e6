"""One outgoing HTTP call, whatever library makes it: rollups, ``traceparent``, child event.

:mod:`wideevents.integrations.clients` patches the libraries; each patch calls :func:`begin`
before the request leaves and :func:`end` when it answered or failed. Both never raise:
a failure of ours is logged once and counted in
``stats()["fields"]["dropped"]["client_instrumentation"]``, and the call goes on untouched.

A call is recorded only while an event is open (the *current* event, the one
``wideevents.current_event()`` returns). For each call:

- rollups (:mod:`wideevents._core.rollup`) on the current event, and as ``rollup.*`` on its
  root: ``http.client.count``, ``.duration_ms``, ``.errors`` and the same per peer,
  ``http.client.<peer>.count`` / ``.duration_ms`` / ``.errors``. ``<peer>`` is
  ``peer_names["host:port"]``, else ``peer_names["host"]``, else the host in lower case
  with every character outside ``[a-z0-9_]`` replaced by ``_``. An event names at most
  :data:`MAX_PEERS` peers (its root too); calls to the others add to the peer ``other``;
- an error is an exception (a timeout, a refused connection: re-raised unchanged by the
  patch) or a status of 400 or more, as OpenTelemetry's HTTP client spans count them
  (semantic conventions, "HTTP spans", Status: "for HTTP status codes in the 4xx range
  span status ... SHOULD be set to Error in case of SpanKind.CLIENT");
- a W3C ``traceparent`` (``00-<trace id>-<span id>-01``) is added to the request's headers,
  unless the request already has one or its host is not in ``propagate_to``;
- with ``child_events``, an event named after the method (OpenTelemetry's ``{method}``
  span name) with ``http.request.method``, ``server.address``, ``server.port``,
  ``url.full`` (through the pipeline's ``redact_url``: userinfo and secret query values
  masked), ``http.response.status_code``, ``error``/``error.type`` (the status code as
  text, or the exception's class) and ``duration_ms``; the ``traceparent`` then names the
  child event, so the backend's events are its children.

``duration_ms`` runs from the patch's entry to its exit: for httpx, requests and aiohttp,
until the response headers arrived (the body is read later by the caller); for a bare
urllib3 call with ``preload_content=True`` (its default), until the body was read.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .._core import rollup as _rollup
from .._core import runtime
from .._core.event import Event, _current
from .._core.log import log_once
from .._core.normalize import safe_repr
from .._core.redact import redact_url
from .._errors import ConfigurationError
from . import _http

__all__ = ["MAX_PEERS", "Call", "Options", "begin", "end", "split_url"]

MAX_PEERS = 20
_PEER_CHARS = re.compile(r"[^a-z0-9_]")
_PEER_NAME = re.compile(r"[a-z0-9_]+\Z")
_HOST = re.compile(r"[A-Za-z0-9.\-_:\[\]%]+\Z")
_CACHE_MAX = 1024
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_perf_ns = time.perf_counter_ns
_peers_lock = threading.Lock()
_PEERS = "http.client.peers"


def _after_fork_in_child() -> None:
    global _peers_lock
    _peers_lock = threading.Lock()  # a parent's thread may have held it at fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class Options:
    """What :func:`wideevents.integrations.clients.instrument` was given, validated."""

    __slots__ = ("peer_names", "exact", "suffixes", "propagate_all", "child_events", "cache")

    def __init__(self, peer_names: Mapping[str, str] | None = None,
                 propagate_to: Iterable[str] | None = None, child_events: bool = False) -> None:
        if type(child_events) is not bool:
            raise ConfigurationError(
                f"child_events={child_events!r}: pass True (one event per outgoing call, "
                "with OpenTelemetry's HTTP client fields) or False (the default: rollups only)")
        names: dict[str, str] = {}
        if peer_names is not None:
            if not isinstance(peer_names, Mapping):
                raise ConfigurationError(
                    f"peer_names={peer_names!r}: use a dict of host (or host:port) -> peer "
                    "name, e.g. {'search-vector.internal': 'vector'}")
            for host, name in peer_names.items():
                if not isinstance(host, str) or not host or not _HOST.match(host):
                    raise ConfigurationError(
                        f"peer_names key {host!r}: use a host name or host:port, e.g. "
                        "'search-vector.internal' or '127.0.0.1:8081'")
                if not isinstance(name, str) or not _PEER_NAME.match(name):
                    raise ConfigurationError(
                        f"peer_names[{host!r}]={name!r}: a peer name becomes part of field "
                        "names (http.client.<peer>.count): use lower-case letters, digits "
                        "and '_', e.g. 'vector'")
                names[host.lower()] = name
        self.peer_names = names
        self.propagate_all = propagate_to is None
        exact: set[str] = set()
        suffixes: list[str] = []
        if propagate_to is not None:
            if isinstance(propagate_to, str):
                raise ConfigurationError(
                    f"propagate_to={propagate_to!r}: use a list of hosts, e.g. "
                    "['search-vector.internal', '*.svc.cluster.local'] (None: every host)")
            for entry in propagate_to:
                if not isinstance(entry, str) or not entry.strip("*."):
                    raise ConfigurationError(
                        f"propagate_to entry {entry!r}: use a host name, or '*.' and a domain "
                        "for every host under it, e.g. '*.svc.cluster.local'")
                entry = entry.lower()
                if entry.startswith("*."):
                    suffixes.append(entry[1:])  # ".svc.cluster.local"
                else:
                    exact.add(entry)
        self.exact = frozenset(exact)
        self.suffixes = tuple(suffixes)
        self.child_events = child_events
        self.cache: dict[tuple[str, int], str] = {}

    def propagates(self, host: str) -> bool:
        return self.propagate_all or host in self.exact or host.endswith(self.suffixes)

    def peer(self, host: str, port: int) -> str:
        key = (host, port)
        name = self.cache.get(key)
        if name is None:
            names = self.peer_names
            name = (names.get(f"{host}:{port}") or names.get(host)
                    or _PEER_CHARS.sub("_", host) or "unknown")
            cache = self.cache
            if len(cache) >= _CACHE_MAX:  # bounded: hosts are not always few
                cache.clear()
            cache[key] = name
        return name


options = Options()


class Call:
    """What :func:`begin` noted about a call in flight, for :func:`end`."""

    __slots__ = ("event", "host", "port", "t0", "child")

    def __init__(self, event: Event, host: str, port: int, child: Event | None) -> None:
        self.event = event
        self.host = host
        self.port = port
        self.child = child
        self.t0 = _perf_ns()


_split_cache: dict[str, tuple[str, str, int]] = {}


def split_url(url: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of an absolute URL (host in lower case, port defaulted);
    remembered per ``scheme://authority`` (bounded), since a service calls few of them."""
    head = url.split("/", 3)  # ["http:", "", "authority", "path..."]
    if len(head) < 3 or head[1] or "?" in head[2] or "#" in head[2] or "@" in head[2]:
        return _split_url(url)  # userinfo is not kept, even in memory
    origin = head[0] + head[2]
    found = _split_cache.get(origin)
    if found is None:
        found = _split_url(url)
        if len(_split_cache) >= _CACHE_MAX:
            _split_cache.clear()
        _split_cache[origin] = found
    return found


def _split_url(url: str) -> tuple[str, str, int]:
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "", "", 0
    scheme = scheme.lower()
    end = len(rest)
    for stop in "/?#":
        i = rest.find(stop)
        if 0 <= i < end:
            end = i
    authority = rest[:end].rpartition("@")[2]
    if authority.startswith("["):  # [IPv6]:port
        host, _, tail = authority[1:].partition("]")
        port_text = tail[1:] if tail.startswith(":") else ""
    else:
        host, _, port_text = authority.partition(":")
    port = int(port_text) if port_text.isdigit() else _DEFAULT_PORTS.get(scheme, 0)
    return scheme, host.lower(), port


def _contain(what: str, exc: BaseException) -> None:
    try:
        pipeline = runtime.current()
        if pipeline is not None:
            pipeline.note_dropped_field("client_instrumentation")
        log_once(f"clients:{what}", "wideevents: recording an outgoing HTTP call (%s) failed, "
                 "the call itself went on (counted in "
                 "stats()['fields']['dropped']['client_instrumentation']): %s",
                 what, safe_repr(exc, 200))
    except Exception:  # noqa: BLE001 - containment of the containment: never raise
        pass


def begin(method: str, scheme: str, host: str, port: int, url: Callable[[], str],
          inject: Callable[[str], None]) -> Call | None:
    """Note a call about to leave; None when no event is open. ``inject(traceparent)`` adds
    the header; ``url()`` gives the full URL (only asked for a child event). Never raises."""
    ev = _current.get()
    if ev is None or not ev.recording:
        return None
    try:
        opts = options
        child = None
        if opts.child_events:
            name, fields = _http.method_fields(method if type(method) is str else str(method))
            fields["server.address"] = host
            fields["server.port"] = port
            pipeline = runtime.current()
            full = url()
            fields["url.full"] = (pipeline.redactor.redact_url(full) if pipeline is not None
                                  else redact_url(full))
            child = Event(name, fields)
        if opts.propagates(host):
            span = ev.span_id if child is None else child.span_id
            inject(f"00-{ev.trace_id}-{span}-01")
        return Call(ev, host, port, child)
    except Exception as exc:  # noqa: BLE001 - never break the caller's request
        _contain("begin", exc)
        return None


def _peer_slot(ev: Event, peer: str) -> str:
    """``peer``, or ``other`` once the event (or its root) already names MAX_PEERS peers."""
    root = ev if ev._root is None else ev._root
    # Fast path, no lock: a peer already named by both stays named (the sets only grow).
    mine = ev._attached.get(_PEERS) if ev._attached is not None else None
    if mine is not None and peer in mine:
        if root is ev:
            return peer
        theirs = root._attached.get(_PEERS) if root._attached is not None else None
        if theirs is not None and peer in theirs:
            return peer
    with _peers_lock:
        targets = (ev,) if root is ev else (ev, root)
        sets = []
        for target in targets:
            attached = target._attached
            if attached is None:
                attached = target._attached = {}
            seen = attached.get(_PEERS)
            if seen is None:
                seen = attached[_PEERS] = set()
            if peer not in seen and len(seen) >= MAX_PEERS:
                return "other"
            sets.append(seen)
        for seen in sets:
            seen.add(peer)
    return peer


_TOTALS = ("http.client.count", "http.client.duration_ms", "http.client.errors")
_keys_cache: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {}


def _keys(peer: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The six rollup fields of a call to ``peer`` and their ``rollup.`` names, made once."""
    found = _keys_cache.get(peer)
    if found is None:
        prefix = f"http.client.{peer}."
        keys = (*_TOTALS, prefix + "count", prefix + "duration_ms", prefix + "errors")
        found = (keys, _rollup.root_keys(keys))
        if len(_keys_cache) >= _CACHE_MAX:  # bounded: peers are at most the hosts seen
            _keys_cache.clear()
        _keys_cache[peer] = found
    return found


def end(call: Call, status: Any, exc: BaseException | None) -> None:
    """Record the call's outcome: ``status`` (an int) when it answered, else ``exc``."""
    try:
        ms = (_perf_ns() - call.t0) / 1e6
        code = status if type(status) is int else None
        failed = 1 if exc is not None or (code is not None and code >= 400) else 0
        ev = call.event
        peer = options.peer(call.host, call.port)
        keys, rkeys = _keys(_peer_slot(ev, peer))
        _rollup.add_numbers(ev, keys, rkeys, (1, ms, failed, 1, ms, failed))
        child = call.child
        if child is not None:
            if code is not None:
                child["http.response.status_code"] = code
                if exc is None and code >= 400:
                    child.add(_http.status_error_fields(code))
            child.finish(exc)
    except Exception as err:  # noqa: BLE001 - never break the caller's request
        _contain("end", err)
