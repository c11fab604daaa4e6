"""API keys never appear in anything the library prints, logs or raises.

The scenario (``tests/support/apps/secrets_scenario.py``) runs in its own process with the
keys in its environment and covers wrong keys (401 from both receivers), faults, a hung
backend at shutdown, configuration errors whose input holds a key (every setting that
once echoed its value), backends whose replies reflect the keys (error bodies, per-event
errors, marker refusals, OTLP Status and partial-success messages), ``repr()``/``str()``
of sinks and clients, DEBUG logging of the ``wideevents``, ``libhoney`` and ``urllib3``
loggers with tracebacks, and events whose fields hold the keys. Its whole stdout and
stderr are scanned; canaries prove each channel was captured.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from tests.support.reliability import child_env, python, record_figure
from wideevents import ConfigurationError
from wideevents.sinks import HoneycombSink, OTLPSink

# Shaped like real keys (Honeycomb ingest key, classic key, a bearer token).
K1 = "hcaik_01jreliabilitytestkeyONEzq8w7e6r5t4y3u2i1o0pasdfghjklzxcvbn"
K2 = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
K3 = "tok_THREE_9a8b7c6d5e4f3a2b1c0d"
CANARIES = ("CANARY-STDOUT", "CANARY-STDERR", "CANARY-LIBHONEY", "CANARY-URLLIB3",
            "CANARY-WIDEEVENTS", "CANARY-TRACEBACK")


def fragments(key: str) -> list[str]:
    """The key and the 12-character windows of it (catches a key shown cut or wrapped)."""
    return [key] + [key[i:i + 12] for i in range(0, len(key) - 11, 6)]


def test_no_api_key_in_output_logs_or_errors() -> None:
    """Everything printed, logged or raised in the scenario is free of the three keys."""
    env = child_env(HONEYCOMB_API_KEY=K1, REL_SECOND_KEY=K2, REL_THIRD_KEY=K3)
    proc = subprocess.run(python("secrets_scenario"), env=env, capture_output=True,
                          timeout=120)
    text = proc.stdout.decode("utf-8", "replace") + proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 0, text[-3000:]
    assert [c for c in CANARIES if c not in text] == []
    leaks = [(key[:6], frag) for key in (K1, K2, K3) for frag in fragments(key) if frag in text]
    assert leaks == []
    [stats_line] = [line for line in proc.stdout.decode().splitlines() if line.startswith("STATS ")]
    stats: dict[str, Any] = json.loads(stats_line[6:])["sinks"]
    # The keys were really used: both receivers refused them, and the hung backend was cut off.
    assert stats["honeycomb"]["rejected"] == {"401": 30}
    assert stats["otlp"]["rejected"] == {"401": 30}
    assert stats["honeycomb#2"]["dropped"].get("shutdown") == 5, stats
    assert text.count("[REDACTED]") == 20 * 6  # six key-holding fields in 20 events
    # Each misplaced setting was refused with its value shown masked (recognisable start).
    for setting, start in (("HONEYCOMB_API_HOST", "hcai***"), ("OTEL_EXPORTER_OTLP_ENDPOINT",
                                                              "0f1e***"),
                           ("OTEL_EXPORTER_OTLP_TIMEOUT", "tok_***"),
                           ("OTEL_EXPORTER_OTLP_PROTOCOL", "hcai***"),
                           ("OTEL_EXPORTER_OTLP_COMPRESSION", "0f1e***"),
                           ("OTEL_RESOURCE_ATTRIBUTES", "hcai***")):
        assert any(line.startswith(f"env {setting}: ConfigurationError") and start in line
                   for line in text.splitlines()), setting
    # The reflecting backends were reached and their texts counted, masked.
    [mirror_line] = [line for line in proc.stdout.decode().splitlines()
                     if line.startswith("MIRROR ")]
    mirror: dict[str, Any] = json.loads(mirror_line[7:])["sinks"]
    assert mirror["honeycomb"]["rejected"]["400"] == 3
    assert [r for r in mirror["honeycomb"]["rejected"] if r.startswith("unknown key ")] != []
    assert mirror["otlp"]["rejected"] == {"400": 3, "partial_success": 1}
    assert "refused " in text and "dropped for " in text and "no markers for " in text
    record_figure("secrets scenario", "bytes of output scanned / key fragments found",
                  f"{len(text)} / 0")


@pytest.mark.parametrize("build", [
    pytest.param(lambda: HoneycombSink(api_key=K2, api_host=f"https://{K1}@api.honeycomb.io"),
                 id="honeycomb-host-userinfo"),
    pytest.param(lambda: OTLPSink(f"https://user:{K1}@collector:4318"), id="otlp-endpoint-userinfo"),
    pytest.param(lambda: OTLPSink("http://h", headers={f"x-honeycomb-team {K1}": "v"}),
                 id="otlp-header-name"),
])
def test_secrets_in_urls_and_header_names(build: Any) -> None:
    """A key misplaced in a URL's userinfo or a header name is not echoed in the error."""
    with pytest.raises(ConfigurationError) as caught:
        build()
    assert [f for f in fragments(K1) if f in str(caught.value)] == []
