"""The ``wideevents`` logger, with duplicate suppression.

Every contained failure is reported through :func:`log_once`: the first occurrence of a
given key is logged, later ones only counted, so a broken sink cannot flood the host's
logs. The bridges (structlog, logging) ignore records from this logger.
"""

from __future__ import annotations

import logging
import threading

logger = logging.getLogger("wideevents")

_MAX_KEYS = 1024
_seen: dict[str, int] = {}
_lock = threading.Lock()


def log_once(key: str, message: str, *args: object, level: int = logging.WARNING) -> bool:
    """Log ``message % args`` the first time ``key`` is seen; count repeats. True if logged."""
    with _lock:
        count = _seen.get(key, 0)
        if count == 0 and len(_seen) >= _MAX_KEYS:
            # Bounded memory: past the cap, new keys are still logged, never remembered.
            count = -1
        else:
            _seen[key] = count + 1
    if count > 0:
        return False
    try:
        logger.log(level, message, *args)
    except Exception:  # noqa: BLE001 - a broken handler of the host must not break us
        pass
    return True


def suppressed_counts() -> dict[str, int]:
    """How many times each key was reported (first one included)."""
    with _lock:
        return dict(_seen)


def reset() -> None:
    """Forget what was logged (tests, and the child after fork)."""
    with _lock:
        _seen.clear()


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # the parent may have held it while forking


import os as _os  # noqa: E402

if hasattr(_os, "register_at_fork"):
    _os.register_at_fork(after_in_child=_after_fork_in_child)
