"""What the ASGI and WSGI middlewares share: options, header rules, trace context, routes.

Everything that can be decided once is decided in :class:`HTTPOptions` when a middleware
is built (invalid options raise :class:`~wideevents.ConfigurationError`); the per-request
helpers below are plain functions over strings and dicts.

The incoming W3C ``traceparent`` reaches the request's root event through
``wideevents._core.hooks.parent_resolvers``: the middleware sets :data:`remote_parent` only
while it constructs the event, and :func:`_resolve_remote_parent` reads it. It is appended
to the list when this module is first imported, so a resolver registered before it (for
an active OpenTelemetry span) takes precedence when it finds a parent.
"""

from __future__ import annotations

import contextvars
import http
import re
from collections.abc import Iterable, Mapping
from typing import Any

from .._core import runtime
from .._core.hooks import parent_resolvers
from .._core.redact import is_secret, redact_query
from .._errors import ConfigurationError

__all__ = [
    "HTTPOptions", "clean_request_id", "is_forbidden_header", "method_fields", "mount_template",
    "parse_traceparent", "query_field", "remote_parent",
    "safe_header_value", "status_error_fields", "walk_routes",
]

# OpenTelemetry's list of known methods; anything else is recorded as "_OTHER" so that a
# scanner sending random verbs cannot explode the cardinality of names.
KNOWN_METHODS = frozenset(
    {"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "QUERY", "TRACE"}
)
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_HEX = frozenset("0123456789abcdef")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
MAX_REQUEST_ID = 128
_MAX_ROUTE_DEPTH = 8

remote_parent: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar(
    "wideevents_remote_parent", default=None
)


def _resolve_remote_parent() -> tuple[str, str] | None:
    return remote_parent.get()


if _resolve_remote_parent not in parent_resolvers:
    parent_resolvers.append(_resolve_remote_parent)


def parse_traceparent(value: str) -> tuple[str, str] | None:
    """``(trace_id, parent_span_id)`` from a W3C ``traceparent`` value, or None if invalid.

    Strict: lowercase hex only, version ``ff`` rejected, all-zero ids rejected, version
    ``00`` exactly 55 characters; a later version may carry more fields after a ``-``.
    """
    value = value.strip(" \t")
    n = len(value)
    if n < 55 or value[2] != "-" or value[35] != "-" or value[52] != "-":
        return None
    version = value[:2]
    if version == "00":
        if n != 55:
            return None
    elif version == "ff" or (n > 55 and value[55] != "-"):
        return None
    trace_id = value[3:35]
    span_id = value[36:52]
    if not _HEX.issuperset(version + trace_id + span_id + value[53:55]):
        return None
    if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return trace_id, span_id


def method_fields(method: str) -> tuple[str, dict[str, Any]]:
    """The event-name method and the method fields, following OpenTelemetry's rules."""
    if method in KNOWN_METHODS:
        return method, {"http.request.method": method}
    upper = method.upper()
    if upper in KNOWN_METHODS:
        # Semconv: the canonical name, with the original spelling kept beside it.
        return upper, {"http.request.method": upper, "http.request.method_original": method}
    return "HTTP", {"http.request.method": "_OTHER",
                    "http.request.method_original": method[:64]}


def status_error_fields(status: int) -> dict[str, Any]:
    """``error`` fields for a 5xx answer given without an exception reaching the middleware."""
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = f"HTTP {status}"
    return {"error": True, "error.type": str(status), "error.message": phrase}


def query_field(raw: bytes | str) -> str | None:
    """``url.query``: the query as the client sent it (without ``?``, percent-escapes kept),
    the value of each secret parameter replaced by ``REDACTED`` by the one redaction rule
    (``_core.redact``: OpenTelemetry's list plus the key rule, with the names the active
    pipeline was configured to redact); None when empty.

    ``raw`` is ASGI's ``query_string`` (bytes) or WSGI's ``QUERY_STRING`` (bytes decoded as
    Latin-1, PEP 3333); bytes outside ASCII, from a client that did not percent-encode
    them, are read as UTF-8 (RFC 3987's mapping of IRIs to URIs).
    """
    if not raw:
        return None
    if type(raw) is bytes:
        text = raw.decode("latin-1") if raw.isascii() else raw.decode("utf-8", "replace")
    elif type(raw) is str:
        text = raw if raw.isascii() else _latin1_to_utf8(raw)
    else:
        return None
    pipeline = runtime.current()
    return pipeline.redactor.redact_query(text) if pipeline is not None else redact_query(text)


def _latin1_to_utf8(text: str) -> str:
    """WSGI hands bytes over decoded as Latin-1: recover the UTF-8 text they were."""
    try:
        return text.encode("latin-1").decode("utf-8", "replace")
    except UnicodeEncodeError:  # not Latin-1-decoded bytes after all: keep it as given
        return text


def clean_request_id(value: str) -> str | None:
    """An incoming request id if it is printable ASCII (bounded), else None."""
    value = value.strip()
    if value and value.isascii() and value.isprintable():
        return value[:MAX_REQUEST_ID]
    return None


def safe_header_value(value: object) -> bytes | None:
    """``value`` as a response header value, or None when it could inject or break headers."""
    if type(value) is str and 0 < len(value) <= 256 and value.isascii() and value.isprintable():
        return value.encode("ascii")
    return None


def walk_routes(routes: Iterable[Any], scope: dict[str, Any], prefix: str = "",
                depth: int = 0) -> str | None:
    """The template of the route a Starlette-style router would pick, by duck typing.

    Each route offers ``matches(scope) -> (match, child_scope)`` where ``match.name`` is
    ``"FULL"``, ``"PARTIAL"`` or ``"NONE"``. Mounts and hosts (objects with ``routes``)
    are descended into with the child scope; a mount whose app has no matching route
    gives ``"<mount path>/{path:path}"`` (Starlette's own template for a mount).
    """
    partial: tuple[Any, dict[str, Any]] | None = None
    for route in routes:
        try:
            match, child = route.matches(scope)
            kind = getattr(match, "name", None)
        except Exception:  # noqa: BLE001 - a route we do not understand is skipped
            continue
        if kind == "FULL":
            return _route_template(route, child, scope, prefix, depth)
        if kind == "PARTIAL" and partial is None:
            partial = (route, child)
    if partial is not None:
        return _route_template(partial[0], partial[1], scope, prefix, depth)
    return None


def _route_template(route: Any, child: Any, scope: dict[str, Any], prefix: str,
                    depth: int) -> str | None:
    path = getattr(route, "path", None)
    path = path if type(path) is str else ""
    inner = getattr(route, "routes", None)
    if inner is not None:
        if depth < _MAX_ROUTE_DEPTH:
            sub_scope = {**scope, **child} if isinstance(child, Mapping) else scope
            try:
                found = walk_routes(inner, sub_scope, prefix + path, depth + 1)
            except Exception:  # noqa: BLE001 - a framework's route object may raise anything
                found = None
            if found is not None:
                return found
        return prefix + path + "/{path:path}" if path else None
    if path:
        return prefix + path
    # A router-like entry (FastAPI's included router) names the route it picked.
    picked = child.get("route") if isinstance(child, Mapping) else None
    picked_path = getattr(picked, "path", None)
    return prefix + picked_path if type(picked_path) is str else None


def mount_template(routes: Iterable[Any], scope: dict[str, Any], recorded: Any,
                   final_root: str, prefix: str = "", depth: int = 0) -> str | None:
    """The template of the mounts leading to ``recorded``, the route the router picked.

    Under a mount, the router records the innermost route with a path relative to the
    mount, and the mount's own path may hold parameters (``/tenants/{tenant}``): descend
    through the mounts (routes with ``routes``) that match until the scope's
    ``root_path`` is the one the request ended with, then append the recorded route's path.
    """
    leaf = getattr(recorded, "path", None)
    if type(leaf) is not str:
        return None
    for route in routes:
        inner = getattr(route, "routes", None)
        if inner is None:
            continue
        try:
            match, child = route.matches(scope)
            if getattr(match, "name", None) != "FULL":
                continue
        except Exception:  # noqa: BLE001 - a framework's route object may raise anything
            continue
        path = getattr(route, "path", None)
        path = path if type(path) is str else ""
        if route is recorded:  # a mount of an app without routes (static files...)
            return prefix + path + "/{path:path}"
        sub_scope = {**scope, **child} if isinstance(child, Mapping) else scope
        if sub_scope.get("root_path", "") == final_root:
            return prefix + path + leaf
        if depth < _MAX_ROUTE_DEPTH:
            found = mount_template(inner, sub_scope, recorded, final_root, prefix + path,
                                   depth + 1)
            if found is not None:
                return found
    return None


def is_forbidden_header(name: str) -> bool:
    """True for a header that carries credentials: never captured, whatever the allowlist
    says. The one redaction rule decides (``wideevents._core.redact``, default names:
    Authorization, Cookie, X-Api-Key, X-Auth-Token, X-CSRF-Token, ...)."""
    return is_secret(name)


def _header_name(value: object, what: str) -> str:
    if not isinstance(value, str) or not _TOKEN.match(value):
        raise ConfigurationError(
            f"{what}={value!r}: use an HTTP header name such as 'X-Request-ID'"
        )
    return value.lower()


class HTTPOptions:
    """The middlewares' validated options (raises ConfigurationError when one is wrong)."""

    __slots__ = ("exact_paths", "path_prefixes", "capture_headers", "request_id_header",
                 "prediction_id_header", "capture_query")

    def __init__(
        self,
        *,
        exclude_paths: Iterable[str] = (),
        capture_headers: Iterable[str] = (),
        request_id_header: str | None = "X-Request-ID",
        prediction_id_header: str | None = None,
        capture_query: bool = True,
    ) -> None:
        if type(capture_query) is not bool:
            raise ConfigurationError(
                f"capture_query={capture_query!r}: pass True (record url.query, secret values "
                "redacted; the default) or capture_query=False (never record the query string)"
            )
        self.capture_query = capture_query
        if isinstance(exclude_paths, str) or isinstance(capture_headers, str):
            raise ConfigurationError(
                "exclude_paths and capture_headers take a list of strings, e.g. "
                "exclude_paths=['/health', '/static/*'], capture_headers=['Content-Type']"
            )
        exact: set[str] = set()
        prefixes: list[str] = []
        for p in exclude_paths:
            if not isinstance(p, str) or not p.startswith("/"):
                raise ConfigurationError(
                    f"exclude_paths entry {p!r}: use a path starting with '/', e.g. '/health', "
                    "or a prefix ending with '*', e.g. '/static/*'"
                )
            if p.endswith("*"):
                prefixes.append(p[:-1])
            else:
                exact.add(p)
        self.exact_paths: frozenset[str] = frozenset(exact)
        self.path_prefixes: tuple[str, ...] = tuple(prefixes)
        names: list[str] = []
        for h in capture_headers:
            name = _header_name(h, "capture_headers entry")
            if is_forbidden_header(name):
                raise ConfigurationError(
                    f"capture_headers entry {h!r}: this header carries credentials (its name "
                    "is on the redaction list: Authorization, Cookie, X-Api-Key, X-Auth-Token "
                    "and the like) and is never captured; remove it from capture_headers"
                )
            if name not in names:
                names.append(name)
        self.capture_headers: tuple[str, ...] = tuple(names)
        self.request_id_header = (None if request_id_header is None
                                  else _header_name(request_id_header, "request_id_header"))
        self.prediction_id_header = (
            None if prediction_id_header is None
            else _header_name(prediction_id_header, "prediction_id_header")
        )
