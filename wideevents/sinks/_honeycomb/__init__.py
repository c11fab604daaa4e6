"""Honeycomb: the sink, the Events API codec beside it, and the libhoney adapter.

- :mod:`._sink`: :class:`HoneycombSink` (configuration, markers, export).
- :mod:`._codec`: the Events API batch body and what its replies mean.
- :mod:`._libhoney`: :class:`HoneycombTransmission`, libhoney's transmission interface on
  the shared sender (public as ``wideevents.integrations.libhoney.HoneycombTransmission``).
"""

from ._libhoney import HoneycombTransmission
from ._sink import HoneycombSink

__all__ = ["HoneycombSink", "HoneycombTransmission"]
