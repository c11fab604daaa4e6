"""The core: events, the pipeline, value rules, instrumentation, processes, the public surface."""
