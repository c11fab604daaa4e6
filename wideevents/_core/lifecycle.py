"""The process around the pipeline: exit flushing, multiprocessing children, signals.

- :func:`arm` (called by ``configure()`` and when the default pipeline is built): at
  interpreter exit, and at the exit of a fork-method ``multiprocessing`` child (which
  ends with ``os._exit()``, skipping ``atexit``), the slot's pipeline is shut down within
  the exit timeout.
- :func:`install_signal_handlers`: SIGTERM/SIGINT flush within a deadline on a helper
  thread, then the signal goes to the previous handler.

Forked children rebuild the pipeline's own state in :mod:`.pipeline` (``register_at_fork``).
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading
from collections.abc import Iterable
from typing import Any

from .._errors import ConfigurationError
from . import runtime
from .log import log_once
from .threads import daemon

__all__ = ["arm", "install_signal_handlers", "set_exit_timeout"]

_exit_timeout = 2.0
_atexit_registered = False


def set_exit_timeout(seconds: float) -> None:
    """How long the exit flush may take (``configure(exit_timeout=...)``)."""
    global _exit_timeout
    _exit_timeout = float(seconds)


def arm() -> None:
    """Shut the slot's pipeline down at exit (atexit, and multiprocessing's finalizers)."""
    global _atexit_registered
    if not _atexit_registered:
        _atexit_registered = True
        atexit.register(_at_exit)
    _arm_multiprocessing_exit()


def _at_exit() -> None:
    runtime.shutdown(timeout=_exit_timeout)


class _ForkToken:
    """A weak-referenceable key for multiprocessing's after-fork registry."""


_fork_token = _ForkToken()
_mp_armed_pid = 0


def _arm_multiprocessing_exit(_token: object = None) -> None:
    """Shut down at exit from multiprocessing's finalizers too, once per process.

    ``multiprocessing`` ends its fork and forkserver children with ``os._exit()``: atexit
    never runs there, but the finalizers of ``multiprocessing.util`` do (when the target
    returns). A child clears the finalizers it inherits, then runs the after-fork
    callbacks: this function is one, so the child arms itself again.
    """
    global _mp_armed_pid
    util = sys.modules.get("multiprocessing.util")
    if util is None or _mp_armed_pid == os.getpid():
        return
    _mp_armed_pid = os.getpid()
    try:
        util.Finalize(None, _at_exit, exitpriority=0)
        util.register_after_fork(_fork_token, _arm_multiprocessing_exit)
    except Exception as exc:  # noqa: BLE001 - exit flushing is best effort, never fatal
        log_once("mp-finalize", "wideevents: cannot register a multiprocessing exit "
                 "finalizer: %s", exc)


def _before_fork() -> None:
    # multiprocessing may have been imported after configure(): arm before its children fork.
    if runtime.current() is not None:
        _arm_multiprocessing_exit()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork)


def install_signal_handlers(timeout: float = 5.0,
                            signals: Iterable[int] = (signal.SIGTERM, signal.SIGINT)) -> None:
    """On SIGTERM/SIGINT flush within ``timeout``, then run the previous handler.

    Call it from the main thread. With the default previous handler the process then
    ends as it would have (SIGINT raises KeyboardInterrupt; SIGTERM terminates). The
    program keeps running while the flush runs on a helper thread; a second signal
    during the flush runs the previous handler at once. Calling it again replaces the
    timeout (handlers are not stacked).
    """
    if threading.current_thread() is not threading.main_thread():
        raise ConfigurationError("install_signal_handlers() must be called from the main thread")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout >= 0:
        raise ConfigurationError(f"install_signal_handlers(timeout={timeout!r}): use seconds >= 0")
    for signum in signals:
        previous = signal.getsignal(signum)
        if isinstance(previous, _FlushThenChain):
            previous = previous.previous
        signal.signal(signum, _FlushThenChain(previous, float(timeout)))


class _FlushThenChain:
    """A signal handler: flush on a helper thread, then deliver the signal again and chain.

    Flushing inside the handler could deadlock: the handler runs on the main thread between
    two bytecodes, possibly while that thread holds the pipeline's lock (in ``finish()``),
    which the flush needs. So the handler only starts the helper and returns; the helper
    flushes, then sends the same signal again, and the handler passes it on.
    """

    def __init__(self, previous: Any, timeout: float) -> None:
        self.previous = previous
        self.timeout = timeout
        self._state = "idle"  # -> "flushing" (helper running) -> "flushed" (signal resent)
        self._cycle = 0

    def __call__(self, num: int, frame: Any) -> None:
        if self._state == "idle":
            self._state = "flushing"
            daemon(self._flush_and_resend, "wideevents-signal-flush",
                   (num, self._cycle)).start()
            return
        # The helper's resent signal, or a second one during the flush: chain now.
        self._state = "idle"
        self._cycle += 1
        self._chain(num, frame)

    def _flush_and_resend(self, num: int, cycle: int) -> None:
        runtime.flush(self.timeout)
        if self._cycle == cycle and self._state == "flushing":
            self._state = "flushed"
            # To the main thread itself: sent to the process, the signal could land on a
            # thread of the host's that does not block it, and a main thread blocked in a
            # system call would not notice it (_core/threads.py).
            signal.pthread_kill(threading.main_thread().ident or 0, num)

    def _chain(self, num: int, frame: Any) -> None:
        previous = self.previous
        if callable(previous):
            previous(num, frame)
        elif previous == signal.SIG_IGN:
            return
        else:  # SIG_DFL, or a handler installed outside Python (None): the default action
            signal.signal(num, signal.SIG_DFL)
            os.kill(os.getpid(), num)
