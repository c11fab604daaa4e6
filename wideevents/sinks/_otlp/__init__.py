"""OTLP/HTTP: the sink and, beside it, its encoder and wire helpers.

- :mod:`._sink`: :class:`OTLPSink` (``OTEL_EXPORTER_OTLP_*`` configuration, export).
- :mod:`._encode`: logs or traces requests, protobuf (our encoder, checked against
  ``opentelemetry-proto``) or OTLP JSON.
- :mod:`._wire`: protobuf varints, attribute values, export responses.
"""

from ._sink import OTLPSink

__all__ = ["OTLPSink"]
