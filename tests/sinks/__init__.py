"""The sinks: local ones, Honeycomb, OTLP, the OpenTelemetry bridge sink, the sender."""
