"""The gunicorn hooks of docs/prometheus.md (multiprocess mode), loaded with
``gunicorn -c python:tests.integrations.prometheus_gunicorn_conf``.

``child_exit`` runs in the master when a worker exits: ``mark_process_dead`` removes that
worker's live-gauge files (prometheus_client documentation, "Multiprocess Mode"); its
counters and histograms stay, so totals survive worker restarts. ``worker_exit`` runs in
the worker: the wide events it holds are delivered first (docs/reliability.md).
"""

from __future__ import annotations

from typing import Any


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def worker_exit(server: Any, worker: Any) -> None:
    import wideevents

    wideevents.shutdown(timeout=10.0)
