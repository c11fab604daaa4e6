"""A key pasted into the wrong setting never appears in a ConfigurationError, and the
user still recognises what they wrote (issue 16, item 12).

Every setting below once echoed its value verbatim. The message now shows it through
``wideevents._core.secrets.mask``: a URL's userinfo and query values hidden, key-shaped
tokens (20+ letters, digits, ``_``, ``-``, with letters and digits alternating at least
twice) shortened to their first four characters and their length; names that merely end
in a number stay readable.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import wideevents
from tests.support.hostile import Hostile
from wideevents import ConfigurationError
from wideevents._core.secrets import clip, mask, shown
from wideevents.sinks import FileSink, HoneycombSink, MemorySink, OTelSink, OTLPSink

# Shaped like real keys: a Honeycomb ingest key, a classic hex key, a bearer token.
K1 = "hcaik_01jmaskingtestkeyONEzq8w7e6r5t4y3u2i1o0pasdfghjklzxcvbnm"
K2 = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
K3 = "tok_THREE_9a8b7c6d5e4f3a2b1c0d"


def fragments(key: str) -> list[str]:
    """The key and its 12-character windows (a key shown cut or wrapped still leaks)."""
    return [key] + [key[i:i + 12] for i in range(0, len(key) - 11, 6)]


def leaks(text: str) -> list[str]:
    return [f for key in (K1, K2, K3) for f in fragments(key) if f in text]


def error_of(build: Callable[[], Any]) -> str:
    with pytest.raises(ConfigurationError) as caught:
        build()
    return str(caught.value)


# -- the masking rules ----------------------------------------------------------------------
@pytest.mark.parametrize(("text", "expected"), [
    (K1, f"hcai***({len(K1)} chars)"),
    (f"https://user:{K2}@api.example.com/v1?api_key={K1}&team=a#{K3}",
     "https://***@api.example.com/v1?api_key=***&team=***#***"),
    (f"x-honeycomb-team={K3}", f"x-honeycomb-team=tok_***({len(K3)} chars)"),
    ("https://api.honeycomb.io", "https://api.honeycomb.io"),
    ("service.name=ranker,deployment.environment.name=prod",
     "service.name=ranker,deployment.environment.name=prod"),
    ("Event has too many columns.", "Event has too many columns."),
    ("averyveryverylongwordwithoutdigits", "averyveryverylongwordwithoutdigits"),
    ("/var/log/test_unwritable_file_path_0/events_2024_05_01.jsonl",
     "/var/log/test_unwritable_file_path_0/events_2024_05_01.jsonl"),
    ("trace 4bf92f3577b34da6a3ce929d0e0e4736", "trace 4bf9***(32 chars)"),
])
def test_mask_hides_secrets_and_keeps_the_rest(text: str, expected: str) -> None:
    """URL userinfo, query values, fragments and key-shaped tokens are masked; words,
    hosts and attribute names are kept."""
    assert expected == mask(text)


def test_mask_cuts_after_masking() -> None:
    """The limit applies to the masked text: a key at the cut is never half shown."""
    text = "x" * 190 + " " + K1
    out = mask(text, 200)
    assert (leaks(out), len(out) <= 200, out.endswith("...")) == ([], True, True)


def test_clip_never_leaves_the_start_of_a_token() -> None:
    """clip() drops a token the cut would split, whole."""
    assert "key: " == clip("key: " + K2, 12)
    assert "key: " == clip("key: " + K2[:8], 13, more=True)
    assert "key: ok " == clip("key: ok " + K2, 8)


def test_shown_never_raises() -> None:
    """shown() of an object whose repr raises names its class instead."""
    assert "(a Hostile that cannot be shown)" == shown(Hostile())
    assert "12.5" == shown(12.5)


# -- configuration errors -------------------------------------------------------------------
ENV_CASES: list[tuple[str, dict[str, str], Callable[[], Any], str]] = [
    ("HONEYCOMB_API_HOST-bare-key", {"HONEYCOMB_API_HOST": K1},
     lambda: HoneycombSink(api_key="k"), "hcai***"),
    ("HONEYCOMB_API_HOST-port", {"HONEYCOMB_API_HOST": f"https://api.honeycomb.io:{K2}"},
     lambda: HoneycombSink(api_key="k"), "api.honeycomb.io"),
    ("HONEYCOMB_API_HOST-scheme", {"HONEYCOMB_API_HOST": f"ftp://{K3}.example.com"},
     lambda: HoneycombSink(api_key="k"), "ftp://tok_***"),
    ("HONEYCOMB_API_HOST-query", {"HONEYCOMB_API_HOST": f"https://api.honeycomb.io/?k={K1}"},
     lambda: HoneycombSink(api_key="k"), "?k=***"),
    ("OTEL_EXPORTER_OTLP_ENDPOINT", {"OTEL_EXPORTER_OTLP_ENDPOINT": K2},
     lambda: OTLPSink(), "0f1e***"),
    ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
     {"OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": f"grpc://collector:4317/{K1}"},
     lambda: OTLPSink(), "grpc://collector:4317/hcai***"),
    ("OTEL_EXPORTER_OTLP_TIMEOUT", {"OTEL_EXPORTER_OTLP_TIMEOUT": K3},
     lambda: OTLPSink("http://collector:4318"), "OTEL_EXPORTER_OTLP_TIMEOUT='tok_***"),
    ("OTEL_EXPORTER_OTLP_PROTOCOL", {"OTEL_EXPORTER_OTLP_PROTOCOL": K1},
     lambda: OTLPSink("http://collector:4318"), "OTEL_EXPORTER_OTLP_PROTOCOL='hcai***"),
    ("OTEL_EXPORTER_OTLP_COMPRESSION", {"OTEL_EXPORTER_OTLP_COMPRESSION": K2},
     lambda: OTLPSink("http://collector:4318"), "OTEL_EXPORTER_OTLP_COMPRESSION='0f1e***"),
    ("OTEL_RESOURCE_ATTRIBUTES-otlp", {"OTEL_RESOURCE_ATTRIBUTES": f"service.name=x,{K1}"},
     lambda: OTLPSink("http://collector:4318"), "'hcai***"),
    ("OTEL_RESOURCE_ATTRIBUTES-configure", {"OTEL_RESOURCE_ATTRIBUTES": f"{K3},a=b"},
     lambda: wideevents.configure(sinks=[MemorySink()]), "'tok_***"),
    ("WIDEEVENTS_SINK", {"WIDEEVENTS_SINK": K1}, lambda: wideevents.configure(), "hcai***"),
]


@pytest.mark.parametrize(("env", "build", "recognisable"),
                         [pytest.param(e, b, r, id=i) for i, e, b, r in ENV_CASES])
def test_keys_in_environment_settings_are_masked_in_errors(
        monkeypatch: pytest.MonkeyPatch, env: dict[str, str], build: Callable[[], Any],
        recognisable: str) -> None:
    """A key set in the wrong variable: the error names the variable, shows the value
    masked (its start still recognisable) and holds no 12-character piece of the key."""
    for name in ("HONEYCOMB_API_HOST", "OTEL_EXPORTER_OTLP_ENDPOINT", "WIDEEVENTS_SINK",
                 "OTEL_EXPORTER_OTLP_HEADERS", "OTEL_RESOURCE_ATTRIBUTES"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    message = error_of(build)
    assert ([], True) == (leaks(message), recognisable in message)


ARG_CASES: list[tuple[str, Callable[[], Any], str]] = [
    ("honeycomb-compression", lambda: HoneycombSink(api_key="k", compression=K1), "hcai***"),
    ("honeycomb-setting", lambda: HoneycombSink(api_key="k", request_timeout=K2),  # type: ignore[arg-type]
     "request_timeout"),
    ("honeycomb-host-path", lambda: HoneycombSink(api_key="k", api_host=f"api.honeycomb.io/{K1}"),
     "api.honeycomb.io/hcai***"),
    ("otlp-header-name", lambda: OTLPSink("http://c:4318", headers={K3: "line\nbreak"}),
     "tok_***"),
    ("otlp-encoding", lambda: OTLPSink("http://c:4318", encoding=K1), "hcai***"),
    ("otlp-signal", lambda: OTLPSink("http://c:4318", signal=K2), "0f1e***"),
    ("otlp-compression", lambda: OTLPSink("http://c:4318", compression=K3), "tok_***"),
    ("otlp-endpoint", lambda: OTLPSink(f"{K1}:4318"), "hcai***"),
    ("otel-mode", lambda: OTelSink(mode=K1), "hcai***"),
    ("file-path", lambda: FileSink(f"/no/such/dir/{K2}/events.jsonl"), "/no/such/dir/0f1e***"),
]


@pytest.mark.parametrize(("build", "recognisable"),
                         [pytest.param(b, r, id=i) for i, b, r in ARG_CASES])
def test_keys_in_arguments_are_masked_in_errors(monkeypatch: pytest.MonkeyPatch,
                                                build: Callable[[], Any],
                                                recognisable: str) -> None:
    """A key passed as the wrong argument: masked in the error, still recognisable."""
    for name in ("HONEYCOMB_API_HOST", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_RESOURCE_ATTRIBUTES"):
        monkeypatch.delenv(name, raising=False)
    message = error_of(build)
    assert ([], True) == (leaks(message), recognisable in message)


def test_reprs_mask_keys_in_urls() -> None:
    """repr() of a sink whose URL path holds a key (a valid URL) shows it masked."""
    sink = HoneycombSink(api_key="k", api_host=f"https://proxy.example.com/{K1}")
    otlp = OTLPSink(f"https://proxy.example.com/{K2}")
    text = repr(sink) + repr(otlp)
    assert ([], True) == (leaks(text), "proxy.example.com/hcai***" in text)
    sink.close(0.1)
    otlp.close(0.1)
