"""The gunicorn ``worker_exit`` recipe of docs/reliability.md.

gunicorn calls ``worker_exit`` in each worker after its request loop ends (recycled by
``--max-requests``, or stopped by the master), before the interpreter exits.
"""

from __future__ import annotations

from typing import Any


def worker_exit(server: Any, worker: Any) -> None:
    import wideevents

    wideevents.shutdown(timeout=10.0)
