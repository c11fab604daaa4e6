"""Feedback context tokens: a prediction's fields, carried by the client to any process.

``ev.feedback_context()`` writes a token the service returns with its response; the client
sends it back with the outcome, and ``wideevents.feedback(prediction_id, context=token)``
(in any process, on any host) copies its fields into the feedback event. The token is
``wf1.<payload>.<signature>``, at most :data:`MAX_TOKEN` URL-safe characters (RFC 4648
section 5 base64url without padding, and ``.``):

- the payload is compact JSON: a digest of the prediction id (``h``, the first 8 bytes of
  its SHA-256: a token given with another prediction's id is rejected), the prediction's
  time (``t``, Unix ms), ``model.name``/``.version``/``.stage`` (``m``), ``prediction.label``
  (``l``), ``prediction.score`` (``s``), ``prediction.p_positive`` (``p``), ``score.bin``
  (``b``) and the scalar ``slice.*`` fields (``c``) whose key the pipeline would not redact.
  Never a feature value. Strings are cut to 64 characters, and when the token would be
  longer than 512 characters, slices are left out (last first), then strings cut shorter;
  the prediction event counts that as a problem.
- the signature is HMAC-SHA256 (RFC 2104) of ``wf1.<payload>`` under the feedback key
  (``configure(feedback_key=)`` or ``WIDEEVENTS_FEEDBACK_KEY``, at least 16 bytes), empty
  without a key. Clients can read a token but not forge one.

Reading (:func:`read_token`): with a key, a token whose signature verifies is used
(``feedback.context_verified`` true), any other is rejected (its fields are not used);
without a key, a well-formed token is used but marked unverified. The key never appears in
output, logs or errors: it is held by :class:`FeedbackKey`, whose ``repr`` hides it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import threading
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from .._core.env import env
from .._core.log import log_once
from .._errors import ConfigurationError
from ._values import plain_scalar

__all__ = [
    "ENV_KEY",
    "MAX_TOKEN",
    "MIN_KEY_BYTES",
    "FeedbackKey",
    "install",
    "make_token",
    "read_token",
    "resolve_key",
]

ENV_KEY = "WIDEEVENTS_FEEDBACK_KEY"
PREFIX = "wf1"
MAX_TOKEN = 512
MIN_KEY_BYTES = 16
_MAX_TEXT = 64
_SCALARS = (str, int, float, bool)


class FeedbackKey:
    """The HMAC key; its ``repr`` and ``str`` never show it."""

    __slots__ = ("_secret",)

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def sign(self, data: bytes) -> bytes:
        return hmac.new(self._secret, data, hashlib.sha256).digest()

    def __repr__(self) -> str:
        return "FeedbackKey(***)"

    __str__ = __repr__


_lock = threading.Lock()
_key: FeedbackKey | None = None
_configured = False  # configure() decided the key; else the environment is read once


def resolve_key(value: Any) -> FeedbackKey | None:
    """The key ``configure(feedback_key=value)`` means (``WIDEEVENTS_FEEDBACK_KEY`` when
    None); ConfigurationError when it is unusable. The message never shows the key."""
    source = "feedback_key"
    if value is None:
        value, source = env(ENV_KEY) or None, f"environment variable {ENV_KEY}"
        if value is None:
            return None
    if isinstance(value, str):
        secret = value.encode("utf-8")
    elif isinstance(value, (bytes, bytearray)):
        secret = bytes(value)
    else:
        raise ConfigurationError(
            f"{source} must be a string or bytes (got {type(value).__name__}); use at least "
            f"{MIN_KEY_BYTES} random bytes, e.g. secrets.token_urlsafe(32)"
        )
    if len(secret) < MIN_KEY_BYTES:
        raise ConfigurationError(
            f"{source} is too short ({len(secret)} bytes): use at least {MIN_KEY_BYTES} "
            "random bytes, e.g. secrets.token_urlsafe(32), the same on every host"
        )
    return FeedbackKey(secret)


def install(key: FeedbackKey | None) -> None:
    """Make ``key`` the process's feedback key (``configure()`` calls it)."""
    global _key, _configured
    with _lock:
        _key, _configured = key, True


def current_key() -> FeedbackKey | None:
    """The key ``configure()`` installed; without ``configure()``, the environment's (read
    once; an unusable one is logged and ignored: nothing raises outside configure())."""
    global _key, _configured
    if _configured:
        return _key
    with _lock:
        if not _configured:
            try:
                _key = resolve_key(None)
            except ConfigurationError as exc:
                log_once("ml:feedback-key", "wideevents.ml: %s; feedback contexts are "
                         "unsigned until configure() gets a usable key", exc)
                _key = None
            _configured = True
    return _key


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def id_digest(prediction_id: str) -> str:
    """The first 8 bytes of the id's SHA-256, base64url (11 characters)."""
    return _b64(hashlib.sha256(prediction_id.encode("utf-8", "replace")).digest()[:8])


def _text(value: Any, cap: int) -> Any:
    return value[:cap] if isinstance(value, str) else value


def _scalar(value: Any) -> Any:
    """A JSON scalar for the token, or None: finite numbers, bools, strings only."""
    value = plain_scalar(value)
    if type(value) is float and not math.isfinite(value):
        return None
    return value if type(value) in _SCALARS else None


def make_token(
    fields: Mapping[str, Any],
    prediction_id: str,
    made_ms: int,
    is_secret: Callable[[str], bool],
    key: FeedbackKey | None,
) -> tuple[str, bool]:
    """The token for a prediction's ``fields``, and whether something was left out or cut
    to fit :data:`MAX_TOKEN`."""
    base: dict[str, Any] = {"h": id_digest(prediction_id), "t": int(made_ms)}
    model = [_scalar(fields.get(f"model.{k}")) for k in ("name", "version", "stage")]
    while model and model[-1] is None:
        model.pop()
    if model:
        base["m"] = [None if v is None else str(v) for v in model]
    for short, name in (("l", "prediction.label"), ("s", "prediction.score"),
                        ("p", "prediction.p_positive"), ("b", "score.bin")):
        value = _scalar(fields.get(name))
        if value is not None:
            base[short] = value
    slices = []
    for name, value in fields.items():
        if type(name) is str and name.startswith("slice.") and len(name) <= 6 + _MAX_TEXT:
            plain = _scalar(value)
            if plain is not None and not is_secret(name):
                slices.append((name[6:], plain))
    texts = [*base.values(), *base.get("m", []), *(v for _, v in slices)]
    cap = _MAX_TEXT
    cut = any(isinstance(v, str) and len(v) > cap for v in texts)
    while True:
        payload = {k: [_text(x, cap) for x in v] if k == "m" else _text(v, cap)
                   for k, v in base.items()}
        if slices:
            payload["c"] = {k: _text(v, cap) for k, v in slices}
        body = f"{PREFIX}.{_b64(orjson.dumps(payload))}"
        token = f"{body}.{'' if key is None else _b64(key.sign(body.encode('ascii')))}"
        if len(token) <= MAX_TOKEN:
            return token, cut
        cut = True
        if slices:
            slices.pop()
        else:
            cap //= 2


_FIELDS = {"l": "prediction.label", "s": "prediction.score", "p": "prediction.p_positive",
           "b": "score.bin"}


def read_token(
    token: Any, prediction_id: str, key: FeedbackKey | None
) -> tuple[dict[str, Any], int | None, bool, str | None]:
    """(fields, prediction time in Unix ms, verified, problem) for a token given to
    ``feedback()``; the fields are empty when the token is rejected (``problem`` says why)."""
    if type(token) is not str or len(token) > MAX_TOKEN:
        return {}, None, False, "feedback: context is not a feedback_context() token"
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != PREFIX:
        return {}, None, False, "feedback: context is not a feedback_context() token"
    try:
        payload = orjson.loads(_unb64(parts[1]))
    except (ValueError, binascii.Error, orjson.JSONDecodeError):
        return {}, None, False, "feedback: context is not a feedback_context() token"
    fields = _payload_fields(payload)
    if fields is None:
        return {}, None, False, "feedback: context is not a feedback_context() token"
    if payload["h"] != id_digest(prediction_id):
        return {}, None, False, "feedback: context belongs to another prediction id"
    if key is not None:
        expected = _b64(key.sign(f"{parts[0]}.{parts[1]}".encode("ascii")))
        if not hmac.compare_digest(expected, parts[2]):
            return {}, None, False, "feedback: context signature does not verify"
    return fields, payload["t"], key is not None, None


def _payload_fields(payload: Any) -> dict[str, Any] | None:
    """The event fields a payload carries, or None when it is not one we wrote."""
    if not isinstance(payload, dict) or type(payload.get("h")) is not str:
        return None
    if type(payload.get("t")) is not int:
        return None
    out: dict[str, Any] = {}
    model = payload.get("m", [])
    if not isinstance(model, list) or len(model) > 3 or not all(
        v is None or type(v) is str for v in model
    ):
        return None
    for name, value in zip(("model.name", "model.version", "model.stage"), model, strict=False):
        if value is not None:
            out[name] = value
    for short, name in _FIELDS.items():
        if short in payload:
            if type(payload[short]) not in _SCALARS:
                return None
            out[name] = payload[short]
    slices = payload.get("c", {})
    if not isinstance(slices, dict) or not all(type(v) in _SCALARS for v in slices.values()):
        return None
    out.update((f"slice.{k}", v) for k, v in slices.items())
    return out
