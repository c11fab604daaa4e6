"""The query cache's directories: what it creates, and the proof it created them.

Contract: the cache deletes only what it can prove it created. An *entry* is a directory
named ``v3-<32 hex digits>`` (never a symbolic link) directly under the cache directory,
holding the marker file :data:`MARKER_NAME` whose content is exactly :data:`MARKER_TEXT`;
the marker is written in a pending directory (``.v3-<hex>.<hex>.new``) that is then renamed,
so an entry never exists without it. Inside a proven entry only the cache's own file names
are removed (``manifest.json``, ``manifest.<hex>.tmp``, ``p<hex>.parquet`` and its
``.tmp``), then the marker, then the directory if it is empty; ``unlink`` never follows a
symbolic link and nothing is removed recursively. A directory without the marker, a
symbolic link, or any other file name is never touched (and a directory in an entry's
place that is not proven is not used either).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
import uuid
from pathlib import Path
from typing import Final

__all__ = ["MARKER_NAME", "MARKER_TEXT", "PART", "clear", "create_entry", "is_entry", "prune"]

MARKER_NAME: Final = ".wideevents-query-cache-entry"
MARKER_TEXT: Final = b"wideevents query cache entry: created by wideevents.query; safe to delete\n"
PART: Final = re.compile(r"p[0-9a-f]{12}\.parquet")
_ENTRY: Final = re.compile(r"v3-[0-9a-f]{32}")
_PENDING: Final = re.compile(r"\.v3-[0-9a-f]{32}\.[0-9a-f]{12}\.new")
_OWN_FILE: Final = re.compile(
    r"manifest\.json|manifest\.[0-9a-f]{8}\.tmp|p[0-9a-f]{12}\.parquet(\.tmp)?"
)


def is_entry(directory: Path) -> bool:
    """True when ``directory`` is a real directory (not a symbolic link) holding the
    marker with exactly :data:`MARKER_TEXT`: proof the cache created it."""
    try:
        if not directory.is_dir() or directory.is_symlink():
            return False
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
        fd = os.open(directory / MARKER_NAME, flags)
    except OSError:
        return False
    try:
        return os.read(fd, len(MARKER_TEXT) + 1) == MARKER_TEXT
    except OSError:
        return False
    finally:
        os.close(fd)


def create_entry(root: Path, name: str) -> None:
    """Create the entry ``root/name`` with its marker in place before it gets its name (a
    crash leaves at most a pending directory that :func:`prune` can prove is ours)."""
    root.mkdir(parents=True, exist_ok=True)
    pending = root / f".{name}.{uuid.uuid4().hex[:12]}.new"
    pending.mkdir()
    try:
        fd = os.open(pending / MARKER_NAME, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, MARKER_TEXT)
        finally:
            os.close(fd)
        os.rename(pending, root / name)
    except OSError:
        _remove_entry(pending)
        if not is_entry(root / name):  # another process may have made it meanwhile
            raise


def clear(directory: Path, grace: float = 60.0) -> None:
    """Remove a file's cached parts, except very recent ones: another process may be
    writing its first part there right now (its manifest will refer to it). Only the
    cache's own file names, in a proven entry, never through a symbolic link."""
    if not is_entry(directory):
        return
    try:
        children = list(os.scandir(directory))
    except OSError:
        return
    now = time.time()
    for child in children:
        if not _OWN_FILE.fullmatch(child.name):
            continue
        with contextlib.suppress(OSError):
            st = child.stat(follow_symlinks=False)
            if now - st.st_mtime > grace or child.name == "manifest.json":
                os.unlink(child.path)  # unlink never follows a symbolic link


def _remove_entry(directory: Path) -> None:
    """Delete a proven entry: the cache's own files, then the marker, then the directory
    if nothing else is left in it."""
    with contextlib.suppress(OSError):
        for child in os.scandir(directory):
            if _OWN_FILE.fullmatch(child.name):
                with contextlib.suppress(OSError):
                    os.unlink(child.path)
    with contextlib.suppress(OSError):
        os.unlink(directory / MARKER_NAME)
    with contextlib.suppress(OSError):
        os.rmdir(directory)  # fails, harmlessly, if anything else is in it


def prune(root: Path, stale_after: float = 3600.0) -> None:
    """Drop the cache's copies of files that no longer exist (temporary files come and go),
    and its own leftovers without a manifest older than ``stale_after``; runs when a new
    file enters the cache. Only proven entries (see :func:`is_entry`) are looked at."""
    try:
        children = list(os.scandir(root))
    except OSError:
        return
    now = time.time()
    for child in children:
        if not (_ENTRY.fullmatch(child.name) or _PENDING.fullmatch(child.name)):
            continue
        directory = Path(child.path)
        if not is_entry(directory):
            continue
        gone = False
        try:
            source = json.loads((directory / "manifest.json").read_text())["path"]
            gone = not isinstance(source, str) or not os.path.exists(source)
        except (OSError, ValueError, KeyError, TypeError, RecursionError):
            with contextlib.suppress(OSError):
                gone = now - child.stat(follow_symlinks=False).st_mtime > stale_after
        if gone:
            _remove_entry(directory)
