"""Framework integrations: ASGI, WSGI, logging bridges, OpenTelemetry correlation."""
