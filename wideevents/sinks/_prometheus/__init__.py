"""Prometheus: metrics derived from the events (docs/prometheus.md).

- :mod:`._sink`: :class:`PrometheusSink` (what is counted, the cardinality guard).
- :mod:`._metrics`: the ``prometheus_client`` metrics and the weighted-observation
  extension (imported when a sink is built: the extra is needed only then).
- :mod:`._spec`: the validated settings; :mod:`._rules`: ``wideevents prometheus rules``.
"""

from ._sink import PrometheusSink

__all__ = ["PrometheusSink"]
