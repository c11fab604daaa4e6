"""Who emits the events: ``service.name`` and the other static fields.

``service.name`` is resolved the same way everywhere (the pipeline, the Honeycomb dataset
default, the OTLP resource): the explicit argument, else ``OTEL_SERVICE_NAME``, else
``service.name`` in ``OTEL_RESOURCE_ATTRIBUTES``, else ``unknown_service:<process name>``
as the OpenTelemetry specification does.

Every entry of ``OTEL_RESOURCE_ATTRIBUTES`` is a static field of every event, whatever the
sink (JSON lines, Honeycomb, OTLP), as OpenTelemetry's resource is on every span and log
record. Precedence, highest first: ``configure(service_name=..., static_fields=...)``;
then ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES``; then detected values
(``host.name``, ``process.pid``; ``service.version`` from ``SERVICE_VERSION``; the
container, Kubernetes, cloud and runtime fields of :mod:`.resource`, passed in as
``detected``).
"""

from __future__ import annotations

import os
import socket
import sys
import urllib.parse
from collections.abc import Mapping
from typing import Any

from .._errors import ConfigurationError
from .secrets import shown

__all__ = ["default_service_name", "parse_resource_attributes", "static_fields"]


def parse_resource_attributes(raw: str, *, strict: bool = False) -> dict[str, str]:
    """Parse ``OTEL_RESOURCE_ATTRIBUTES`` (``k=v,k2=v2``, values percent-encoded)."""
    out: dict[str, str] = {}
    for item in raw.split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            if strict:
                raise ConfigurationError(
                    f"OTEL_RESOURCE_ATTRIBUTES has an entry without 'key=value': "
                    f"{shown(item, 80)}; "
                    "use comma-separated key=value pairs, e.g. "
                    "'service.name=ranker,deployment.environment.name=prod'"
                )
            continue
        out[key.strip()] = urllib.parse.unquote(value.strip())
    return out


def _process_name() -> str:
    name = os.path.basename(sys.executable or "") or os.path.basename(sys.argv[0] if sys.argv else "")
    return name or "python"


def default_service_name(explicit: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """The ``service.name`` every part of wideevents uses."""
    if explicit:
        return explicit
    env = os.environ if env is None else env
    name = env.get("OTEL_SERVICE_NAME", "").strip()
    if name:
        return name
    attrs = parse_resource_attributes(env.get("OTEL_RESOURCE_ATTRIBUTES", ""))
    if attrs.get("service.name"):
        return attrs["service.name"]
    return f"unknown_service:{_process_name()}"


def static_fields(
    service_name: str | None = None,
    extra: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    detected: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The fields added to every event; recomputed in a forked child (``process.pid``).

    Precedence (module docstring): ``extra`` and ``service_name``, then the environment's
    resource attributes, then detected values (``detected``: :func:`.resource.detect`).
    """
    env = os.environ if env is None else env
    attrs = parse_resource_attributes(env.get("OTEL_RESOURCE_ATTRIBUTES", ""))
    fields: dict[str, Any] = {"service.name": default_service_name(service_name, env)}
    version = attrs.get("service.version") or env.get("SERVICE_VERSION")
    if version:
        fields["service.version"] = version
    environment = attrs.get("deployment.environment.name") or attrs.get("deployment.environment")
    if environment:
        fields["deployment.environment.name"] = environment
    fields["host.name"] = attrs.get("host.name") or socket.gethostname()
    fields["process.pid"] = os.getpid()  # always this process's: a forked child recomputes it
    for key, value in attrs.items():
        if key not in fields and key != "process.pid":
            fields[key] = value
    if detected:
        for key, value in detected.items():
            fields.setdefault(key, value)
    if extra:
        fields.update(extra)
    return fields
