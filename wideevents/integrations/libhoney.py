"""libhoney users: keep your ``libhoney.Client``, send through wideevents' sender.

>>> import libhoney
>>> from wideevents.integrations.libhoney import HoneycombTransmission
>>> client = libhoney.Client(writekey=KEY, dataset="ranker",
...                          transmission_impl=HoneycombTransmission())

:class:`HoneycombTransmission` implements libhoney's transmission interface with the
sender ``HoneycombSink`` uses: batching that honours its settings, zstd or gzip bodies,
retries with backoff and jitter, a bounded ``close()``, no statsd packets on the
caller's thread, fork handling, and each event's outcome on libhoney's response queue.
"""

from __future__ import annotations

from ..sinks._honeycomb import HoneycombTransmission

__all__ = ["HoneycombTransmission"]
