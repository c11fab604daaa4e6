"""The sink interface: what the pipeline hands a sink, and where a sink reports outcomes.

A sink receives batches of finished, normalised, serialised events from the pipeline's
worker thread. The minimum is one method, ``export(batch)``; everything else is optional:

- ``export(batch: Sequence[Record]) -> None``: deliver (or hand off) the batch.
- ``flush(timeout: float) -> bool``: deliver what is held; True when nothing is pending.
- ``close(timeout: float) -> bool``: flush, then release resources.
- ``bind(ledger: SinkLedger) -> None``: called once by the pipeline before the first
  export. A sink that binds reports every record's outcome itself through the ledger
  (``sent``/``rejected``/``dropped``), possibly later from its own sender threads. A sink
  that does not bind is synchronous: when ``export`` returns, the batch counts as sent;
  when it raises, as dropped with reason ``export_error``.
- ``on_start(event) -> None``: called on the request thread when an event starts.
- ``reset_after_fork() -> None``: called in a forked child; drop the parent's buffered
  records (the parent delivers them) and any threads or connections.
- ``name``: the key under ``stats()["sinks"]`` (default: the class name, lowercased).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

__all__ = ["Record", "Sink", "SinkLedger"]


class Record:
    """One finished event as the sinks see it: the final flat dict and its JSON once."""

    __slots__ = ("fields", "json")

    def __init__(self, fields: dict[str, Any], json: bytes) -> None:
        self.fields = fields
        self.json = json

    def __repr__(self) -> str:
        return f"Record({self.fields.get('name')!r}, {len(self.json)} bytes)"


class SinkLedger(Protocol):
    """Where a binding sink reports outcomes; each record must be reported exactly once.

    ``fields_dropped`` counts fields a sink had to remove from events (an SDK's attribute
    limit) in ``stats()["fields"]["dropped"]``. The pipeline's implementation is
    :class:`wideevents._core.ledger.Ledger`.
    """

    def sent(self, n: int = 1) -> None: ...

    def rejected(self, reason: str, n: int = 1) -> None: ...

    def dropped(self, reason: str, n: int = 1) -> None: ...

    def fields_dropped(self, reason: str, n: int = 1) -> None: ...


@runtime_checkable
class Sink(Protocol):
    """The one required method of a sink (see the module docstring for the optional ones)."""

    def export(self, batch: Sequence[Record]) -> None: ...
