"""wideevents' own threads: daemons that never take the host's signals.

A signal sent to the process (``kill``, Ctrl-C, a container's SIGTERM) goes to one thread
that does not block it. CPython runs Python signal handlers on the main thread only, and
a main thread blocked in a system call (``time.sleep``, a socket read) notices a signal
only when that call is interrupted, which happens only if the signal was delivered to it.
Delivered to one of our background threads instead, a SIGINT or SIGTERM would wait,
unnoticed, until the main thread's call returned by itself (seen: a process sleeping
60 s ignored Ctrl-C for those 60 s). So each thread started here blocks the asynchronous
signals before it runs: the kernel then delivers them to the host's threads. Faults
(SIGSEGV, SIGBUS, SIGFPE, SIGILL...) are never blocked.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["ASYNC_SIGNALS", "daemon", "quiet_signals"]

ASYNC_SIGNALS = frozenset(
    getattr(signal, name) for name in (
        "SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGCHLD",
        "SIGWINCH", "SIGTSTP", "SIGCONT", "SIGTTIN", "SIGTTOU", "SIGURG", "SIGVTALRM",
        "SIGPROF", "SIGIO",
    ) if hasattr(signal, name)
)


def quiet_signals() -> None:
    """Block the asynchronous signals in the calling thread (where the platform can)."""
    try:
        signal.pthread_sigmask(signal.SIG_BLOCK, ASYNC_SIGNALS)
    except (AttributeError, OSError, ValueError):  # no pthread_sigmask (Windows)
        pass


def daemon(target: Callable[..., Any], name: str, args: tuple[Any, ...] = ()) -> threading.Thread:
    """A daemon thread (not started) running ``target(*args)`` with the signals blocked."""

    def run() -> None:
        quiet_signals()
        target(*args)

    return threading.Thread(target=run, name=name, daemon=True)
