"""Strict JSON-lines parsing for the tests: what a strict consumer of wideevents' output
(stdout, files, the memory sink's lines) accepts."""

from __future__ import annotations

import json
from typing import Any


def reject_constant(name: str) -> Any:
    raise ValueError(f"invalid JSON constant {name}")


def parse_line(line: bytes) -> dict[str, Any]:
    """One line: UTF-8, one JSON object, no NaN or Infinity."""
    obj = json.loads(line.decode("utf-8"), parse_constant=reject_constant)
    assert isinstance(obj, dict)
    return obj


def parse_lines(data: bytes) -> list[dict[str, Any]]:
    """Every line complete (the data ends with a newline) and parsed by :func:`parse_line`."""
    assert data == b"" or data.endswith(b"\n")
    return [parse_line(line) for line in data.split(b"\n")[:-1]]
