"""What a backend plugs into the sender (:mod:`.sender`), and its settings.

- :class:`Destination`: where a batch goes (origin, path, headers; secrets stay out of repr).
- :class:`Codec`: how items become a request body, and what a reply means (:class:`Reply`).
- :class:`SenderConfig`: buffering, batching, compression and retry settings.

Every item's outcome goes, exactly once, to the sender's ledger (the core's
:class:`~wideevents._core.record.SinkLedger` interface).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from .._core.secrets import shown
from .http import Origin, Response, make_compression

__all__ = [
    "SENT",
    "Codec",
    "Destination",
    "Reply",
    "SenderConfig",
    "backoff_delay",
    "reply_for_status",
]


@dataclass(frozen=True)
class Destination:
    """Where a batch goes. ``headers`` may carry secrets: they are never in ``repr()``."""

    origin: Origin
    path: str
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)


class Reply(NamedTuple):
    """What one HTTP response means for the batch it answered.

    ``action``: ``"done"`` (items not listed in ``rejected``/``retry`` were accepted),
    ``"retry"`` (send the whole batch again later), ``"split"`` (too large: halve and
    resend), ``"reject"`` (the whole batch was refused for ``reason``).
    ``rejected`` holds ``(item index, reason)``; ``retry`` item indices to resend.
    """

    action: str
    reason: str = ""
    rejected: Sequence[tuple[int, str]] = ()
    retry: Sequence[int] = ()


SENT = Reply("done")


def reply_for_status(status: int, retryable: frozenset[int]) -> Reply:
    """The usual meaning of a status: 2xx done, 413 split, ``retryable`` retry, else reject.

    Each backend states its own retryable statuses (``OTLP_RETRYABLE``,
    ``HONEYCOMB_RETRYABLE`` in the sinks): there is no default, so that no backend
    inherits another's rules.
    """
    if 200 <= status < 300:
        return SENT
    if status == 413:
        return Reply("split", "413")
    if status in retryable:
        return Reply("retry", str(status))
    return Reply("reject", str(status))


class Codec(Protocol):
    """How a backend speaks: request body from pre-encoded items, and what a reply means.

    ``encode`` returns the body as chunks, compressed as they come (keep them well under
    128 KB: the uncompressed body never exists whole). ``interpret`` is called for every
    response,
    whatever its status; it may log (once) and must not raise (if it does, the batch is
    dropped as "internal_error").

    Optional: ``decode(body: bytes) -> list[bytes]``, the inverse of ``encode``. With it,
    a batch in flight keeps only its compressed body (a fifth of the memory for JSON);
    items are decoded again only to split a batch (413) or resend some of its items.
    """

    content_type: str

    def encode(self, items: Sequence[bytes]) -> Iterable[bytes]: ...

    def interpret(self, response: Response, count: int) -> Reply: ...


@dataclass(frozen=True)
class SenderConfig:
    """Buffering, batching, compression and retry settings.

    Sizes are uncompressed item bytes. ``max_batch_events`` / ``max_batch_bytes`` bound a
    request; a partial batch waits at most ``send_interval`` seconds (none while a flush
    waits); up to ``max_in_flight`` requests run at once; ``buffer_events`` /
    ``buffer_bytes`` bound what waits (past them new items are dropped "buffer_full").
    A failed request is retried after ``backoff_delay`` up to ``max_attempts`` times and
    never after ``retry_deadline`` seconds from when its batch left the buffer.
    ``request_timeout`` may be ``math.inf`` (no limit on one request, as
    ``OTEL_EXPORTER_OTLP_TIMEOUT=0`` asks): the batch's ``retry_deadline`` still bounds it.
    """

    max_batch_events: int = 1000
    max_batch_bytes: int = 4_900_000
    send_interval: float = 0.2
    max_in_flight: int = 8
    buffer_events: int = 20_000
    buffer_bytes: int = 48 * 1024 * 1024
    compression: str = "zstd"
    compression_level: int | None = None
    request_timeout: float = 10.0
    max_attempts: int = 8
    retry_deadline: float = 30.0
    backoff_initial: float = 0.1
    backoff_max: float = 5.0

    def check(self) -> None:
        """Raise ValueError naming the first invalid setting."""
        for name in ("max_batch_events", "max_batch_bytes", "max_in_flight", "buffer_events",
                     "buffer_bytes", "max_attempts"):
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {shown(value)}")
        for name in ("send_interval", "request_timeout", "retry_deadline", "backoff_initial",
                     "backoff_max"):
            value = getattr(self, name)
            if name == "request_timeout" and value == float("inf"):
                continue  # no limit per request: retry_deadline bounds it
            if (type(value) not in (int, float) or not value > 0
                    or value == float("inf")):
                raise ValueError(
                    f"{name} must be a positive number of seconds, got {shown(value)}")
        make_compression(self.compression, self.compression_level)


def backoff_delay(
    attempt: int, initial: float, maximum: float, rand: Callable[[], float],
    retry_after: float | None = None,
) -> float:
    """Seconds to wait after failed ``attempt`` (1-based): capped exponential, "equal jitter".

    ``min(maximum, initial * 2**(attempt-1))`` scaled by a factor in [0.5, 1), or a
    server's ``Retry-After`` when that is longer. ``rand`` returns a float in [0, 1).
    """
    ceiling = min(maximum, initial * (2.0 ** min(attempt - 1, 60)))
    delay = ceiling * (0.5 + 0.5 * rand())
    if retry_after is not None and retry_after > delay:
        delay = retry_after
    return delay
