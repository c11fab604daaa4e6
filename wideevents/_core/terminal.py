"""Text shown to people on a terminal: every character a terminal would act on made visible.

Event fields come from requests (a ``User-Agent``, a path, a model's output). Printed raw,
``ESC ] 52`` writes the operator's clipboard, ``ESC ] 8`` plants a link, ``ESC [ 2 J``
clears the screen, the 8-bit C1 ``CSI`` (U+009B) does the same without an ESC, and the
bidirectional overrides show text in an order other than the one it has ("Trojan Source",
CVE-2021-42574). Everything the SDK prints for people (``wideevents tail``, the ``query``
tables and histograms, ``StdoutSink(format="pretty")``, the demo) goes through here.

Contract of :func:`escape`: the result contains none of

* C0 controls U+0000-U+001F, tab and newline included (one value stays on one line):
  ``\\t``, ``\\n``, ``\\r``, else ``\\xNN``;
* DEL U+007F and the C1 controls U+0080-U+009F: ``\\xNN``;
* the bidi embeddings/overrides U+202A-U+202E and isolates U+2066-U+2069, and the line
  and paragraph separators U+2028/U+2029: ``\\uNNNN``;
* lone surrogates U+D800-U+DFFF (a ``\\ud800`` escape in a JSON line; they cannot even be
  encoded as UTF-8): ``\\uNNNN``.

Every other character, non-ASCII letters and emoji included, is kept as it is; the
backslash itself is not doubled (the text is for reading, not for parsing back).

:func:`escape_json_bytes` does the same for JSON text on its way to a terminal while
keeping it JSON: the UTF-8 of DEL, C1, bidi controls and U+2028/U+2029 becomes ``\\u``
escapes, which a JSON parser reads back as the same characters (RFC 8259, section 7).
:func:`console_fields` turns an event into the dict structlog's ``ConsoleRenderer``
formats, every key and value escaped text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

__all__ = ["console_fields", "escape", "escape_json_bytes", "show_value"]

_UNSAFE: Final = re.compile("[\x00-\x1f\x7f-\x9f\u2028-\u202e\u2066-\u2069\ud800-\udfff]")
_NAMED: Final = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}
# The UTF-8 of DEL, C1 (C2 80-9F), U+2028-U+202E (E2 80 A8-AE), U+2066-U+2069 (E2 81 A6-A9).
# In JSON text these bytes only occur inside strings: every structural character is ASCII.
_JSON_UNSAFE: Final = re.compile(rb"\x7f|\xc2[\x80-\x9f]|\xe2\x80[\xa8-\xae]|\xe2\x81[\xa6-\xa9]")
# ConsoleRenderer pops these keys and prints them after the line (``exc_info`` may even
# print the current exception): an event's own fields of these names are shown renamed.
_RENDERER_KEYS: Final = frozenset(("exc_info", "exception", "stack"))
_MAX_DEPTH: Final = 20


def _visible(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape(text: str) -> str:
    """``text`` with every control, bidi and lone-surrogate character shown as an escape."""
    if _UNSAFE.search(text) is None:
        return text
    return _UNSAFE.sub(_visible, text)


def _json_escape(match: re.Match[bytes]) -> bytes:
    return b"\\u%04x" % ord(match.group().decode("utf-8"))


def escape_json_bytes(data: bytes) -> bytes:
    """UTF-8 JSON text with DEL, C1, bidi controls and U+2028/U+2029 written as ``\\u``
    escapes: the same JSON values, safe to show on a terminal (C0 controls are escaped by
    every JSON encoder already)."""
    # Three byte searches (memchr speed) settle the common case before any regex runs.
    if b"\x7f" not in data and b"\xc2" not in data and b"\xe2" not in data:
        return data
    if _JSON_UNSAFE.search(data) is None:
        return data
    return _JSON_UNSAFE.sub(_json_escape, data)


def _shown(value: Any, depth: int) -> str:
    """``repr``-like text of a value, nested at most ``_MAX_DEPTH`` levels (never a
    RecursionError, whatever the depth)."""
    if isinstance(value, (list, tuple)):
        if depth >= _MAX_DEPTH:
            return "[...]"
        return "[" + ", ".join(_shown(v, depth + 1) for v in value) + "]"
    if isinstance(value, dict):
        if depth >= _MAX_DEPTH:
            return "{...}"
        items = (f"{_shown(k, depth + 1)}: {_shown(v, depth + 1)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    try:
        return repr(value)
    except Exception:  # noqa: BLE001 - a value that cannot describe itself is shown by type
        return f"<{type(value).__name__}>"


class _Shown(str):
    """Escaped text for structlog's ``ConsoleRenderer``, which prints a string value as it
    is, or its ``repr()`` when it holds a space, ``=`` or a quote: that repr is the text
    quoted once, its backslashes not doubled again (``'a \\x1b'``, not ``'a \\\\x1b'``)."""

    _rendered: str

    def __new__(cls, text: str, rendered: str) -> _Shown:
        shown = super().__new__(cls, text)
        shown._rendered = rendered
        return shown

    def __repr__(self) -> str:
        return self._rendered


def _quoted(text: str) -> str:
    """``text`` between quotes as Python's repr chooses them (no other escaping)."""
    quote = '"' if "'" in text and '"' not in text else "'"
    return quote + text.replace(quote, "\\" + quote) + quote


def show_value(value: Any) -> str:
    """A field value as one line of terminal-safe text: strings as they are, other values
    as ``repr`` (containers cut at 20 levels), everything escaped."""
    if isinstance(value, str):
        return escape(value)
    return escape(_shown(value, 0))


def console_fields(
    fields: Mapping[str, Any], *, message: str = "name", level: str | None = "info"
) -> dict[str, str]:
    """An event as the dict structlog's ``ConsoleRenderer`` formats: ``timestamp``,
    ``event`` (the ``message`` field, default ``name``), ``level`` (left out when None),
    then every other field in order. Keys and values are escaped text; fields named like the renderer's own
    multi-line keys (``exc_info``, ``exception``, ``stack``) get a trailing ``_``; keys
    that escape to the same text stay apart (``~2``, ``~3``, ... appended)."""
    rest = dict(fields)
    timestamp, name = rest.pop("timestamp", None), rest.pop(message, "event")
    out: dict[str, str] = {
        "timestamp": "" if timestamp is None else show_value(timestamp),
        "event": show_value(name),
    }
    if level is not None:
        out["level"] = level
    for key, value in rest.items():
        shown = escape(key) if isinstance(key, str) else show_value(key)
        if shown in _RENDERER_KEYS:
            shown += "_"
        if shown in out and shown != "level":
            n = 2
            while f"{shown}~{n}" in out:
                n += 1
            shown = f"{shown}~{n}"
        text = show_value(value)
        out[shown] = _Shown(text, _quoted(text) if isinstance(value, str) else text)
    return out
