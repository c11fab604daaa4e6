"""Query parts written as text, as on the command line.

``--where 'duration_ms > 250'``, ``--where 'error = true'``, ``--where 'model.version in
v1,v2'``, ``--where 'user.id exists'``; ``--having 'COUNT > 10'``; ``--order
'P99(duration_ms) desc'`` or ``--order model.version``. Values are read JSON-ish: ``true``
/ ``false``, numbers and ``"quoted strings"`` are JSON; anything else is a bare string.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

from wideevents._errors import ConfigurationError
from wideevents._filter import OPERATORS, Condition, parse_condition
from wideevents.query._model import CALCULATION_OPS, Calculation, Having, Order

__all__ = ["parse_having", "parse_order", "parse_value", "parse_where"]

_SYMBOLS: Final = ("!=", ">=", "<=", "=", ">", "<")
_SYMBOLIC = re.compile(r"^\s*(?P<left>.+?)\s*(?P<op>!=|>=|<=|=|>|<)\s*(?P<value>.*?)\s*$")
_WORDS = sorted((op for op in OPERATORS if op not in _SYMBOLS), key=len, reverse=True)
_WORDY = re.compile(
    r"^\s*(?P<left>\S+)\s+(?P<op>"
    + "|".join(map(re.escape, _WORDS))
    + r")(?:\s+(?P<value>.*?))?\s*$"
)
_TERM = re.compile(r"^[A-Za-z_0-9]+\s*(\(.*\))?$")


def parse_value(text: str) -> Any:
    """``true``/``false``/numbers/``"strings"``/JSON lists and objects as JSON (a list or
    object compared with ``=`` or a string operator stands for its compact JSON text, as
    Honeycomb stores a nested value), else the text itself."""
    stripped = text.strip()
    try:
        value = json.loads(stripped)
    except (ValueError, RecursionError):  # nested too deeply to be a value: the text itself
        return stripped
    if value is None:
        return stripped  # null is not a value to compare with: keep the text
    return value


def parse_where(text: str) -> Condition:
    """``column op value`` -> a validated Condition (ConfigurationError with an example)."""
    match = _WORDY.match(text) or _SYMBOLIC.match(text)
    if not match:
        raise ConfigurationError(
            f"cannot read filter {text!r}; write 'column op value', e.g. 'duration_ms > 250', "
            f"'error = true', 'http.route starts-with /v1', 'user.id exists' (ops: "
            f"{', '.join(sorted(OPERATORS))})"
        )
    column, op, raw = match.group("left"), match.group("op"), match.group("value")
    cond: dict[str, Any] = {"column": column, "op": op}
    if raw:
        if op in ("in", "not-in"):
            value = parse_value(raw)
            cond["value"] = (
                value
                if isinstance(value, list)
                else [parse_value(v) for v in raw.split(",") if v.strip()]
            )
        else:
            cond["value"] = parse_value(raw)
    return parse_condition(cond)


def _calculation(term: str) -> Calculation | None:
    term = term.strip()
    name = term.split("(", 1)[0].strip().upper()
    if name in CALCULATION_OPS and _TERM.match(term):
        return Calculation.parse(term)
    return None


def parse_having(text: str) -> Having:
    """``CALC op number``, e.g. ``COUNT > 10`` or ``P99(duration_ms) >= 250``."""
    match = _SYMBOLIC.match(text)
    calc = _calculation(match.group("left")) if match else None
    value: Any = parse_value(match.group("value")) if match else None
    if (
        match is None
        or calc is None
        or isinstance(value, bool)
        or not isinstance(value, (int, float))
    ):
        raise ConfigurationError(
            f"cannot read having {text!r}; write 'CALCULATION op number', e.g. 'COUNT > 10'"
        )
    return Having(calc.op, match.group("op"), value, calc.column)


def parse_order(text: str) -> Order:
    """``TERM [asc|desc]``: a calculation such as ``P99(duration_ms)`` or a breakdown."""
    parts = text.strip().rsplit(None, 1)
    direction = "ascending"
    if len(parts) == 2 and parts[1].lower() in ("asc", "ascending", "desc", "descending"):
        text = parts[0]
        direction = "descending" if parts[1].lower().startswith("desc") else "ascending"
    text = text.strip()
    if not text:
        raise ConfigurationError("an order needs a term, e.g. 'P99(duration_ms) desc'")
    calc = _calculation(text)
    if calc is not None:
        return Order(calc.op, calc.column, direction)  # type: ignore[arg-type]
    return Order(None, text, direction)  # type: ignore[arg-type]
