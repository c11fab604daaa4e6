"""The same :class:`Query` in Honeycomb: the Query Data API, and query template links.

The Query Data API needs Honeycomb's **Enterprise plan** and an API key with the "Run
queries" permission; it covers only the last 7 days and allows about 10 result requests
per minute (a 429 reply carries no ``Retry-After``, so the client backs off on its
own). :func:`query_url` needs no API at all and works on every plan: it builds the link
that opens the query in Honeycomb's UI.

The key goes only to the configured host: a redirect is never followed (urllib would
resend every header, the key included, to wherever the reply points, https to http
included); it is a :class:`QueryError` naming the location with its secret-looking parts
masked (the key itself, then :func:`wideevents._core.secrets.mask`: userinfo, query
values, fragment, key-shaped tokens); error bodies quoted in messages are masked alike.
Reply bodies are read in bounded memory: at most :data:`MAX_RESULT_BYTES` for a query
result (``GET /1/query_results/...``), :data:`MAX_REPLY_BYTES` for the other replies; a
longer body is a QueryError, and the overall deadline applies while a body trickles in.
"""

from __future__ import annotations

import functools
import json
import random
import time
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any, Final

from wideevents._core.env import env
from wideevents._core.secrets import mask
from wideevents._errors import ConfigurationError
from wideevents._transport import USER_AGENT
from wideevents.query._model import (
    DEFAULT_LIMIT,
    Query,
    QueryError,
    QueryResult,
    QueryTimeout,
    check_granularity,
)

__all__ = [
    "DEFAULT_API_HOST",
    "MAX_REPLY_BYTES",
    "MAX_RESULT_BYTES",
    "HoneycombQueryClient",
    "query_url",
]

DEFAULT_API_HOST: Final = "https://api.honeycomb.io"
MAX_RESULT_BYTES: Final = 50 * 1024 * 1024  # query results: up to 10,000 rows, and series
MAX_REPLY_BYTES: Final = 256 * 1024  # created queries (the spec echoed back), result ids
_READ_CHUNK: Final = 64 * 1024
_HONEYCOMB_DEFAULT_RANGE: Final = 7200
_USER_AGENT: Final = USER_AGENT  # the library's own, as every request it makes


def _host(api_host: str | None) -> str:
    host = api_host or env("HONEYCOMB_API_HOST") or DEFAULT_API_HOST
    parsed = urllib.parse.urlsplit(host)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ConfigurationError(
            f"Honeycomb API host {host!r} is not an http(s) URL; e.g. {DEFAULT_API_HOST} "
            "or https://api.eu1.honeycomb.io"
        )
    return host.rstrip("/")


def _segment(name: str, value: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigurationError(f"{name} must be a non-empty string, got {value!r}")
    return urllib.parse.quote(value, safe="")


def query_url(
    query: Query | Mapping[str, Any],
    *,
    team: str,
    environment: str | None = None,
    dataset: str,
    api_host: str | None = None,
) -> str:
    """The Honeycomb UI link that opens ``query`` (a query template link; every plan).

    ``environment`` None builds a Honeycomb Classic link (no ``/environments/...``). The
    UI host follows the API host: EU (``api.eu1``) links go to ``ui.eu1.honeycomb.io``.
    """
    if not isinstance(query, Query):
        query = Query.from_json(query)
    host = urllib.parse.urlsplit(_host(api_host)).netloc
    ui = "https://ui.eu1.honeycomb.io" if "eu1" in host else "https://ui.honeycomb.io"
    path = f"/{_segment('team', team)}"
    if environment is not None:
        path += f"/environments/{_segment('environment', environment)}"
    path += f"/datasets/{_segment('dataset', dataset)}"
    spec = json.dumps(query.to_json(), separators=(",", ":"))
    return f"{ui}{path}?query={urllib.parse.quote(spec, safe='')}"


class HoneycombQueryClient:
    """Runs a :class:`Query` through Honeycomb's Query Data API (Enterprise plan).

    ``api_key`` defaults to ``HONEYCOMB_API_KEY``, ``api_host`` to ``HONEYCOMB_API_HOST``
    or ``https://api.honeycomb.io``. :meth:`run` creates the query, creates a query
    result, and polls it with exponential backoff (starting at ``poll_interval``,
    capped at ``max_backoff``) until complete; 429 and 5xx replies are retried with
    backoff too. Past ``timeout`` seconds it raises :class:`QueryTimeout`; other
    failures raise :class:`QueryError` (with ``status``). The key never appears in
    ``repr`` or in any message.
    """

    def __init__(
        self,
        api_key: str | None = None,
        api_host: str | None = None,
        *,
        timeout: float = 60.0,
        poll_interval: float = 0.5,
        max_backoff: float = 10.0,
        request_timeout: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        key = api_key if api_key is not None else env("HONEYCOMB_API_KEY")
        if not isinstance(key, str) or not key.strip():
            raise ConfigurationError(
                "no Honeycomb API key: set HONEYCOMB_API_KEY or pass api_key= (a key with "
                "the 'Run queries' permission; the Query Data API needs the Enterprise plan)"
            )
        for name, value in (("timeout", timeout), ("poll_interval", poll_interval),
                            ("max_backoff", max_backoff), ("request_timeout", request_timeout)):  # fmt: skip
            if not value > 0:
                raise ConfigurationError(f"{name} must be > 0 seconds, got {value!r}")
        self.__key = key.strip()
        self.api_host = _host(api_host)
        self.timeout = timeout
        self.poll_interval = poll_interval
        self.max_backoff = max_backoff
        self.request_timeout = request_timeout
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"HoneycombQueryClient(api_host={self.api_host!r}, api_key='***')"

    def run(
        self,
        query: Query | Mapping[str, Any],
        dataset: str,
        *,
        timeout: float | None = None,
        limit: int | None = None,
    ) -> QueryResult:
        """Run ``query`` on ``dataset`` (``__all__`` for every dataset of an environment)
        and return Honeycomb's rows and series (``series`` None without granularity).
        The query's ``limit`` (default 1,000, as locally) is sent explicitly; ``limit``
        here overrides it for the result (Honeycomb allows up to 10,000 without series)."""
        if not isinstance(query, Query):
            query = Query.from_json(query)
        if query.granularity is not None and query.span() is None and not query.has_time:
            check_granularity(query.granularity, _HONEYCOMB_DEFAULT_RANGE)
        name = _segment("dataset", dataset)
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        # The limit goes explicitly, in the query and in the result request: Honeycomb
        # documents a default of 100 for a created query ("Create a Query") and of 1,000
        # results ("Create a Query Result"); sent, it is the local engine's limit whatever
        # default applies, so both engines return the same rows.
        spec = query.to_json() | {"limit": query.limit or DEFAULT_LIMIT}
        created = self._request("POST", f"/1/queries/{name}", spec, deadline)
        body: dict[str, Any] = {
            "query_id": _id(created),
            "disable_series": query.granularity is None,
            "limit": limit if limit is not None else query.limit or DEFAULT_LIMIT,
        }
        started = self._request("POST", f"/1/query_results/{name}", body, deadline)
        result_id = urllib.parse.quote(_id(started), safe="")
        reply = started
        delay = self.poll_interval
        while not reply.get("complete"):
            self._wait(delay, deadline, "the query result to complete")
            delay = min(delay * 2, self.max_backoff)
            reply = self._request("GET", f"/1/query_results/{name}/{result_id}", None, deadline)
        return _result(reply, series=query.granularity is not None)

    def _wait(self, delay: float, deadline: float, what: str) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise QueryTimeout(f"gave up waiting for {what}: Honeycomb took too long")
        self._sleep(min(delay, left))

    def _request(
        self, method: str, path: str, body: Mapping[str, Any] | None, deadline: float
    ) -> dict[str, Any]:
        import urllib.error  # urllib.request pulls in http.client, email, ssl: only when used
        import urllib.request

        data = None if body is None else json.dumps(body).encode()
        headers = {"X-Honeycomb-Team": self.__key, "User-Agent": _USER_AGENT,
                   "Accept": "application/json"}  # fmt: skip
        if data is not None:
            headers["Content-Type"] = "application/json"
        cap = MAX_RESULT_BYTES if path.startswith("/1/query_results/") and method == "GET" \
            else MAX_REPLY_BYTES  # fmt: skip
        opener = urllib.request.build_opener(_no_redirect_handler())
        delay = self.poll_interval
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise QueryTimeout(f"{method} {path}: no answer from Honeycomb before the deadline")
            request = urllib.request.Request(
                self.api_host + path, data=data, headers=headers, method=method
            )
            try:
                with opener.open(request, timeout=min(self.request_timeout, left)) as response:
                    raw = _read_capped(response, cap, deadline, method, path)
                    return _json_object(raw, method, path)
            except urllib.error.HTTPError as exc:
                status, text = exc.code, _error_text(exc)
                location = exc.headers.get("Location") if exc.headers is not None else None
                exc.close()
                if 300 <= status < 400:
                    raise QueryError(
                        f"{method} {path} -> HTTP {status}: Honeycomb answered with a redirect "
                        f"to {_masked(location, request.full_url, self.__key)}; redirects are "
                        "not followed (the API key would go with them): set "
                        "HONEYCOMB_API_HOST (or api_host=) to the host that serves the API",
                        status=status,
                    ) from None
                if status == 429 or status >= 500:
                    # No Retry-After from Honeycomb: exponential backoff with jitter.
                    self._wait(delay * (1 + random.random() / 2), deadline, f"{method} {path}")
                    delay = min(delay * 2, self.max_backoff)
                    continue
                raise QueryError(_explain(status, method, path, text), status=status) from None
            except TimeoutError:
                raise QueryTimeout(f"{method} {path}: Honeycomb did not answer in time") from None
            except urllib.error.URLError as exc:
                raise QueryError(
                    f"{method} {path}: cannot reach {self.api_host}: {exc.reason}"
                ) from None


@functools.cache
def _no_redirect_handler() -> type:
    """A handler refusing redirects (built on first use: urllib.request is heavy)."""
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        """Refuse every redirect: urlopen then raises the 3xx reply as an HTTPError."""

        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    return NoRedirect


def _masked(location: str | None, base: str, key: str) -> str:
    """A redirect target fit for a message: made absolute against the request's URL (where
    urllib would have gone), the key replaced by ``***``, then the shared masking of
    :func:`wideevents._core.secrets.mask` (userinfo, query values, fragment, key-shaped
    tokens)."""
    if not location:
        return "(no Location header)"
    try:
        target = urllib.parse.urljoin(base, location[:2000])
    except ValueError:
        target = location[:2000]
    return repr(mask(target.replace(key, "***"), limit=300))


def _read_capped(response: Any, cap: int, deadline: float, method: str, path: str) -> bytes:
    """The reply body, at most ``cap`` bytes, read before ``deadline``."""
    length = response.headers.get("Content-Length")
    if length is not None and length.isdigit() and int(length) > cap:
        raise QueryError(_too_large(method, path, cap))
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = response.read(_READ_CHUNK)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > cap:
            raise QueryError(_too_large(method, path, cap))
        chunks.append(chunk)
        if time.monotonic() > deadline:
            raise QueryTimeout(f"{method} {path}: Honeycomb's reply did not arrive in time")


def _too_large(method: str, path: str, cap: int) -> str:
    return (
        f"{method} {path}: Honeycomb's reply is larger than {cap // 1024} KB, more than a "
        "reply to this request can be; not reading it (ask for fewer rows with --limit)"
    )


def _json_object(raw: bytes, method: str, path: str) -> dict[str, Any]:
    try:
        value = json.loads(raw or b"{}")
    except (ValueError, RecursionError):  # RecursionError: nested deeper than Python parses
        raise QueryError(f"{method} {path}: Honeycomb sent a reply that is not JSON") from None
    if not isinstance(value, dict):
        raise QueryError(f"{method} {path}: Honeycomb sent an unexpected reply")
    return value


def _id(reply: Mapping[str, Any]) -> str:
    value = reply.get("id")
    if not isinstance(value, str) or not value:
        raise QueryError("Honeycomb's reply has no id")
    return value


def _error_text(exc: Any) -> str:
    """The ``error`` of an HTTPError's JSON body, else the start of the body."""
    try:
        raw: bytes = exc.read(2048)
    except Exception:  # noqa: BLE001  # the body is only a hint for the message
        return ""
    text = raw.decode("utf-8", "replace")
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        return mask(text, limit=300)
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), str):
        return mask(str(parsed["error"]), limit=300)
    return mask(text, limit=300)


def _explain(status: int, method: str, path: str, text: str) -> str:
    hint = {
        401: "the API key was rejected: check HONEYCOMB_API_KEY",
        403: "the key may not run queries: it needs the 'Run queries' permission, and the "
        "Query Data API needs the Enterprise plan",
        404: "no such dataset (or query) in this environment",
    }.get(status, "Honeycomb rejected the request")
    detail = f" ({text})" if text else ""
    return f"{method} {path} -> HTTP {status}: {hint}{detail}"


def _result(reply: Mapping[str, Any], *, series: bool) -> QueryResult:
    data = reply.get("data") or {}
    rows = [dict(r.get("data") or {}) for r in data.get("results") or []]
    points = None
    if series:
        points = [{"time": p.get("time"), "data": dict(p.get("data") or {})}
                  for p in data.get("series") or []]  # fmt: skip
    links = reply.get("links") or {}
    return QueryResult(rows=rows, series=points, complete=bool(reply.get("complete")),
                       query_url=links.get("query_url"))  # fmt: skip
