"""W3C trace/span ids and UUIDv7 prediction ids.

``random.getrandbits`` is used instead of ``os.urandom``: these ids need uniqueness, not
secrecy, and it avoids a syscall per id. CPython reseeds ``random`` in a forked child, so
parent and child never share a sequence.
"""

from __future__ import annotations

import random
import time

__all__ = ["new_span_id", "new_trace_id", "uuid7", "uuid7_unix_ms"]

_bits = random.getrandbits


def new_trace_id() -> str:
    """32 lowercase hex digits, never all zeros."""
    return "%032x" % (_bits(128) or 1)


def new_span_id() -> str:
    """16 lowercase hex digits, never all zeros."""
    return "%016x" % (_bits(64) or 1)


def uuid7(unix_ms: int | None = None) -> str:
    """A UUIDv7 string (RFC 9562): 48-bit Unix milliseconds, version 7, variant 10, random."""
    ms = time.time_ns() // 1_000_000 if unix_ms is None else unix_ms
    rand = _bits(74)
    value = (
        ((ms & 0xFFFF_FFFF_FFFF) << 80)
        | (0x7 << 76)
        | ((rand >> 62) << 64)
        | (0b10 << 62)
        | (rand & 0x3FFF_FFFF_FFFF_FFFF)
    )
    h = "%032x" % value
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def uuid7_unix_ms(value: str) -> int | None:
    """The Unix milliseconds in a UUIDv7 string, or None if it is not one."""
    try:
        h = value.replace("-", "")
        if len(h) != 32 or h[12] != "7":
            return None
        return int(h[:12], 16)
    except (AttributeError, ValueError):
        return None
