"""libhoney's transmission interface on the shared sender.

:class:`HoneycombTransmission` implements what ``libhoney.Client(transmission_impl=...)``
calls (``start``, ``send``, ``flush``, ``close``, ``get_response_queue``) with the
sender of :mod:`wideevents._transport`: batching that honours its settings, compression,
retries with backoff, a bounded ``close()``, no statsd packets, fork handling.
``HoneycombSink`` uses it under its own libhoney client; any plain libhoney user can too
(public as ``wideevents.integrations.libhoney.HoneycombTransmission``).
"""

from __future__ import annotations

import queue
from collections.abc import Sequence
from typing import Any

from ..._core.ledger import Ledger
from ..._core.log import log_once
from ..._core.record import SinkLedger
from ..._transport import Destination, Sender, SenderConfig
from ._codec import HoneycombCodec, destination, element

__all__ = ["HoneycombTransmission"]


class HoneycombTransmission:
    """A libhoney transmission (``Client(transmission_impl=...)``) backed by our sender.

    Implements libhoney's interface: ``start()``, ``send(ev)``, ``flush()``, ``close()``,
    ``get_response_queue()``. Batches per (api_host, writekey, dataset) with honoured size
    and interval settings, compresses, retries with backoff, and bounds ``close()`` by
    ``close_timeout``. With ``responses=True`` each event's outcome is put on the response
    queue as libhoney does (``status_code``, ``metadata``, ``error``; ``duration`` is 0;
    events given up at close while their request was in flight get no response).
    Outcome counts are in :meth:`stats` (or a ledger given to :meth:`bind`).
    """

    def __init__(self, *, config: SenderConfig | None = None, responses: bool = True,
                 max_responses: int = 2000, close_timeout: float = 5.0,
                 name: str = "honeycomb") -> None:
        self._responses: queue.Queue[Any] = queue.Queue(maxsize=max_responses)
        self._own_ledger = Ledger(name)
        self._sender = Sender(name, HoneycombCodec(name), config, ledger=self._own_ledger,
                              on_tagged=self._respond if responses else None)
        self._close_timeout = close_timeout
        self._tagged = responses
        self._dests: dict[tuple[str, str, str], Destination] = {}
        self._last: tuple[Any, Any, Any, Destination | None] = (None, None, None, None)
        self._staging: _Staging | None = None

    def __repr__(self) -> str:
        return f"HoneycombTransmission(pending={self._sender.pending})"

    def _respond(self, outcome: str, reason: str, tags: Sequence[object], status: int) -> None:
        """Put each tagged event's outcome on libhoney's response queue (sender's lock held)."""
        if outcome == "sent":
            code, error = 202, ""
        else:
            # Per-event rejections arrive inside an HTTP 200; libhoney reports them as 4xx.
            code = 400 if (outcome == "rejected" and status == 200) else status
            error = reason
        for metadata in tags:
            try:
                self._responses.put_nowait({"status_code": code, "duration": 0,
                                            "metadata": metadata, "body": "", "error": error})
            except queue.Full:
                break  # as libhoney does: responses nobody reads are discarded

    # -- libhoney's interface ---------------------------------------------------------------
    def start(self) -> None:
        """Nothing to do: sender threads start on first use (and again after fork)."""

    def send(self, ev: Any) -> None:
        """Queue one libhoney event; never blocks on the network, never raises."""
        staging = self._staging
        if staging is not None and ev.__class__ is staging.event_class:
            # HoneycombSink.export(): its own events, bound to its client; one submit later.
            try:
                staging.elements.append(element(ev))
            except Exception as exc:  # noqa: BLE001 - counted by the sink
                staging.failed += 1
                self._encode_failed(exc)
            return
        try:
            item = element(ev)
            dest = self.destination(ev.api_host, ev.writekey, ev.dataset)
        except Exception as exc:  # noqa: BLE001 - a value we cannot encode must not raise
            self._encode_failed(exc)
            self._sender.drop("encode_error", 1,
                              [getattr(ev, "metadata", None)] if self._tagged else None)
            return
        self._sender.submit(dest, (item,), (ev.metadata,) if self._tagged else None)

    def _encode_failed(self, exc: Exception) -> None:
        log_once(f"{self._sender.name}:encode:{type(exc).__name__}",
                 "wideevents: %s: an event could not be encoded (%s) and was dropped",
                 self._sender.name, type(exc).__name__)

    def flush(self) -> None:
        """Deliver what is buffered, waiting at most ``close_timeout``."""
        self._sender.flush(self._close_timeout)

    def close(self) -> None:
        """Deliver what is buffered within ``close_timeout``; the rest is dropped "shutdown"."""
        self._sender.close(self._close_timeout)
        try:
            self._responses.put_nowait(None)  # libhoney: nothing more will come
        except queue.Full:
            pass

    def get_response_queue(self) -> queue.Queue[Any]:
        return self._responses

    # -- wideevents' interface ----------------------------------------------------------------
    def bind(self, ledger: SinkLedger) -> None:
        """Report outcome counts to ``ledger`` from now on."""
        self._sender.ledger = ledger

    @property
    def ledger(self) -> SinkLedger:
        """Where outcome counts go (a detached :class:`Ledger` until :meth:`bind`)."""
        return self._sender.ledger

    def reset_after_fork(self) -> None:
        """In a forked child: forget the parent's buffer (unreported), threads, connections."""
        self._staging = None
        self._sender.reset_after_fork()

    def stats(self) -> dict[str, object]:
        """Outcome counts when no ledger was bound, plus ``pending``."""
        ledger = self._sender.ledger
        out = ledger.snapshot() if ledger is self._own_ledger else {}
        out["pending"] = self._sender.pending
        return out

    @property
    def sender(self) -> Sender:
        return self._sender

    def destination(self, api_host: Any, writekey: Any, dataset: Any) -> Destination:
        """The Destination for libhoney's (api_host, writekey, dataset), cached."""
        last = self._last
        if api_host is last[0] and writekey is last[1] and dataset is last[2] and last[3]:
            return last[3]
        key = (str(api_host), str(writekey), str(dataset))
        dest = self._dests.get(key)
        if dest is None:
            dest = destination(*key)
            if len(self._dests) < 256:
                self._dests[key] = dest
        self._last = (api_host, writekey, dataset, dest)
        return dest

    def submit(self, dest: Destination, elements: Sequence[bytes]) -> None:
        """Queue ready-made batch elements (see :func:`record_elements`)."""
        self._sender.submit(dest, elements)

    def begin_batch(self, event_class: type, dest: Destination) -> _Staging:
        """Collect ``send()`` of ``event_class`` events for ``dest`` until :meth:`end_batch`.

        For ``HoneycombSink.export`` (which serialises calls): one buffer submit per batch
        instead of one per event. Other events sent meanwhile take the usual path.
        """
        staging = self._staging = _Staging(event_class, dest)
        return staging

    def end_batch(self) -> None:
        """Submit what :meth:`begin_batch` collected."""
        staging, self._staging = self._staging, None
        if staging is not None and staging.elements:
            self._sender.submit(staging.dest, staging.elements)


class _Staging:
    __slots__ = ("dest", "elements", "event_class", "failed")

    def __init__(self, event_class: type, dest: Destination) -> None:
        self.event_class = event_class
        self.dest = dest
        self.elements: list[bytes] = []
        self.failed = 0
