"""Text from events made safe for HTML and for chart labels.

:func:`text` is the one way a string reaches a page: control, bidi and lone-surrogate
characters become visible escapes (``\\x1b``, ``\\u202e``: the terminal output's rule,
:func:`wideevents._core.terminal.escape`), then ``& < > " '`` become HTML entities, so a
``<script>`` in a user agent is shown, never run. :func:`label` is the same text for a
chart (not HTML-escaped: matplotlib draws it as glyph outlines, with mathtext off).
:func:`cell` formats a value of a result as the terminal tables do.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from wideevents._core.terminal import escape, show_value

__all__ = ["cell", "label", "number", "text"]

_MAX_LABEL = 60  # a chart label longer than this is cut (the table has the whole value)


def text(value: Any) -> str:
    """``value`` as HTML text: visible escapes for control characters, entities for markup."""
    return html.escape(escape(value if isinstance(value, str) else plain(value)), quote=True)


def label(value: Any) -> str:
    """``value`` as a chart label: escaped control characters, at most 60 characters."""
    shown = escape(value if isinstance(value, str) else plain(value))
    return shown if len(shown) <= _MAX_LABEL else shown[: _MAX_LABEL - 1] + "…"


def number(value: float) -> str:
    """Six significant digits in plain decimal notation (as the terminal tables)."""
    shown = f"{value:.6g}"
    if "e" not in shown or not 1e-9 <= abs(value) < 1e21:
        return shown
    if abs(value) >= 1:
        return f"{value:.0f}"
    return format(Decimal(shown), "f")


def plain(value: Any) -> str:
    """A result value as one line of text (not yet escaped)."""
    if value is None:
        return "(null)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return number(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value
    if isinstance(value, (list, Mapping)):
        try:
            return json.dumps(value, ensure_ascii=False)
        except (TypeError, ValueError, RecursionError):  # nested too deeply to print
            return show_value(value)
    return show_value(value)


def cell(value: Any) -> str:
    """A table cell's HTML."""
    return text(plain(value))
