"""Redaction: the one set of rules that keeps secrets out of every event (and URL).

The key rule. A name is compared in canonical form: lower case, surrounding spaces
removed, ``-`` and spaces read as ``_`` (``API-Key``, ``api key`` and ``api_key`` are one
name). A key is secret when its last dotted segment matches one of the names or globs
(``db.password`` is secret; ``token.count`` and ``password_policy.length`` are not).

Where it applies (docs/reliability.md, "Secrets and redaction"):

- A top-level field under a secret key becomes :data:`REDACTED`; flat scalars after the
  user's processors (:meth:`Redactor.__call__`), containers already when normalised.
- Inside a container (:meth:`Redactor.scrub`, at any depth): a secret key redacts its whole
  value, whatever it holds; in a list, tuple or set, a ``(name, value)`` pair (a 2-item
  list or tuple whose first item is a string or bytes, as in header lists) has its value
  redacted when the name is secret. Mappings, lists, tuples, sets, deques, object arrays,
  dataclasses, named tuples and pandas objects (column and index labels and a Series'
  name count as keys) are walked; enums become their text. Containers more than
  :data:`MAX_SCRUB_DEPTH` levels below the start are replaced by :data:`REDACTED` (they
  cannot be checked: self-referencing structures). A container that cannot be read
  becomes ``<unrepresentable Type>``. :meth:`scrub` never raises.
- :func:`redact_url` / :func:`redact_query` mask the values of secret query (and fragment)
  parameters, by the key rule plus :data:`URL_PARAMS`, and the userinfo of a URL, with
  OpenTelemetry's ``REDACTED`` (semantic conventions, ``url.full`` / ``url.query``).
- The middlewares refuse to capture a header whose name is secret (``integrations._http``).

This module imports nothing else of wideevents' core, so the normaliser can use it.
"""

from __future__ import annotations

import collections
import dataclasses
import enum
import fnmatch
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote_plus

from .._errors import ConfigurationError

__all__ = [
    "DEFAULT_REDACT", "MAX_KEY_BYTES", "MAX_SCRUB_DEPTH", "REDACTED", "URL_PARAMS",
    "URL_REDACTED", "Redactor", "default_redactor", "is_secret", "key_too_long",
    "redact_query", "redact_url", "scrub",
]

# Names are matched whole after canonicalisation (see the module docstring). Deliberately
# absent: "token" (a text token in ML: token.text, tokenizer.eos_token), "session" and
# "session_id" (correlation keys), "signature" (a model signature), "code".
DEFAULT_REDACT: tuple[str, ...] = (
    "authorization", "proxy-authorization", "cookie", "cookies", "set-cookie",
    "password", "passwd", "passphrase", "secret", "client_secret", "credential", "credentials",
    "api_key", "apikey", "x-api-key", "x-auth-token", "x-honeycomb-team",
    "access_token", "refresh_token", "id_token", "auth_token", "session_token", "sessionid",
    "csrf_token", "csrftoken", "x-csrf-token", "xsrf-token", "x-xsrf-token",
    "x-amz-security-token", "private_key",
    "*_password", "*_secret", "*_api_key", "*_authorization",
)
# Query-string parameters that carry credentials, on top of the key rule: OAuth (code,
# access_token), signed URLs (AWS SigV2/V4, Azure SAS "sig", Google "X-Goog-Signature"),
# and the common "token"/"key" spellings. Masking a harmless parameter only hides a value.
URL_PARAMS: tuple[str, ...] = (
    "token", "*token", "key", "*_key", "sig", "signature", "*signature", "code", "auth",
    "jwt", "session", "sid", "awsaccesskeyid", "x-amz-credential", "x-goog-credential",
    "*password", "*secret",
)
REDACTED = "[REDACTED]"
URL_REDACTED = "REDACTED"  # OpenTelemetry semconv: url.full / url.query values
MAX_SCRUB_DEPTH = 32
MAX_KEY_BYTES = 255
_CACHE_MAX = 50_000  # bounded: high-cardinality keys must not grow memory
_SCALARS = frozenset({str, int, float, bool, type(None), bytes})
_SEQUENCES = (list, tuple, set, frozenset, collections.deque)
_SEPARATORS = str.maketrans({"-": "_", " ": "_"})


def key_too_long(key: str) -> bool:
    """True when a key is longer than MAX_KEY_BYTES in UTF-8 (the normaliser cuts it)."""
    return len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES


def canonical(name: str) -> str:
    """The form names are compared in: lower case, trimmed, ``-`` and spaces as ``_``."""
    return name.strip().lower().translate(_SEPARATORS)


class _Rule:
    """Names and globs, matched against one canonical name."""

    __slots__ = ("names", "glob")

    def __init__(self, patterns: Iterable[str], what: str) -> None:
        if isinstance(patterns, str):
            patterns = (patterns,)
        names: set[str] = set()
        globs: list[str] = []
        for p in patterns:
            if not isinstance(p, str) or not p.strip():
                raise ConfigurationError(
                    f"{what} pattern {p!r} is invalid: use non-empty strings such as "
                    "'password' or globs such as '*_token'"
                )
            p = canonical(p)
            if any(c in p for c in "*?["):
                globs.append(p)
            else:
                names.add(p)
        self.names = frozenset(names)
        self.glob = re.compile("|".join(fnmatch.translate(g) for g in globs)) if globs else None

    def match(self, name: str) -> bool:
        return name in self.names or (self.glob is not None and self.glob.match(name) is not None)


def _last_segment(key: str) -> str:
    return canonical(key.rstrip(".").rpartition(".")[2])


def _enum_text(value: enum.Enum) -> str:
    inner = value.value
    return inner if isinstance(inner, str) else value.name


def _type_name(value: object) -> str:
    try:
        return str(type(value).__qualname__)
    except BaseException:  # noqa: BLE001 - a hostile metaclass
        return "object"


class Redactor:
    """The key rule for one set of names and globs (any case); see the module docstring."""

    def __init__(self, patterns: Iterable[str] = DEFAULT_REDACT) -> None:
        self._rule = _Rule(patterns, "redact")
        self._url_rule = _Rule(URL_PARAMS, "url")
        self._cache: dict[str, bool] = {}
        self._param_cache: dict[str, bool] = {}
        self._safe: set[str] = set()

    # -- the key rule --------------------------------------------------------------------------
    def is_secret(self, key: str) -> bool:
        """True when the last dotted segment of ``key`` is a secret name (cached)."""
        hit = self._cache.get(key)
        if hit is None:
            hit = self._decide(key)
        return hit

    def _decide(self, key: str) -> bool:
        hit = self._rule.match(_last_segment(key))
        if len(self._cache) >= _CACHE_MAX:
            self._cache.clear()
        self._cache[key] = hit
        return hit

    def is_secret_key(self, key: object) -> bool:
        """The key rule for any mapping key: bytes are read as Latin-1, an enum as its value
        and its ``str()``, anything else as its ``str()``. Never raises."""
        if type(key) is str:
            return self.is_secret(key)
        try:
            if isinstance(key, (bytes, bytearray)):
                return self.is_secret(bytes(key).decode("latin-1"))
            if isinstance(key, enum.Enum) and self.is_secret(_enum_text(key)):
                return True
            text = str(key)
        except BaseException:  # noqa: BLE001 - a key whose __str__ raises names no secret
            return False
        return type(text) is str and self.is_secret(text)

    def all_safe(self, fields: dict[str, Any]) -> bool:
        """True when no key of ``fields`` needs redacting or cutting (one C-level set check
        when warm: the fast path of :func:`.limits.fast_serialize`)."""
        safe = self._safe
        if safe.issuperset(fields):
            return True
        if len(safe) >= _CACHE_MAX:
            safe.clear()
        for key in fields:
            if key not in safe:
                if type(key) is not str or (len(key) > MAX_KEY_BYTES // 4 and key_too_long(key)):
                    return False  # the normaliser must cut or convert it
                if self.is_secret(key):
                    return False
                safe.add(key)
        return True

    # -- events --------------------------------------------------------------------------------
    def __call__(self, fields: dict[str, Any], walk: bool = True) -> dict[str, Any]:
        """Redact one event's fields in place: secret keys, then (``walk``) secrets inside
        container values. The pipeline walks only when user code (a processor, a sampler)
        ran after normalisation, which leaves nothing unscrubbed inside the values."""
        cache = self._cache
        hits = None
        for key in fields:
            hit = cache.get(key)
            if hit is None:
                hit = self._decide(key) if type(key) is str else self.is_secret_key(key)
            if hit:
                if hits is None:
                    hits = [key]
                else:
                    hits.append(key)
        if hits:
            for key in hits:
                fields[key] = REDACTED
        if walk and not _SCALARS.issuperset(map(type, fields.values())):
            for key, value in list(fields.items()):
                if type(value) in _SCALARS or (
                        type(value) is list and _SCALARS.issuperset(map(type, value))):
                    continue
                new = self.scrub(value)
                if new is not value:
                    fields[key] = new
        return fields

    def scrub(self, value: Any, depth: int = 0) -> Any:
        """``value`` with every secret inside it redacted, as plain JSON-ready containers
        (dicts and lists; pandas objects stay pandas objects). Never raises."""
        t = type(value)
        if t in _SCALARS:
            return value
        if depth >= MAX_SCRUB_DEPTH:
            return REDACTED  # too deep to check (self-referencing): withheld
        try:
            if t is dict or isinstance(value, Mapping):
                return self._scrub_items(list(value.items()), depth)
            if isinstance(value, _SEQUENCES):
                fields = getattr(t, "_fields", None)
                if isinstance(value, tuple) and type(fields) is tuple:  # a named tuple
                    return self._scrub_items(list(zip(fields, value)), depth)
                return self._scrub_list(list(value), depth)
            if isinstance(value, enum.Enum):
                return _enum_text(value)
            module = t.__module__
            if module == "numpy":
                if t.__name__ == "ndarray" and value.dtype.kind == "O":
                    return self._scrub_list(value.tolist(), depth)
                return value
            if module.startswith("pandas"):
                return self._scrub_pandas(value, depth)
            if dataclasses.is_dataclass(value) and not isinstance(value, type):
                return self._scrub_items(
                    [(f.name, getattr(value, f.name)) for f in dataclasses.fields(value)], depth)
        except BaseException:  # noqa: BLE001 - a container we cannot read is withheld, not
            # shown; like safe_repr, nothing a user object raises may escape
            return f"<unrepresentable {_type_name(value)}>"
        return value

    def _scrub_items(self, items: list[tuple[Any, Any]], depth: int) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        for k, v in items:
            out[k] = REDACTED if self.is_secret_key(k) else self.scrub(v, depth + 1)
        return out

    def _scrub_list(self, items: list[Any], depth: int) -> list[Any]:
        out: list[Any] = []
        for item in items:
            t = type(item)
            if t in _SCALARS:
                out.append(item)
            elif ((t is tuple or t is list) and len(item) == 2
                  and type(item[0]) in (str, bytes) and self.is_secret_key(item[0])):
                out.append([item[0], REDACTED])  # a (name, value) pair: a header, say
            else:
                out.append(self.scrub(item, depth + 1))
        return out

    def _scrub_pandas(self, value: Any, depth: int) -> Any:
        """A DataFrame or Series with its secret columns, rows and cells redacted (a copy)."""
        kind = type(value).__name__
        if kind == "Series":
            if value.name is not None and self._label_secret(value.name):
                return REDACTED
            rows = self._secret_positions(value.index)
            cells = self._changed_cells(value, depth) if value.dtype.kind == "O" else []
            if not rows and not cells:
                return value
            out = value.astype(object)  # a copy: the caller's object is never changed
            for j, cell in cells:
                out.iat[j] = cell
            if rows:
                out.iloc[rows] = REDACTED
            return out
        if kind == "DataFrame":
            cols = self._secret_positions(value.columns)
            rows = self._secret_positions(value.index)
            grid = [(j, i, cell) for i, dt in enumerate(value.dtypes) if dt.kind == "O"
                    for j, cell in self._changed_cells(value.iloc[:, i], depth)]
            if not cols and not rows and not grid:
                return value
            out = value.astype(object)  # a copy: the caller's object is never changed
            for j, i, cell in grid:
                out.iat[j, i] = cell
            if cols:
                out.iloc[:, cols] = REDACTED
            if rows:
                out.iloc[rows, :] = REDACTED
            return out
        return value

    def _changed_cells(self, column: Any, depth: int) -> list[tuple[int, Any]]:
        """(position, scrubbed cell) for the cells of an object column that scrubbing changes."""
        cells = column.tolist()
        if _SCALARS.issuperset(map(type, cells)):
            return []
        scrubbed = self._scrub_list(cells, depth)
        return [(j, new) for j, (old, new) in enumerate(zip(cells, scrubbed)) if new is not old]

    def _label_secret(self, label: Any) -> bool:
        if isinstance(label, tuple):  # a MultiIndex label: any level may name the secret
            return any(self.is_secret_key(part) for part in label)
        return self.is_secret_key(label)

    def _secret_positions(self, index: Any) -> list[int]:
        if getattr(index.dtype, "kind", "O") in "biufcmM":  # numbers and times name nothing
            return []
        return [i for i, label in enumerate(index) if self._label_secret(label)]

    # -- URLs ----------------------------------------------------------------------------------
    def is_secret_param(self, name: str) -> bool:
        """The key rule plus :data:`URL_PARAMS`, for a (percent-decoded) query parameter."""
        hit = self._param_cache.get(name)
        if hit is None:
            try:
                decoded = unquote_plus(name)
            except Exception:  # noqa: BLE001 - undecodable: judged as written
                decoded = name
            hit = self.is_secret(decoded) or self._url_rule.match(canonical(decoded))
            if len(self._param_cache) >= _CACHE_MAX:
                self._param_cache.clear()
            self._param_cache[name] = hit
        return hit

    def redact_query(self, query: str) -> str:
        """``query`` (``a=1&token=x``) with the values of secret parameters masked."""
        if not query or "=" not in query:
            return query
        parts = re.split(r"([&;])", query)
        for i, part in enumerate(parts):
            name, eq, val = part.partition("=")
            if eq and val and self.is_secret_param(name):
                parts[i] = f"{name}={URL_REDACTED}"
        return "".join(parts)

    def redact_url(self, url: str) -> str:
        """``url`` with its userinfo and the values of secret query and fragment parameters
        masked (``https://REDACTED:REDACTED@host/p?q=1&sig=REDACTED``). Never raises."""
        try:
            if type(url) is not str:
                return URL_REDACTED
            rest, hash_, fragment = url.partition("#")
            head, qmark, query = rest.partition("?")
            scheme_end = head.find("://")
            if scheme_end >= 0 or head.startswith("//"):
                start = scheme_end + 3 if scheme_end >= 0 else 2
                slash = head.find("/", start)
                authority = head[start:] if slash < 0 else head[start:slash]
                if "@" in authority:
                    userinfo, _, host = authority.rpartition("@")
                    masked = (f"{URL_REDACTED}:{URL_REDACTED}" if ":" in userinfo
                              else URL_REDACTED)
                    head = head[:start] + masked + "@" + host + ("" if slash < 0
                                                                  else head[slash:])
            return (head + qmark + self.redact_query(query) + hash_
                    + self.redact_query(fragment))
        except Exception:  # noqa: BLE001 - a URL we cannot parse is withheld
            return URL_REDACTED


_DEFAULT = Redactor()


def default_redactor() -> Redactor:
    """The redactor with the default names (what the middlewares and snapshots use)."""
    return _DEFAULT


def is_secret(key: str) -> bool:
    """The default key rule (see :class:`Redactor`)."""
    return _DEFAULT.is_secret(key)


def scrub(value: Any) -> Any:
    """``value`` with secrets inside it redacted by the default rules."""
    return _DEFAULT.scrub(value)


def redact_url(url: str) -> str:
    """``url`` with its userinfo and secret query/fragment values masked (default rules)."""
    return _DEFAULT.redact_url(url)


def redact_query(query: str) -> str:
    """A query string with the values of secret parameters masked (default rules)."""
    return _DEFAULT.redact_query(query)
