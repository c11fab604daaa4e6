"""Reading a JSON-lines file the way ``wideevents tail`` shows it, in bounded memory.

Contract:

* :func:`tail_events` yields the last ``lines`` events of the file **that pass the filter**
  (the filter is applied before the last N are taken), oldest first, then, when
  following, each new event as it is appended (a truncated or replaced file is read again
  from its start; a line still being written is read once it ends with a newline).
* Memory does not grow with the file: the start is found by reading blocks of
  :data:`BLOCK` bytes backwards from the end, new data is read in blocks too, and a line
  is held only up to :data:`MAX_LINE` bytes. A longer line is skipped without keeping it.
* A line that is not a JSON object (not JSON, truncated, invalid UTF-8, nested too
  deeply for Python's parser, an array or a scalar, longer than :data:`MAX_LINE`) is
  skipped and reported: the start phase yields one :class:`Skipped` with their count
  after its events, the follow phase one per skipped line. Blank lines are not events
  and are not counted. A lone surrogate escape (``"\\ud800"``) is valid JSON: the event
  is shown, the character escaped by the renderer.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, Any, Final

__all__ = ["BLOCK", "MAX_LINE", "Skipped", "last_lines", "lines_backwards", "tail_events"]

BLOCK: Final = 64 * 1024
MAX_LINE: Final = 16 * 1024 * 1024  # events are 1 MB by default (Limits.max_event_bytes)
_BLANK: Final = object()


@dataclass(frozen=True)
class Skipped:
    """``count`` lines that are not JSON objects were skipped."""

    count: int


def _decode(raw: bytes | None) -> Any:
    """The event on a line; ``_BLANK`` for a blank line; None for a line to skip."""
    if raw is None:
        return None
    if not raw.strip():
        return _BLANK
    try:
        event = json.loads(raw)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    return event if isinstance(event, dict) else None


def lines_backwards(
    f: IO[bytes], end: int, *, block: int = BLOCK, max_line: int = MAX_LINE
) -> Iterator[tuple[int, bytes | None]]:
    """``(start offset, content)`` of each line of ``f[:end]``, the last first, without
    the newline, reading ``block`` bytes at a time. The first item is the text after the
    last newline (``b""`` when the file ends with one). ``content`` is None for a line
    longer than ``max_line``."""
    pos, carry, held, too_long = end, [b""], 0, False  # carry: the line's blocks, last first
    while pos > 0:
        size = min(block, pos)
        pos -= size
        f.seek(pos)
        chunk = f.read(size)
        if len(chunk) != size:  # truncated while we read: what is left is not lines
            return
        cut = chunk.rfind(b"\n")
        if cut < 0:
            if not too_long:
                carry.append(chunk)
                held += size
                if held > max_line:
                    too_long, carry, held = True, [], 0
            continue
        head = chunk[cut + 1 :]
        whole = not too_long and len(head) + held <= max_line
        yield pos + cut + 1, (b"".join([head, *reversed(carry)]) if whole else None)
        pieces = chunk[:cut].split(b"\n")
        offset = pos + cut  # the newline that ends the last piece
        for piece in reversed(pieces[1:]):
            start = offset - len(piece)
            yield start, (piece if len(piece) <= max_line else None)
            offset = start - 1
        carry, held, too_long = [pieces[0]], len(pieces[0]), len(pieces[0]) > max_line
    yield 0, (None if too_long else b"".join(reversed(carry)))


def last_lines(path: str, count: int = 1000, budget: int = 4 * 1024 * 1024) -> list[bytes]:
    """The last ``count`` complete lines of a file (at most ``budget`` bytes of them), the
    last first; lines over :data:`MAX_LINE` and unreadable files give nothing."""
    out: list[bytes] = []
    try:
        with open(path, "rb") as f:
            lines = lines_backwards(f, os.fstat(f.fileno()).st_size)
            next(lines, None)  # the text after the last newline: still being written
            for _, raw in lines:
                if raw is None:
                    continue
                budget -= len(raw)
                if budget < 0 or len(out) >= count:
                    break
                out.append(raw)
    except OSError:
        pass  # the tail itself reports an unreadable file
    return out


def _last(
    path: str, lines: int, keep: Callable[[Mapping[str, Any]], bool], block: int, max_line: int
) -> tuple[list[dict[str, Any]], int, int, int]:
    """The last ``lines`` kept events (oldest first), the skipped count, where following
    starts (the start of the unfinished last line) and the file's inode."""
    with open(path, "rb") as f:
        st = os.fstat(f.fileno())
        backwards = lines_backwards(f, st.st_size, block=block, max_line=max_line)
        start, _partial = next(backwards, (0, b""))
        found: list[dict[str, Any]] = []
        skipped = 0
        if lines > 0:
            for _, raw in backwards:
                event = _decode(raw)
                if event is None:
                    skipped += 1
                elif event is not _BLANK and keep(event):
                    found.append(event)
                    if len(found) >= lines:
                        break
    found.reverse()
    return found, skipped, start, st.st_ino


def tail_events(
    path: str,
    lines: int,
    keep: Callable[[Mapping[str, Any]], bool],
    follow: bool = True,
    interval: float = 0.2,
    *,
    block: int = BLOCK,
    max_line: int = MAX_LINE,
) -> Iterator[dict[str, Any] | Skipped]:
    """The last ``lines`` kept events, then (``follow``) the kept events appended later;
    :class:`Skipped` items report lines that are not JSON objects (module docstring)."""
    found, skipped, position, inode = _last(path, lines, keep, block, max_line)
    yield from found
    if skipped:
        yield Skipped(skipped)
    buffer: list[bytes] = []  # the unfinished line's blocks
    held, too_long = 0, False
    while follow:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            time.sleep(interval)
            continue
        if st.st_ino != inode or st.st_size < position:
            position, inode, buffer, held, too_long = 0, st.st_ino, [], 0, False
        if st.st_size == position:
            time.sleep(interval)
            continue
        with open(path, "rb") as f:
            f.seek(position)
            while chunk := f.read(block):
                position += len(chunk)
                *ended, rest = chunk.split(b"\n")
                for piece in ended:
                    whole = not too_long and held + len(piece) <= max_line
                    raw = b"".join([*buffer, piece]) if whole else None
                    buffer, held, too_long = [], 0, False
                    event = _decode(raw)
                    if event is None:
                        yield Skipped(1)
                    elif event is not _BLANK and keep(event):
                        yield event
                if not too_long and rest:
                    buffer.append(rest)
                    held += len(rest)
                    if held > max_line:
                        buffer, held, too_long = [], 0, True
