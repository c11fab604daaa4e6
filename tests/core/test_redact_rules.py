"""The one redaction module's rules: which keys are secret, URLs and query strings, header
capture, and what the walk must never do (raise, change the caller's objects, slow the
fast path)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import wideevents
from benchmarks.fixture import build_event, make_inputs
from tests.support.hostile import Hostile, HostileKey
from wideevents import ConfigurationError
from wideevents._core.limits import Limits, fast_serialize
from wideevents._core.prepare import Preparer, Tally
from wideevents._core.redact import Redactor, redact_query, redact_url
from wideevents.integrations._http import HTTPOptions
from wideevents.testing import capture_events

SECRET = "Zq7SECRETvalue9x"
R = "[REDACTED]"


def _prepared(fields: dict[str, Any], redactor: Redactor | None = None) -> dict[str, Any]:
    """One event through the real per-event step (normalise ... redact ... serialise); the
    returned fields hold the JSON line under ``"json"``."""
    raw = {"timestamp": None, "name": "rules", **fields}
    record = Preparer(redactor=redactor).prepare(raw, 1_700_000_000_000_000_000, Tally())
    assert record is not None
    return {**record.fields, "json": record.json}


# -- the key rule -----------------------------------------------------------------------------
@pytest.mark.parametrize("key", [
    "password", "db.password", "DB.PASSWORD", " Password ", "db.password.", "passphrase",
    "api_key", "api-key", "API Key", "X-Api-Key", "apikey", "openai_api_key",
    "x-auth-token", "X-Auth-Token", "auth_token", "access_token", "oauth.refresh_token",
    "id_token", "session_token", "sessionid", "csrftoken", "X-CSRF-Token", "xsrf-token",
    "cookie", "cookies", "Set-Cookie", "authorization", "x-forwarded-authorization",
    "db_password", "aws_secret", "client_secret", "secret", "credentials", "private_key",
    "x-amz-security-token", "x-honeycomb-team",
])
def test_default_secret_names_any_case_and_separator(key: str) -> None:
    """Default names and globs, matched on the last dotted segment in any case, '-'/' ' as '_'."""
    fields = _prepared({key: SECRET})
    assert R == fields[key]
    assert SECRET.encode() not in fields["json"]


@pytest.mark.parametrize("key", [
    "token.count", "token", "tokens", "input_tokens", "tokenizer.eos_token",
    "password_policy.length", "password_hint_shown", "user_session_id", "session.id",
    "session", "secretary", "signature", "code", "api_key_id", "keyboard", "author",
    "password.value",
])
def test_lookalikes_are_not_secret(key: str) -> None:
    """A flat dotted key is judged by its last segment: token.count or password.value stay."""
    assert "kept" == _prepared({key: "kept"})[key]


def test_configured_names_and_globs_use_the_same_canonical_form() -> None:
    """Names given as 'Card-PIN' or '*-Hash' match card_pin / a.b_hash in any spelling."""
    redactor = Redactor(["Card-PIN", "*-Hash"])
    fields = _prepared({"card pin": SECRET, "user.token_hash": SECRET, "hashes": 1,
                        "rows": [{"CARD_PIN": SECRET}]}, redactor)
    assert (R, R, 1, ['{"CARD_PIN":"[REDACTED]"}']) == (
        fields["card pin"], fields["user.token_hash"], fields["hashes"], fields["rows"])


@pytest.mark.parametrize("patterns", [[""], ["  "], [3], [None]])
def test_invalid_patterns_fail_loudly_with_a_fix(patterns: list[Any]) -> None:
    """An empty or non-string pattern raises ConfigurationError saying what to use instead."""
    with pytest.raises(ConfigurationError, match="use non-empty strings such as 'password'"):
        wideevents.configure(sinks=[], redact=patterns)


# -- URLs and query strings -------------------------------------------------------------------
# OpenTelemetry semantic conventions, url.full and url.query
# (https://opentelemetry.io/docs/specs/semconv/registry/attributes/url/): credentials in the
# userinfo become "REDACTED:REDACTED"; the values of sensitive query parameters (AWSAccessKeyId,
# Signature, sig, X-Goog-Signature, ...) become "REDACTED" and their keys are kept. The
# conventions match keys case-sensitively; we match them in any case (over-masking is safe).
@pytest.mark.parametrize("url, expected", [
    ("https://user:pass@example.com/p?q=1", "https://REDACTED:REDACTED@example.com/p?q=1"),
    ("https://ghp_tok@github.com/org/repo.git", "https://REDACTED@github.com/org/repo.git"),
    ("//user:pw@host/p", "//REDACTED:REDACTED@host/p"),
    ("https://api.example.com/v1?api_key=abc&q=shoes",
     "https://api.example.com/v1?api_key=REDACTED&q=shoes"),
    ("https://s3.amazonaws.com/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F1"
     "&X-Amz-Signature=deadbeef&X-Amz-Security-Token=tok",
     "https://s3.amazonaws.com/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=REDACTED"
     "&X-Amz-Signature=REDACTED&X-Amz-Security-Token=REDACTED"),
    ("https://s3.amazonaws.com/b/k?AWSAccessKeyId=AKIA&Signature=abc&Expires=1",
     "https://s3.amazonaws.com/b/k?AWSAccessKeyId=REDACTED&Signature=REDACTED&Expires=1"),
    ("https://acct.blob.core.windows.net/c/b?sv=2022-11-02&sig=abc%3D&se=2024",
     "https://acct.blob.core.windows.net/c/b?sv=2022-11-02&sig=REDACTED&se=2024"),
    ("https://storage.googleapis.com/b/o?X-Goog-Signature=ab&X-Goog-Credential=c&X-Goog-Date=d",
     "https://storage.googleapis.com/b/o?X-Goog-Signature=REDACTED&X-Goog-Credential=REDACTED"
     "&X-Goog-Date=d"),
    ("/callback?code=xyz&state=abc", "/callback?code=REDACTED&state=abc"),
    ("https://app/cb#access_token=xyz&token_type=bearer&expires_in=3600",
     "https://app/cb#access_token=REDACTED&token_type=bearer&expires_in=3600"),
    ("https://h/p?access%5Ftoken=xyz&api+key=k", "https://h/p?access%5Ftoken=REDACTED&api+key=REDACTED"),
    ("https://h/p?a=1;token=xyz", "https://h/p?a=1;token=REDACTED"),
    ("https://h/p?TOKEN=x&Password=y&refresh_token=z&client_secret=w",
     "https://h/p?TOKEN=REDACTED&Password=REDACTED&refresh_token=REDACTED&client_secret=REDACTED"),
    ("https://h/p?token=&a=1", "https://h/p?token=&a=1"),
    ("https://h/p?page=2&sort=asc&q=token", "https://h/p?page=2&sort=asc&q=token"),
    ("https://example.com/users/@me?x=1", "https://example.com/users/@me?x=1"),
    ("https://example.com/path", "https://example.com/path"),
    ("", ""),
])
def test_redact_url(url: str, expected: str) -> None:
    """Userinfo and secret query/fragment values masked; everything else byte for byte."""
    assert expected == redact_url(url)


def test_redact_query_for_url_query_fields() -> None:
    """A bare query string (the middlewares' url.query) is masked by the same rule."""
    assert "a=1&password=REDACTED&sig=REDACTED&b" == redact_query("a=1&password=x&sig=y&b")


@settings(max_examples=200, derandomize=True, database=None, deadline=None)
@given(st.text(max_size=40), st.sampled_from(["token", "api_key", "Signature", "code", "sig"]))
def test_redact_url_never_raises_and_masks_any_value(junk: str, name: str) -> None:
    """Arbitrary text around a secret parameter: no exception, the secret value never kept."""
    url = f"https://h/{junk}?{name}={SECRET}&x=1"
    out = redact_url(url)
    if "?" not in junk and "#" not in junk:
        assert SECRET not in out
    assert isinstance(redact_url(junk), str)


# -- header capture ---------------------------------------------------------------------------
@pytest.mark.parametrize("header", [
    "Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie", "X-Api-Key", "api-key",
    "X-Auth-Token", "X-Honeycomb-Team", "X-CSRF-Token", "X-Amz-Security-Token",
    "X-Forwarded-Authorization",
])
def test_credential_headers_are_refused_at_configuration(header: str) -> None:
    """capture_headers refuses any header the redaction rule calls secret, saying how to fix."""
    with pytest.raises(ConfigurationError, match="remove it from capture_headers"):
        HTTPOptions(capture_headers=[header])


def test_ordinary_headers_are_captured() -> None:
    """Content-Type, X-Request-ID, Idempotency-Key or X-Token-Count are allowed (lower-cased)."""
    opts = HTTPOptions(capture_headers=["Content-Type", "X-Request-ID", "Idempotency-Key",
                                        "X-Token-Count"])
    assert ("content-type", "x-request-id", "idempotency-key", "x-token-count") == \
        opts.capture_headers


# -- what the walk must never do ------------------------------------------------------------
def test_the_callers_objects_are_never_changed() -> None:
    """Redacting works on copies: the user's dict, list and DataFrame keep their secrets."""
    frame = pd.DataFrame({"password": [SECRET], "age": [3]})
    nested = {"rows": [{"api_key": SECRET}], "password": {"v": SECRET}}
    with capture_events() as events:
        with wideevents.event("mine") as ev:
            ev.add({"frame": frame, "nested": nested})
    assert [SECRET] == frame["password"].tolist()
    assert {"rows": [{"api_key": SECRET}], "password": {"v": SECRET}} == nested
    assert [R, 3] == events[0]["frame"]


def test_a_dataframe_is_snapshotted_when_added() -> None:
    """Changing a DataFrame after ev.add() does not change the event (a deep copy is kept)."""
    frame = pd.DataFrame({"x": [1, 2]})
    with capture_events() as events:
        with wideevents.event("mine") as ev:
            ev.add(frame=frame)
            frame.loc[0, "x"] = 99
    assert [1, 2] == events[0]["frame"]


class _BadItems(dict):  # type: ignore[type-arg]
    def items(self) -> Any:
        raise RuntimeError("items")


def test_hostile_values_beside_secrets_neither_raise_nor_leak() -> None:
    """Objects whose dunders raise, unreadable mappings and hostile keys next to secrets."""
    with capture_events() as events:
        with wideevents.event("hostile") as ev:
            ev.add({"mixed": [Hostile(), {"password": SECRET}, _BadItems(a=SECRET)],
                    "keys": {HostileKey(): 1, "n": {"password": SECRET}},
                    "deep": [[{"secret": SECRET, "h": Hostile()}]]})
    event = events[0]
    text = repr(event)
    assert SECRET not in text
    assert '{"password":"[REDACTED]"}' == event["mixed"][1]
    assert "<unrepresentable _BadItems>" == event["mixed"][2]
    assert R == event["keys.n.password"]


def test_the_fast_path_is_kept_for_clean_events() -> None:
    """A clean flat event is still serialised on the fast path; a secret key leaves it."""
    event = build_event(make_inputs(1), 0)
    redactor = Redactor()
    assert fast_serialize(event, Limits(), redactor) is not None
    assert fast_serialize(event, Limits(), redactor) is not None  # warm: one set check
    assert fast_serialize({**event, "API Key": "k"}, Limits(), redactor) is None
