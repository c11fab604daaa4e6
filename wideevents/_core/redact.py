"""Redaction: values under secret-looking keys never leave the process.

A key is secret when its last dotted segment matches one of the names or globs, in any
case (``db.password`` is, ``password_policy.length`` is not). The value becomes
``"[REDACTED]"``. Runs on the worker, after the user's processors and the sampler,
before limits and serialisation (docs/reliability.md, "Secrets and redaction").
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from typing import Any

from .._errors import ConfigurationError
from .normalize import key_too_long

__all__ = ["DEFAULT_REDACT", "REDACTED", "Redactor"]

DEFAULT_REDACT: tuple[str, ...] = (
    "authorization", "proxy-authorization", "cookie", "set-cookie", "password", "passwd",
    "secret", "client_secret", "api_key", "apikey", "x-api-key", "x-honeycomb-team",
    "access_token", "refresh_token", "id_token", "private_key",
)
REDACTED = "[REDACTED]"


class Redactor:
    """Replace values whose key's last dotted segment matches a name or glob (any case)."""

    def __init__(self, patterns: Iterable[str] = DEFAULT_REDACT) -> None:
        names: set[str] = set()
        globs: list[str] = []
        for p in patterns:
            if not isinstance(p, str) or not p:
                raise ConfigurationError(
                    f"redact pattern {p!r} is invalid: use non-empty strings such as 'password' "
                    "or globs such as '*_token'"
                )
            p = p.lower()
            if any(c in p for c in "*?["):
                globs.append(p)
            else:
                names.add(p)
        self._names = frozenset(names)
        self._glob = re.compile("|".join(fnmatch.translate(g) for g in globs)) if globs else None
        self._cache: dict[str, bool] = {}
        self._safe: set[str] = set()

    def all_safe(self, fields: dict[str, Any]) -> bool:
        """True when no key of ``fields`` needs redacting (one C-level set check when warm)."""
        safe = self._safe
        if safe.issuperset(fields):
            return True
        if len(safe) >= 50_000:
            safe.clear()
        for key in fields:
            if key not in safe:
                if type(key) is not str or (len(key) > 63 and key_too_long(key)):
                    return False  # the normaliser must cut it
                if self._cache.get(key) or self._decide(key):
                    return False
                safe.add(key)
        return True

    def _decide(self, key: str) -> bool:
        last = key.rpartition(".")[2].lower()
        hit = last in self._names or (self._glob is not None and self._glob.match(last) is not None)
        if len(self._cache) >= 50_000:  # bounded: high-cardinality keys must not grow memory
            self._cache.clear()
        self._cache[key] = hit
        return hit

    def __call__(self, fields: dict[str, Any]) -> dict[str, Any]:
        cache = self._cache
        hits = None
        for key in fields:
            hit = cache.get(key)
            if hit is None:
                hit = self._decide(key)
            if hit:
                if hits is None:
                    hits = [key]
                else:
                    hits.append(key)
        if hits:
            for key in hits:
                fields[key] = REDACTED
        return fields
