"""Reading the environment: one helper, so every setting is read the same way."""

from __future__ import annotations

import os

__all__ = ["env", "first_env"]


def env(name: str) -> str:
    """The variable's value with surrounding whitespace removed; ``""`` when unset."""
    return os.environ.get(name, "").strip()


def first_env(*names: str) -> tuple[str, str]:
    """``(name, value)`` of the first of ``names`` that is set and not blank, else ``("", "")``."""
    for name in names:
        value = env(name)
        if value:
            return name, value
    return "", ""
