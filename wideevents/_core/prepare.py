"""Preparing one finished event for the sinks: the pipeline's per-event step, without threads.

:class:`Preparer` turns the raw fields an :class:`~wideevents.Event` finished with into a
:class:`~wideevents._core.record.Record` (the final flat dict and its JSON, once), or into
a drop reason. In order: the timestamp, normalisation, the prediction cache, the user's
processors, the sample-rate rule (:mod:`.samplerate`), the sampler, redaction, limits,
serialisation. A clean event (no processors,
nothing to normalise, redact or cut) is serialised once on a fast path that checks all
of that in the same pass.

Everything it counts goes into a :class:`Tally` the caller merges (the threaded
:class:`~wideevents._core.pipeline.Pipeline` does so under its lock), so this step can
be run and tested on any thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from . import predictions
from .limits import Limits, apply_limits, dumps, fast_serialize, serialize
from .log import log_once
from .normalize import FieldReport, Normalizer, safe_repr
from .record import Record
from .redact import Redactor
from .samplerate import MAX_RATE, coerce
from .timefmt import rfc3339_ns

__all__ = ["Preparer", "Processor", "Sampler", "Tally"]

Processor = Callable[[dict[str, Any]], "dict[str, Any] | None"]
Sampler = Callable[[dict[str, Any]], int]


class Tally:
    """What preparing some events counted: drops by reason, errors, fields cut."""

    __slots__ = ("dropped", "errors", "fields_dropped", "fields_truncated")

    def __init__(self) -> None:
        self.dropped: dict[str, int] = {}
        self.errors: dict[str, int] = {}
        self.fields_dropped: dict[str, int] = {}
        self.fields_truncated: dict[str, int] = {}


def _propagate_interrupt(exc: BaseException) -> None:
    """Re-raise Ctrl-C on the main thread (a synchronous pipeline runs there); contain the
    rest: on the worker, a processor's SystemExit must not end the worker silently."""
    if isinstance(exc, KeyboardInterrupt) and threading.current_thread() is threading.main_thread():
        raise exc


def _bump(counts: dict[str, int], reason: str, n: int = 1) -> None:
    counts[reason] = counts.get(reason, 0) + n


class Preparer:
    """The per-event step: raw fields in, a :class:`Record` (or a drop reason) out."""

    __slots__ = ("processors", "sampler", "limits", "redactor", "_normalize")

    def __init__(self, *, processors: Iterable[Processor] = (), sampler: Sampler | None = None,
                 limits: Limits | None = None, redactor: Redactor | None = None) -> None:
        self.processors = tuple(processors)
        self.sampler = sampler
        self.limits = limits or Limits()
        self.redactor = redactor or Redactor()
        self._normalize = Normalizer(max_string_bytes=self.limits.max_string_bytes,
                                     redactor=self.redactor)

    def prepare_all(self, chunk: Iterable[tuple[dict[str, Any], int]], tally: Tally,
                    stop: Callable[[], bool] | None = None) -> list[Record]:
        """Prepare each ``(fields, start_ns)``; what is dropped is counted in ``tally``.

        Never raises: an event whose preparation fails is dropped as ``internal_error``.
        ``stop``: checked before each event; once true, the rest is left unprepared (the
        caller has accounted for it: a pipeline that shut down).
        """
        records: list[Record] = []
        prepare = self.prepare
        for fields, start_ns in chunk:
            if stop is not None and stop():
                break
            try:
                record = prepare(fields, start_ns, tally)
            except BaseException as exc:  # noqa: BLE001 - SystemExit, GreenletExit... too: the
                # worker must outlive whatever a user's processor, sampler or value raises
                _propagate_interrupt(exc)
                log_once(f"pipeline:{type(exc).__name__}", "wideevents: an event could not be "
                         "processed and was dropped: %s", safe_repr(exc, 200))
                _bump(tally.dropped, "internal_error")
                continue
            if record is not None:
                records.append(record)
        return records

    def prepare(self, fields: dict[str, Any], start_ns: int, tally: Tally) -> Record | None:
        """One event's Record, or None when it was dropped (the reason is in ``tally``)."""
        # Events start as a copy of the pipeline's base fields, so static fields are
        # already in place (overridden by the event's own values): nothing is merged here.
        out = fields
        if out.get("timestamp") is None:
            out["timestamp"] = rfc3339_ns(start_ns)
        if out.get("duration_ms", 0) is None:
            del out["duration_ms"]
        rate = out.get("samplerate", 1)
        if not self.processors and type(rate) is int and 1 <= rate <= MAX_RATE:
            # Fast path: a clean event is serialised once and needs nothing else.
            data = fast_serialize(out, self.limits, self.redactor)
            if data is not None:
                if "prediction.id" in out:
                    predictions.remember(out)
                if self.sampler is not None:
                    had_rate = "samplerate" in out
                    if not self._sample(out, tally):
                        _bump(tally.dropped, "sampled")
                        return None
                    # A new samplerate is the dict's last key: append it to the JSON rather
                    # than serialising the whole event a second time.
                    data = dumps(out) if had_rate else (
                        b'%b,"samplerate":%d}' % (data[:-1], out["samplerate"]))
                return Record(out, data)
        report = FieldReport()
        out = self._normalize(out, report)
        if "prediction.id" in out:
            predictions.remember(out)
        for proc in self.processors:
            try:
                result = proc(out)
            except BaseException as exc:  # noqa: BLE001 - a user's processor: counted, skipped
                _propagate_interrupt(exc)
                _bump(tally.errors, "processor_error")
                log_once(f"processor:{getattr(proc, '__qualname__', proc)}",
                         "wideevents: processor %s raised %s; it was skipped for this event",
                         safe_repr(proc, 100), safe_repr(exc, 200))
                continue
            if result is None:
                _bump(tally.dropped, "processor")
                return None
            out = result
        if "samplerate" in out:
            _fix_rate(out, report)
        if self.sampler is not None and not self._sample(out, tally):
            _bump(tally.dropped, "sampled")
            return None
        # Values are walked for nested secrets only when user code ran after normalising.
        out = self.redactor(out, walk=bool(self.processors) or self.sampler is not None)
        out = apply_limits(out, self.limits, report)
        out, data = serialize(out, self.limits, report)
        if report:
            for _, reason in report.dropped:
                _bump(tally.fields_dropped, reason)
            for _, reason in report.truncated:
                _bump(tally.fields_truncated, reason)
        return Record(out, data)

    def _sample(self, out: dict[str, Any], tally: Tally) -> bool:
        """Run the sampler; set or multiply ``samplerate``. False means drop."""
        try:
            rate = self.sampler(out)  # type: ignore[misc]
        except BaseException as exc:  # noqa: BLE001 - a user's sampler: counted, event kept
            _propagate_interrupt(exc)
            _bump(tally.errors, "sampler_error")
            log_once("sampler-error", "wideevents: the sampler raised %s; the event was kept",
                     safe_repr(exc, 200))
            rate = 1
        if type(rate) is not int:
            try:
                rate = int(rate) if rate == rate else 1
            except BaseException:  # noqa: BLE001 - a sampler's odd return value counts as 1
                rate = 1
        if rate <= 0:
            return False
        prior = out.get("samplerate")  # a positive int or absent: see _fix_rate
        out["samplerate"] = min(rate * prior if type(prior) is int else rate, MAX_RATE)
        return True


def _fix_rate(out: dict[str, Any], report: FieldReport) -> None:
    """Apply the one sample-rate rule (:mod:`.samplerate`): an integer, or no field at all."""
    raw = out["samplerate"]
    if type(raw) is int and 1 <= raw <= MAX_RATE:
        return
    rate = coerce(raw)
    if rate is None:
        del out["samplerate"]
        report.dropped.append(("samplerate", "bad_samplerate"))
    else:
        out["samplerate"] = rate
