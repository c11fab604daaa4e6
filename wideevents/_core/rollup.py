"""Rollups: numbers that child work sums into its own event and into the request's event.

``add(ev, items)`` adds each ``(field, value)`` to ``field`` of ``ev`` and to
``rollup.<field>`` of ``ev``'s *root*: the outermost local event it was started under (the
request's event under a middleware; ``ev`` itself when it has no local parent). This is
Honeycomb's Beeline rollup: beeline-go ``trace/trace.go`` ``Span.AddRollupField`` sums into
the span's own field and into the root span's ``rollup.<field>``; beeline-python
``add_rollup_field`` does the same. When ``ev`` is the root it gets both fields.

Rules, all on the request thread and never raising:

- a value is an ``int`` or a finite ``float`` (numpy scalars and other ``numbers.Real``
  convert; ``bool`` does not). ``int + int`` stays an ``int``. Anything else, a field
  that already holds something other than a number, and a sum that is no longer finite
  (floats past 1.8e308 add up to ``inf``) is dropped (the field keeps its value), logged
  once and counted in ``stats()["fields"]["dropped"]["bad_rollup"]``, once per field left
  unchanged;
- read, add and store happen under one process-wide lock, so concurrent children (threads
  of a pool, asyncio tasks) lose no addition; the lock is held for dictionary operations
  only;
- a write to an event that already finished (a background task outliving its request) is
  dropped and counted ``late``, as any late field (``_core/event.py``).
"""

from __future__ import annotations

import math
import numbers
import operator
import os
import threading
from collections.abc import Iterable
from typing import Any

from .log import log_once
from .normalize import safe_repr

__all__ = ["add", "add_numbers", "add_one", "as_number", "root_keys"]

_lock = threading.Lock()
_NUMBER = (int, float)
_isfinite = math.isfinite


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # a thread of the parent may have held it at fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def as_number(value: object) -> int | float | None:
    """``value`` as an int or a finite float, or None when it is not a number. Never raises."""
    t = type(value)
    if t is int:
        return value  # type: ignore[return-value]
    if t is float:
        return value if math.isfinite(value) else None  # type: ignore[return-value,arg-type]
    if t is bool:
        return None
    try:
        if hasattr(value, "__index__"):
            return operator.index(value)
        if isinstance(value, numbers.Real):
            f = float(value)
            return f if math.isfinite(f) else None
    except Exception:  # noqa: BLE001 - a user number type's conversion may raise anything
        pass
    return None


def add_one(ev: Any, key: str, value: Any) -> None:
    """:func:`add` of one ``(key, value)``: the common case (an int or finite float into
    number fields of open events) without building lists; anything else goes to
    :func:`add`. Never raises."""
    t = type(value)
    if (t is int or (t is float and _isfinite(value))) and type(key) is str and ev.recording:
        root = ev._root
        if root is None:
            root = ev
        root_key = "rollup." + key
        try:
            with _lock:
                if not ev._done and not root._done:
                    f = ev._fields
                    prior = f.get(key, 0)
                    g = root._fields
                    root_prior = g.get(root_key, 0)
                    tp = type(prior)
                    tr = type(root_prior)
                    if (tp is int or tp is float) and (tr is int or tr is float):
                        total = prior + value  # both before either is stored: an
                        root_total = root_prior + value  # OverflowError stores neither
                        if (type(total) is int or _isfinite(total)) and (
                                type(root_total) is int or _isfinite(root_total)):
                            f[key] = total
                            g[root_key] = root_total  # (g is f for a root: its own total)
                            return
        except Exception:  # noqa: BLE001 - int + float overflowed: add() counts it
            pass
    add(ev, ((key, value),))  # late, bad value or a field holding something else


def root_keys(keys: tuple[str, ...]) -> tuple[str, ...]:
    """``rollup.<key>`` of each key, computed once by callers that reuse the same keys."""
    return tuple("rollup." + k for k in keys)


def add_numbers(ev: Any, keys: tuple[str, ...], rkeys: tuple[str, ...],
                numbers: tuple[int | float, ...]) -> None:
    """:func:`add` of several fields whose values the caller made ints or finite floats,
    ``rkeys`` being :func:`root_keys` of ``keys``: one lock, no lists (an integration's
    per-call rollups). Anything unusual (a finished event, a field holding something else)
    goes to :func:`add`, which handles it. Never raises."""
    root = ev._root
    if root is None:
        root = ev
    done = 0  # items stored; the others go to add()
    try:
        with _lock:
            if not ev._done and not root._done:
                f = ev._fields
                g = root._fields
                fget = f.get
                gget = g.get
                for k, rk, n in zip(keys, rkeys, numbers):
                    a = fget(k, 0)
                    b = gget(rk, 0)
                    ta = type(a)
                    tb = type(b)
                    if (ta is not int and ta is not float) or (tb is not int and tb is not float):
                        break  # one of the two holds something else: add() sorts it out
                    total = a + n  # both before either is stored (OverflowError)
                    root_total = b + n
                    if (type(total) is float or type(root_total) is float) and not (
                            _isfinite(total) and _isfinite(root_total)):
                        break  # a float sum past 1.8e308 is inf: add() counts it
                    f[k] = total
                    g[rk] = root_total
                    done += 1
                if done == len(keys):
                    return
    except Exception:  # noqa: BLE001 - int + float overflowed: add() counts that item
        pass
    add(ev, zip(keys[done:], numbers[done:]))


def add(ev: Any, items: Iterable[tuple[str, Any]]) -> None:
    """Add each ``(field, value)`` to ``ev`` and ``rollup.<field>`` to its root. Never raises.

    ``ev`` is an :class:`~wideevents._core.event.Event` (duck typed: ``_fields``, ``_done``,
    ``_root``, ``_late``, ``_pipeline``); a non-recording event is ignored.
    """
    if not ev.recording:
        return
    try:
        root = ev if ev._root is None else ev._root
        late = 0
        bad: list[str] = []
        checked = []
        for key, value in items:
            number = value if type(value) is int else as_number(value)
            if type(key) is not str:
                key = safe_repr(key, 100)
            if number is None:
                bad.append(key)
            else:
                checked.append((key, "rollup." + key, number))
        targets = ((ev, 0), (root, 1))
        with _lock:
            for key, root_key, number in checked:
                for target, which in targets:
                    k = root_key if which else key
                    f = target._fields
                    prior = f.get(k, 0)
                    if type(prior) not in _NUMBER:
                        bad.append(k)
                        continue
                    try:
                        total = prior + number
                    except (OverflowError, TypeError):  # 10**400 + 1.5; a number type's own
                        bad.append(k)
                        continue
                    if type(total) is not int and not _isfinite(total):  # 1e308 + 1e308
                        bad.append(k)
                        continue
                    if target._done:
                        late += 1
                    else:
                        f[k] = total  # no call since the check (_core/event.py docstring)
        if late:
            ev._late(late)
        if bad:
            ev._pipeline.note_dropped_field("bad_rollup", len(bad))
            log_once("bad-rollup", "wideevents: rollup(%r, ...) needs a finite number and a "
                     "field that holds one; dropped (counted in "
                     "stats()['fields']['dropped']['bad_rollup'])", bad[0])
    except Exception as exc:  # noqa: BLE001 - a rollup never raises into the caller
        log_once("rollup", "wideevents: rollup failed: %s", safe_repr(exc, 200))
