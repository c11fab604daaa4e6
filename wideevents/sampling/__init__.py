"""Samplers: decide, once an event has finished, whether to keep it and with what weight.

A sampler is any callable ``(event: dict) -> int``: N >= 1 keeps the event standing for N
events (the pipeline writes it to ``samplerate``), 0 drops it. Optional methods the
pipeline uses: ``stats() -> dict`` (under ``wideevents.stats()["samplers"][name]``),
``close()`` at shutdown, ``reset_after_fork()`` in a forked child; ``name`` names it.

- :class:`DeterministicSampler`: 1 in N by a hash of the trace id; keeps whole traces.
- :class:`DynamicSampler`: per-key rates meeting an average goal; rare keys kept whole.
- :class:`RulesSampler`: ordered rules (``keep_errors()``, ...), first match wins.
"""

from __future__ import annotations

from ._deterministic import REFINERY_SALT, DeterministicSampler
from ._dynamic import OVERFLOW_KEY, DynamicSampler
from ._rules import (
    RulesSampler,
    keep_errors,
    keep_input_violations,
    keep_nonfinite,
    keep_shadow_disagreement,
    keep_slower_than,
    keep_status_at_least,
)

__all__ = [
    "OVERFLOW_KEY",
    "REFINERY_SALT",
    "DeterministicSampler",
    "DynamicSampler",
    "RulesSampler",
    "keep_errors",
    "keep_input_violations",
    "keep_nonfinite",
    "keep_shadow_disagreement",
    "keep_slower_than",
    "keep_status_at_least",
]
