"""Hints for a column of a query that no event has (a misspelling, most often).

Honeycomb runs a query on a column it has never seen and answers with nulls; so do
``run_local`` and ``wideevents tail``, but they also say which column matched no event
and, when one is close, the column the user probably meant (``difflib`` over the columns
seen in the files). The columns seen come from a bounded sample of each file (its first
or last lines), so looking for a hint never reads a whole large file.
"""

from __future__ import annotations

import difflib
import gzip
import json
from collections.abc import Iterable
from typing import Any, Final

import orjson

__all__ = ["columns_in_lines", "first_lines", "missing_column", "parse_line", "sampled_columns"]

_SAMPLE_LINES: Final = 1000
_SAMPLE_BYTES: Final = 4 * 1024 * 1024
_MAX_COLUMNS: Final = 10_000  # a file with ever-new keys must not grow the set without bound


def parse_line(line: bytes) -> Any:
    """The JSON value of one line, ``None`` when it is not JSON (or nested too deep). orjson
    first; what it refuses (NaN and Infinity literals, 1e400, nesting past 1024 levels) is
    read the way the standard library reads it. orjson reads an integer past 64 bits as a
    float, ``json`` as an int: the same kind (``f``) for the store's sample, and the keys
    are the same."""
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError:
        try:
            return json.loads(line)
        except (ValueError, RecursionError):  # not JSON, or nested too deep for Python
            return None


def columns_in_lines(lines: Iterable[bytes | None], into: set[str]) -> None:
    """Add the keys of the JSON objects among ``lines`` to ``into`` (at most 10,000)."""
    for line in lines:
        if not line or len(into) >= _MAX_COLUMNS:
            continue
        event = parse_line(line)
        if isinstance(event, dict):
            into.update(list(event)[: _MAX_COLUMNS - len(into)])


def first_lines(path: str) -> list[bytes]:
    """The first lines of a file (``.gz`` too): at most 1,000 lines and 4 MB."""
    out: list[bytes] = []
    try:
        opener: Any = gzip.open if path.endswith(".gz") else open
        with opener(path, "rb") as f:
            budget = _SAMPLE_BYTES
            while len(out) < _SAMPLE_LINES and budget > 0:
                line = f.readline(budget)
                if not line:
                    break
                budget -= len(line)
                out.append(line)
    except (OSError, EOFError):
        pass  # unreadable here: no hint, the query itself reports the file
    return out


def sampled_columns(paths: Iterable[str]) -> set[str]:
    """The columns of the events in the first lines of each file."""
    columns: set[str] = set()
    for path in paths:
        columns_in_lines(first_lines(path), columns)
    return columns


def missing_column(column: str, role: str, seen: Iterable[str], scope: str = "") -> str:
    """The warning for ``column`` (used as ``role``), with the nearest column ``seen``."""
    close = difflib.get_close_matches(column, sorted(set(seen)), n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"column {column!r} ({role}) matched no event{scope}{hint}"
