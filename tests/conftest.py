"""Shared fixtures: every test starts without a configured pipeline."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterator

import pytest

from wideevents._core import runtime

pytest_plugins = ["tests.support.reliability"]


def pytest_configure(config: pytest.Config) -> None:
    """Keep the query engine's columnar cache out of the home directory (subprocesses too)."""
    os.environ.setdefault("WIDEEVENTS_CACHE_DIR", tempfile.mkdtemp(prefix="wideevents-cache-"))


@pytest.fixture(autouse=True)
def _fresh_pipeline() -> Iterator[None]:
    """Shut down whatever a test configured and start the next test from scratch."""
    previous = runtime.swap(None)
    if previous is not None:
        previous.shutdown(timeout=2.0)
    yield
    current = runtime.swap(None)
    if current is not None:
        current.shutdown(timeout=2.0)
    otel = sys.modules.get("wideevents._correlation")
    if otel is not None:  # configure() may have turned correlation on: process-wide state
        otel.disable()
