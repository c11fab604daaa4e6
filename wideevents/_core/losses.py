"""Losses: which counted outcomes are failures, and the summary lines that report them.

An event is *lost* when it was dropped or rejected for a failure: by the pipeline (queue
full, shutdown, an internal error) or by a sink (the backend said no, retries ran out, the
buffer was full, a write failed). Sampling and a processor returning None are decisions,
not failures. :func:`losses` reads a ``stats()`` snapshot into counts by
``(where, outcome, reason)``; :func:`summary` writes one log line about a period's losses.

The pipeline uses these for two promises (docs/reliability.md, "Guarantees"):
``flush()``/``shutdown()`` return False when anything was lost since the previous call
returned, and losses are reported in one line per minute while they continue and once at
shutdown, never as a first line followed by silence.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .log import logger

__all__ = ["DECISIONS", "LossCounts", "LossWatch", "losses", "summary", "total"]

#: Drop reasons that are decisions, not failures: the pipeline's sampler and processors,
#: an OpenTelemetry SDK whose own sampler declined the span (``OTelSink``), and
#: ``OTEL_SDK_DISABLED=true`` (``OTLPSink``, ``OTelSink``).
DECISIONS = frozenset({"sampled", "processor", "not_recording", "sdk_disabled"})

LossCounts = dict[tuple[str, str, str], int]


def losses(stats: Mapping[str, Any]) -> LossCounts:
    """Failure counts in a ``stats()`` snapshot: ``(where, outcome, reason) -> n``."""
    out: LossCounts = {}
    for reason, n in stats.get("dropped", {}).items():
        if reason not in DECISIONS and n:
            out[("pipeline", "dropped", reason)] = n
    for name, sink in stats.get("sinks", {}).items():
        for outcome in ("rejected", "dropped"):
            for reason, n in sink.get(outcome, {}).items():
                if n and reason not in DECISIONS:
                    out[(f"sink {name}", outcome, reason)] = n
    return out


def total(counts: LossCounts) -> int:
    return sum(counts.values())


def _since(now: LossCounts, before: LossCounts) -> LossCounts:
    return {k: n - before.get(k, 0) for k, n in now.items() if n > before.get(k, 0)}


def summary(now: LossCounts, before: LossCounts, emitted: int, period: str) -> str | None:
    """One line about the losses between two snapshots, or None when there were none.

    ``period`` names it ("in the last 60 s", "since configure()"); the line ends with the
    totals since the pipeline started, so a reader never mistakes a first report for all.
    """
    new = _since(now, before)
    if not new:
        return None
    parts = []
    for where in sorted({k[0] for k in new}):
        items = sorted(((k[1], k[2], n) for k, n in new.items() if k[0] == where),
                       key=lambda item: -item[2])
        shown = ", ".join(f"{outcome} {reason} {n:,}" for outcome, reason, n in items[:6])
        if len(items) > 6:
            shown += f", {len(items) - 6} more reasons"
        parts.append(f"{where}: {shown}")
    return (f"wideevents: events lost {period}: " + "; ".join(parts)
            + f" (since the pipeline started: {total(now):,} lost of {emitted:,} emitted;"
            " stats() has the counts)")


class LossWatch:
    """One pipeline's two marks: losses at the last flush/shutdown, and at the last report."""

    def __init__(self) -> None:
        self._at_call: LossCounts = {}
        self._reported: LossCounts = {}

    def unchanged_since_last_call(self, stats: Mapping[str, Any]) -> bool:
        """True when nothing was lost since the previous call; moves the mark."""
        now = losses(stats)
        unchanged = now == self._at_call
        self._at_call = now
        return unchanged

    def report(self, stats: Mapping[str, Any], period: str) -> None:
        """Log one summary line when events were lost since the previous report."""
        now = losses(stats)
        line = summary(now, self._reported, int(stats.get("emitted", 0)), period)
        self._reported = now
        if line is not None:
            try:
                logger.warning(line)
            except Exception:  # noqa: BLE001 - a broken handler of the host must not break us
                pass
