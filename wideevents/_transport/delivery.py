"""Delivering one batch: encode, compress, POST, read the reply, retry, split, settle.

Used by :class:`.sender.Sender`, one call per batch on a sender thread. Every
item of the batch is settled exactly once through the sender's ``settle`` callback: sent,
rejected (the backend said no), or dropped "retries_exhausted" after ``max_attempts`` or
the batch's deadline. A whole-batch 413 halves the batch; per-item results resend only
the items the backend asked for. When the codec can ``decode``, a batch in flight holds
only its compressed body; items are decoded again only for those two rare paths.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence

from .._core.log import log_once
from .._core.secrets import mask
from .contract import Codec, Destination, Reply, SenderConfig, backoff_delay
from .http import TRANSPORT_ERRORS, USER_AGENT, Compress, ConnectionPool, make_compression
from .reasons import Reasons

__all__ = ["Batch", "Delivery", "Settle", "transport_cause"]

_monotonic = time.monotonic

Settle = Callable[["Batch", str, str, int, "Sequence[object] | None", int], None]


# Headers that describe the body: always the sender's, whatever a destination says.
_BODY_HEADERS = frozenset({"content-type", "content-encoding", "content-length"})


def _merged(base: dict[str, str], extra: Sequence[tuple[str, str]]) -> dict[str, str]:
    """``base`` with a destination's headers, names compared case-insensitively (HTTP
    header names are: RFC 9110, section 5.1), so that a ``user-agent`` given by the user
    replaces ours rather than travelling beside it; the body's headers stay ours."""
    if not extra:
        return dict(base)
    names = {k.lower(): k for k in base}
    out = dict(base)
    for name, value in extra:
        low = name.lower()
        if low in _BODY_HEADERS:
            continue
        if low in names:
            del out[names[low]]
        out[name] = value
    return out


def transport_cause(exc: BaseException) -> str:
    """A short, stable name for a transport failure (the reason logged once per kind)."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "connection_refused"
    if isinstance(exc, (ConnectionResetError, BrokenPipeError)):
        return "connection_reset"
    return type(exc).__name__


class Batch:
    """Items taken from the buffer together; ``unreported`` counts those not yet settled."""

    __slots__ = ("aborted", "deadline", "dest", "items", "tags", "unreported")

    def __init__(self, dest: Destination, items: list[bytes], tags: list[object] | None,
                 deadline: float) -> None:
        self.dest = dest
        self.items: list[bytes] | None = items
        self.tags = tags
        self.unreported = len(items)
        self.deadline = deadline
        self.aborted = False


class _Part:
    """Items on their way; ``items`` is handed over (set to None) once they are encoded."""

    __slots__ = ("items", "tags")

    def __init__(self, items: list[bytes] | None, tags: list[object] | None) -> None:
        self.items = items
        self.tags = tags


class Delivery:
    """Sends batches for one sender (codec, settings, compressors); thread-safe."""

    def __init__(self, name: str, codec: Codec, config: SenderConfig, settle: Settle) -> None:
        self.name = name
        self._codec = codec
        self._config = config
        self._settle = settle
        compression = make_compression(config.compression, config.compression_level)
        self._new_compressor = compression.new_compressor
        self._compressors: list[Compress] = []  # shared: as many as compress at once
        self._decompress = compression.decompress
        self._decode: Callable[[bytes], list[bytes]] | None = getattr(codec, "decode", None)
        headers = {"Content-Type": codec.content_type, "User-Agent": USER_AGENT}
        if compression.encoding:
            headers["Content-Encoding"] = compression.encoding
        self._base_headers = headers
        self._random = random.Random()
        # Whatever a codec says, rejection reasons (stats() keys) stay few and masked.
        self._reasons = Reasons(limit=64)

    def _compress(self, chunks: Iterable[bytes]) -> bytes:
        pool = self._compressors
        try:
            compress = pool.pop()
        except IndexError:
            compress = self._new_compressor()
        try:
            return compress(chunks)
        finally:
            pool.append(compress)

    def deliver(self, pool: ConnectionPool, batch: Batch, abort: threading.Event) -> None:
        """Send ``batch`` until every item is settled, or ``abort`` is set by close()."""
        parts = [_Part(batch.items, batch.tags)]
        batch.items = None  # the part owns them now, and lets go of them once encoded
        while parts and not batch.aborted:
            parts.extend(self._send_part(pool, batch, parts.pop(), abort))

    def _recover(self, body: bytes, count: int) -> list[bytes]:
        assert self._decode is not None
        items = self._decode(self._decompress(body))
        if len(items) != count:
            raise ValueError(f"decoded {len(items)} items, expected {count}")
        return items

    def _send_part(self, pool: ConnectionPool, batch: Batch, part: _Part,
                   abort: threading.Event) -> list[_Part]:
        """Send one part until it is settled; return sub-parts still to send (after a 413)."""
        cfg = self._config
        dest = batch.dest
        headers = _merged(self._base_headers, dest.headers)
        items, tags, part.items = part.items, part.tags, None
        assert items is not None
        count = len(items)
        body = self._compress(self._codec.encode(items))
        if self._decode is not None:
            items = None  # in flight, only the compressed body is kept
        attempt = 0
        while True:
            if batch.aborted:
                return []  # close() gave up on it: do not send what was counted as dropped
            attempt += 1
            timeout = min(cfg.request_timeout, batch.deadline - _monotonic())
            if timeout <= 0:
                self._exhausted(batch, count, tags, attempt - 1, "deadline")
                return []
            status = 0
            retry_after = None
            try:
                response = pool.post(dest.origin, dest.path, body, headers, timeout)
            except TRANSPORT_ERRORS as exc:
                if batch.aborted:
                    return []
                reply = Reply("retry", transport_cause(exc))
                log_once(f"{self.name}:transient:{reply.reason}",
                         "wideevents: %s: %s talking to %s; retrying with backoff",
                         self.name, reply.reason, mask(str(dest.origin)))
            else:
                status = response.status
                retry_after = response.retry_after
                if response.truncated:
                    log_once(f"{self.name}:long-reply",
                             "wideevents: %s: a reply from %s (HTTP %d) was longer than %d "
                             "bytes; only its start was read", self.name,
                             mask(str(dest.origin)), status, len(response.body))
                reply = self._codec.interpret(response, count)
            if reply.action == "done":
                if not reply.rejected and not reply.retry:
                    self._settle(batch, "sent", "", count, tags, status)
                    return []
                if items is None:
                    items = self._recover(body, count)
                items, tags = self._settle_items(batch, reply, items, tags, status)
                if not items:
                    return []
                count = len(items)
                body = self._compress(self._codec.encode(items))
                if self._decode is not None:
                    items = None
            elif reply.action == "split":
                if count > 1:
                    if items is None:
                        items = self._recover(body, count)
                    mid = count // 2
                    first = _Part(items[:mid], tags[:mid] if tags is not None else None)
                    second = _Part(items[mid:], tags[mid:] if tags is not None else None)
                    return [second, first]
                self._settle(batch, "rejected", self._reasons.reason(reply.reason), 1, tags,
                             status)
                return []
            elif reply.action == "reject":
                self._settle(batch, "rejected", self._reasons.reason(reply.reason), count, tags,
                             status)
                return []
            elif status:
                log_once(f"{self.name}:transient:{reply.reason}",
                         "wideevents: %s: HTTP %s from %s; retrying with backoff",
                         self.name, reply.reason, mask(str(dest.origin)))
            if attempt >= cfg.max_attempts:
                self._exhausted(batch, count, tags, attempt, reply.reason)
                return []
            delay = backoff_delay(attempt, cfg.backoff_initial, cfg.backoff_max,
                                  self._random.random, retry_after)
            if _monotonic() + delay >= batch.deadline:
                self._exhausted(batch, count, tags, attempt, reply.reason)
                return []
            pool.in_backoff = True  # waiting on the backend's recovery (Sender: "blocked")
            try:
                if abort.wait(delay) or batch.aborted:
                    return []
            finally:
                pool.in_backoff = False

    def _settle_items(self, batch: Batch, reply: Reply, items: list[bytes],
                      tags: list[object] | None, status: int
                      ) -> tuple[list[bytes], list[object] | None]:
        """Report per-item results; return the items (and tags) to retry."""
        n = len(items)
        state: list[str | None] = [None] * n  # None = sent, "" = retry, else rejection reason
        for i in reply.retry:
            if 0 <= i < n:
                state[i] = ""
        bounded = self._reasons.reason
        for i, reason in reply.rejected:
            if 0 <= i < n:
                state[i] = bounded(reason or "rejected")
        groups: dict[str | None, list[int]] = {}
        for i, s in enumerate(state):
            groups.setdefault(s, []).append(i)
        for key, idx in groups.items():
            if key == "":
                continue
            group_tags = [tags[i] for i in idx] if tags is not None else None
            if key is None:
                self._settle(batch, "sent", "", len(idx), group_tags, status)
            else:
                self._settle(batch, "rejected", key, len(idx), group_tags, status)
        again = groups.get("", [])
        return [items[i] for i in again], ([tags[i] for i in again] if tags is not None else None)

    def _exhausted(self, batch: Batch, count: int, tags: list[object] | None,
                   attempts: int, cause: str) -> None:
        log_once(f"{self.name}:retries_exhausted:{cause}",
                 "wideevents: %s: gave up on %d events after %d attempts (last error: %s); "
                 "they are counted as dropped", self.name, count, attempts, cause)
        self._settle(batch, "dropped", "retries_exhausted", count, tags, 0)
