"""Exceptions raised by wideevents.

Only one exception ever reaches user code, and only while configuring::

    ValueError
    └── ConfigurationError   bad argument, environment variable, path or file at set-up

After configuration nothing raises into user code: failures are contained, logged once
through the ``wideevents`` logger and counted in ``wideevents.stats()``.
"""

from __future__ import annotations

__all__ = ["ConfigurationError"]


class ConfigurationError(ValueError):
    """A setting is wrong; the message says which one and how to fix it."""
