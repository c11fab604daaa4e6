"""Masking secrets in text shown to people: error messages and log lines.

:func:`mask` is the one function used wherever a string the user or a backend supplied
is shown (a ``ConfigurationError``, a log line echoing a reply body, a rejection reason in
``stats()``). It keeps the text recognisable and hides the parts that may be secrets:

- in a URL (``scheme://...``): the userinfo (``user:password@``) becomes ``***@``, each
  query value ``***`` (names kept: ``?api_key=***``), the fragment ``***``;
- anywhere: a *key-shaped token*, a run of 20 or more letters, digits, ``_`` or ``-``
  that mixes letters and digits (a letter next to a digit, or a digit next to a letter, at
  least twice), becomes its first 4 characters, ``***`` and its length
  (``hcai***(64 chars)``): API keys, bearer tokens and hex secrets look like that, while
  names with a number (``test_upload_path_2``, ``events_2024_05_01``) do not.

The text is masked first and cut to ``limit`` characters afterwards, so a cut never
leaves an unmasked piece of a token behind. Keys shorter than 20 characters, or made of
letters only, cannot be told apart from words and are not masked; they are never placed
in messages on purpose (docs/reliability.md, "Secrets and redaction").

Standard library only; never raises.
"""

from __future__ import annotations

import re

__all__ = ["MIN_TOKEN", "clip", "mask", "shown"]

MIN_TOKEN = 20  # characters: shorter runs are ordinary words, ports, dates, versions
_TOKEN = re.compile(r"[A-Za-z0-9_\-]{%d,}" % MIN_TOKEN)
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>]*")
_SWITCH = re.compile(r"(?=[A-Za-z][0-9]|[0-9][A-Za-z])")  # a letter/digit boundary
_HIDDEN = "***"
_TOKEN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def _token(match: re.Match[str]) -> str:
    text = match.group(0)
    switches = _SWITCH.finditer(text)
    if next(switches, None) is None or next(switches, None) is None:
        return text  # fewer than two letter/digit boundaries: a name, not a key
    return f"{text[:4]}{_HIDDEN}({len(text)} chars)"


def _url(match: re.Match[str]) -> str:
    url = match.group(0)
    scheme, _, rest = url.partition("://")
    # Userinfo: anything before the last "@" ahead of the query or fragment. A path holding
    # "@" is masked too: showing less is the safe side.
    end = min((i for i in (rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    at = rest.rfind("@", 0, end)
    if at >= 0:
        rest = f"{_HIDDEN}@{rest[at + 1:]}"
    before, hash_sep, fragment = rest.partition("#")
    path, query_sep, query = before.partition("?")
    if query_sep:
        pieces = []
        for piece in re.split(r"([&;])", query):
            if piece in ("&", ";") or not piece:
                pieces.append(piece)
            else:
                name, eq, _value = piece.partition("=")
                pieces.append(f"{name}={_HIDDEN}" if eq else _HIDDEN)
        path = f"{path}?{''.join(pieces)}"
    if hash_sep:
        path = f"{path}#{_HIDDEN if fragment else ''}"
    return f"{scheme}://{path}"


def mask(text: str, limit: int = 200) -> str:
    """``text`` with URL credentials, query values and key-shaped tokens masked, then cut
    to ``limit`` characters (``...`` marks a cut). Never raises."""
    try:
        if not isinstance(text, str):
            text = str(text)
        out = _TOKEN.sub(_token, _URL.sub(_url, text))
        if len(out) > limit:
            out = out[:max(0, limit - 3)] + "..."
        return out
    except Exception:  # noqa: BLE001 - a message helper must never raise
        return "(a value that cannot be shown)"


def clip(text: str, n: int, *, more: bool = False) -> str:
    """At most the first ``n`` characters of ``text``, for masking a long text in part:
    a token that the cut would split is left out whole (its start alone might be too short
    to look like a key). ``more``: ``text`` is itself a cut prefix of a longer text."""
    if len(text) <= n and not more:
        return text
    end = min(n, len(text))
    if end < len(text):
        split = text[end] in _TOKEN_CHARS
    else:
        split = more  # what follows is unknown: assume the last token goes on
    if split:
        while end > 0 and text[end - 1] in _TOKEN_CHARS:
            end -= 1
    return text[:end]


def shown(value: object, limit: int = 200) -> str:
    """``repr()`` of ``value`` with :func:`mask` applied (quotes kept for strings), for
    ``f"setting={shown(value)}"`` in error messages. Never raises."""
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - a user object's __repr__ may raise anything
        return f"(a {type(value).__name__} that cannot be shown)"
    return mask(text, limit)
