"""``FileSink``: JSON lines appended to a file, optionally rotated by size.

Every ``os.write`` carries whole lines only, on a descriptor opened with ``O_APPEND``, so
several processes can share one file without interleaving inside a line. ``{pid}`` in the
path gives each process (and each forked worker) its own file.

The sink only ever writes to or closes a descriptor it opened itself: ``_fd`` is -1 from
the moment it closes one until a reopen succeeds. When reopening fails (after a rotation,
or in a forked child with ``{pid}``: directory removed, read-only, no inodes, descriptor
limit), the lines are dropped and counted ``write_error`` and the next export tries to
reopen again, so writing resumes by itself; a descriptor number the host gets meanwhile is
never touched.

``flush``/``close`` return False when lines were dropped since the previous
``flush``/``close`` returned (once per loss), True otherwise: writes are unbuffered.
"""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Sequence
from typing import Any

from .._core.log import log_once
from .._core.record import Record
from .._core.secrets import mask, shown
from .._errors import ConfigurationError

__all__ = ["FileSink"]

_CHUNK = 1 << 20  # bytes per write: bounded, made only of whole lines
# Lines per write. With os.writev the lines go to the kernel as they are (two iovecs a
# line, IOV_MAX is 1024): no joined copy, whose fresh multi-megabyte buffer cost about
# 1 µs per event in page faults and copying (docs/benchmarks.md). A batch is one system
# call, which matters: each call releases the GIL, and winning it back costs the worker.
_LINES = 512
_WRITEV = getattr(os, "writev", None)
_NL = b"\n"


class FileSink:
    """Append JSON lines to ``path`` (``{pid}`` allowed); rotate at ``max_bytes``.

    Rotation renames ``path`` to ``path.1`` (``path.1`` to ``path.2``...), keeping
    ``backup_count`` old files. Write errors (disk full, file too large, a file that cannot
    be reopened) drop the lines concerned, counted under reason ``write_error``; later
    writes are retried (reopening first when needed). Lines exported after ``close()`` are
    dropped ``shutdown``.
    """

    name = "file"

    def __init__(self, path: str | os.PathLike[str], *, max_bytes: int | None = None,
                 backup_count: int = 5) -> None:
        self._template = os.fspath(path)
        if not self._template:
            raise ConfigurationError("FileSink(path=''): give a file path such as 'events.jsonl'")
        if max_bytes is not None and (not isinstance(max_bytes, int) or max_bytes < 1024):
            raise ConfigurationError(
                f"FileSink(max_bytes={shown(max_bytes)}): use bytes >= 1024 or None")
        if not isinstance(backup_count, int) or backup_count < 0:
            raise ConfigurationError(
                f"FileSink(backup_count={shown(backup_count)}): use an integer >= 0")
        self.max_bytes = max_bytes
        self.backup_count = backup_count
        self._ledger: Any = None
        self._lock = threading.Lock()
        self._fd = -1  # ours while >= 0; -1 whenever we hold no descriptor
        self._size = 0
        self._closed = False
        self._lost = False  # lines dropped since flush/close last returned
        self.path = ""
        self._open()

    def _open(self) -> None:
        try:
            path = self._template.replace("{pid}", str(os.getpid()))
        except Exception as exc:  # noqa: BLE001 - a user's path template: any failure is a config error
            raise ConfigurationError(
                f"FileSink path {shown(self._template)} is invalid: {mask(str(exc))}") from None
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0),
                         0o644)
        except OSError as exc:
            raise ConfigurationError(
                f"FileSink cannot open {shown(path)} for appending: {exc.strerror}; "
                "check that the directory exists and is writable, or pick another path"
            ) from None
        self._fd = fd
        self.path = path
        try:
            self._size = os.fstat(fd).st_size
        except OSError:
            self._size = 0

    def bind(self, ledger: Any) -> None:
        self._ledger = ledger

    def _reopen(self) -> bool:
        """Open the file again after a failed reopen; True when the sink owns a descriptor."""
        if self._fd >= 0:
            return True
        try:
            self._open()
        except ConfigurationError as exc:
            log_once("file-reopen", "wideevents: %s; events are dropped and counted "
                     "(write_error) until it can be opened again", exc)
            return False
        return True

    def _close_fd(self) -> None:
        """Close our descriptor and forget its number at once: the number may be reused by
        the host as soon as it is closed."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            try:
                os.close(fd)
            except OSError:
                pass

    def export(self, batch: Sequence[Record]) -> None:
        written = failed = 0
        with self._lock:
            if self._closed:
                self._lost = True
                if self._ledger is not None and batch:
                    self._ledger.dropped("shutdown", len(batch))
                return
            i, n = 0, len(batch)
            while i < n:
                if self._fd < 0 and not self._reopen():
                    failed += n - i
                    break
                limit = _CHUNK
                if self.max_bytes is not None:
                    if self._size and self._size + len(batch[i].json) + 1 > self.max_bytes:
                        if not self._rotate():
                            failed += n - i
                            break
                    limit = min(limit, max(1, self.max_bytes - self._size))
                j, size = i, 0
                # Whole lines only; at least one line per write, even one longer than the limit.
                stop = min(n, i + _LINES)
                while j < stop and (size == 0 or size + len(batch[j].json) + 1 <= limit):
                    size += len(batch[j].json) + 1
                    j += 1
                parts: list[bytes] = []
                for record in batch[i:j]:
                    parts += (record.json, _NL)
                done = self._write(parts, size)
                if done < size:
                    # A short write (disk full, file size limit): the lines that reached the
                    # file count as sent, and a torn last line is cut off again.
                    whole = end = 0
                    while end + len(batch[i + whole].json) + 1 <= done:
                        end += len(batch[i + whole].json) + 1
                        whole += 1
                    self._cut_torn_line(done - end)
                    written += whole
                    failed += j - i - whole
                else:
                    written += j - i
                i = j
            if failed:
                self._lost = True
        if self._ledger is not None:
            if written:
                self._ledger.sent(written)
            if failed:
                self._ledger.dropped("write_error", failed)

    def _write(self, parts: list[bytes], size: int) -> int:
        """Append ``parts`` (``size`` bytes in all) in one system call when the kernel takes
        them whole; return how many bytes reached the file (``size`` unless it failed)."""
        done = 0
        if self._fd < 0:
            return 0  # never write to a number we do not own
        try:
            if _WRITEV is not None:
                done = _WRITEV(self._fd, parts)
                self._size += done
            if done < size:  # no writev, or a short write: the rest as plain writes
                view = memoryview(b"".join(parts))
                while done < size:
                    n = os.write(self._fd, view[done:])
                    done += n
                    self._size += n
        except OSError as exc:
            log_once(f"file-write:{exc.errno}", "wideevents: FileSink could not write to %s (%s); "
                     "events are dropped and counted until writes succeed", mask(self.path),
                     errno.errorcode.get(exc.errno or 0, str(exc.errno)))
        return done

    def _cut_torn_line(self, nbytes: int) -> None:
        """Remove the ``nbytes`` of a partly written line from the end of the file.

        Only when the file still ends with them (no other process appended since): the next
        line would otherwise be glued to the torn one.
        """
        if nbytes <= 0 or self._fd < 0:
            return
        try:
            end = os.lseek(self._fd, 0, os.SEEK_CUR)
            if os.fstat(self._fd).st_size == end:
                os.ftruncate(self._fd, end - nbytes)
                self._size -= nbytes
        except OSError as exc:
            log_once("file-torn-line", "wideevents: FileSink could not remove a partly written "
                     "line from %s: %s", mask(self.path), exc)

    def _rotate(self) -> bool:
        """Rotate and reopen; True when the sink owns a descriptor again."""
        self._close_fd()
        try:
            if self.backup_count > 0:
                for k in range(self.backup_count - 1, 0, -1):
                    src = f"{self.path}.{k}"
                    if os.path.exists(src):
                        os.replace(src, f"{self.path}.{k + 1}")
                os.replace(self.path, f"{self.path}.1")
            else:
                os.truncate(self.path, 0)
        except OSError as exc:
            log_once("file-rotate", "wideevents: FileSink could not rotate %s: %s",
                     mask(self.path), mask(str(exc)))
        return self._reopen()

    def _outcome(self) -> bool:
        lost, self._lost = self._lost, False
        return not lost

    def flush(self, timeout: float = 5.0) -> bool:
        """True unless lines were dropped since the previous flush/close returned: writes
        are unbuffered, the kernel has every line already."""
        with self._lock:
            return self._outcome()

    def close(self, timeout: float = 5.0) -> bool:
        """Close the file; later exports are dropped ``shutdown``. True as for :meth:`flush`."""
        with self._lock:
            self._closed = True
            self._close_fd()
            return self._outcome()

    def reset_after_fork(self) -> None:
        self._lock = threading.Lock()
        if "{pid}" in self._template and not self._closed:
            # The inherited descriptor is the parent's file: release our copy, open our own.
            self._close_fd()
            self._size = 0
            try:
                self._open()
            except ConfigurationError as exc:
                log_once("file-fork", "wideevents: %s; events are dropped and counted "
                         "(write_error) until it can be opened", exc)

    def __repr__(self) -> str:
        return f"FileSink({shown(self.path)})"
