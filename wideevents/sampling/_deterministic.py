"""Deterministic sampling: the same decision for the same id in every process and service.

The rule is the Honeycomb beelines' (and, with Refinery's salt, Refinery's): hash the key's
value plus the salt, UTF-8 encoded, with SHA-1; read the first 4 bytes as a big-endian
unsigned integer ``v``; keep when ``v < (2**32 - 1) / rate``. Rate 1 keeps everything.
Because no state or randomness is involved, every service that samples the same trace id at
the same rate keeps or drops the whole trace together.
"""

from __future__ import annotations

import hashlib
import random
import struct
from collections.abc import Mapping
from typing import Any, Final

from wideevents._core.log import log_once
from wideevents._errors import ConfigurationError

from ._validate import check_rate

__all__ = ["REFINERY_SALT", "DeterministicSampler"]

# Refinery appends this to the trace id before hashing (its "sharding salt").
REFINERY_SALT: Final = "5VQ8l2jE5aJLPVqk"

_MAX_UINT32: Final = 2**32 - 1
_sha1 = hashlib.sha1
_first_uint32 = struct.Struct(">I").unpack_from
# Used in order when the configured key is missing (or null) on an event.
_FALLBACK_KEYS: Final = ("prediction.id", "request.id")


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


class DeterministicSampler:
    """Keep 1 event in ``rate``, decided by a hash of ``event[key]`` (see the module doc).

    ``key`` defaults to ``trace.trace_id``; when an event lacks it (or it is null) the
    value of ``prediction.id``, then ``request.id`` is hashed instead. An event with none of
    them is sampled at random at the same rate (so counts stay unbiased) and counted under
    ``stats()["missing_key"]``. Non-string values are hashed as ``str(value)``.

    Only this sampler, keyed on the trace id (the default), keeps whole traces: every
    service configured with the same rate and salt keeps the same traces.

    Calls are meant to come from one thread (the pipeline's worker); the decision itself
    is stateless, only the counters in :meth:`stats` assume it.
    """

    def __init__(
        self,
        rate: int,
        key: str = "trace.trace_id",
        *,
        salt: str = "",
        seed: int | None = None,
        name: str | None = None,
    ) -> None:
        self.rate: Final[int] = check_rate(rate, "rate")
        if not isinstance(key, str) or not key:
            raise ConfigurationError(
                f"key must be the name of an event field, got {key!r}; "
                "e.g. key='trace.trace_id' (keeps whole traces) or key='user.id'"
            )
        if not isinstance(salt, str):
            raise ConfigurationError(
                f"salt must be a string, got {salt!r}; use salt='' for the beelines' rule or "
                "wideevents.sampling.REFINERY_SALT for Refinery's"
            )
        self.key: Final[str] = key
        self.salt: Final[str] = salt
        self.name: str = name or type(self).__name__
        # v < (2**32-1)/rate for an integer v  <=>  v < ceil((2**32-1)/rate): exact integers,
        # no float rounding at the boundary. Rate 1 keeps everything, as in the beelines.
        self._threshold: Final[int] = 2**32 if self.rate == 1 else -(-_MAX_UINT32 // self.rate)
        self._fallback_keys: Final = tuple(k for k in _FALLBACK_KEYS if k != key)
        self._random = random.Random(seed)
        self._kept = 0
        self._dropped = 0
        self._missing_key = 0
        self._errors = 0

    def keeps(self, value: str) -> bool:
        """The decision for one key value (True: keep), without counting it."""
        first: int = _first_uint32(_sha1(_utf8(value + self.salt)).digest())[0]
        return first < self._threshold

    def __call__(self, event: Mapping[str, Any]) -> int:
        """``rate`` to keep the event, 0 to drop it. Never raises."""
        try:
            value = event.get(self.key)
            if value is None:
                value = self._fallback_value(event)
                if value is None:
                    self._missing_key += 1
                    if self._random.random() * self.rate < 1.0:
                        self._kept += 1
                        return self.rate
                    self._dropped += 1
                    return 0
            if type(value) is not str:
                value = str(value)
            try:
                data = (value + self.salt).encode()
            except UnicodeEncodeError:  # a lone surrogate in an event that was not normalised
                data = _utf8(value + self.salt)
            if _first_uint32(_sha1(data).digest())[0] < self._threshold:
                self._kept += 1
                return self.rate
            self._dropped += 1
            return 0
        except Exception as exc:  # noqa: BLE001 -- fail open: losing the event is worse
            self._errors += 1
            log_once(
                f"sampling.{self.name}.error",
                "wideevents: sampler %s failed (%r); keeping the event at rate 1",
                self.name,
                exc,
            )
            return 1

    def _fallback_value(self, event: Mapping[str, Any]) -> Any:
        for key in self._fallback_keys:
            value = event.get(key)
            if value is not None:
                return value
        return None

    def stats(self) -> dict[str, Any]:
        """``{"kept", "dropped", "missing_key", "errors", "rate", "key"}`` since creation."""
        return {
            "kept": self._kept,
            "dropped": self._dropped,
            "missing_key": self._missing_key,
            "errors": self._errors,
            "rate": self.rate,
            "key": self.key,
        }

    def __repr__(self) -> str:
        salt = f", salt={self.salt!r}" if self.salt else ""
        return f"DeterministicSampler({self.rate}, key={self.key!r}{salt})"
