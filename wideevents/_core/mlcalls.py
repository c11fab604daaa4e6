"""The ML helper methods of :class:`~wideevents.Event`: explicit signatures, one forwarder.

Each method forwards to the module :data:`.hooks.ml_helpers` (``wideevents.ml._bind``, above
the core: ``configure``'s module wires it in). The signatures are explicit and keyword-only,
so mypy and IDEs catch a misspelt keyword (``threshhold=``) or a stray positional argument
(typed ``Never``); at run time such an argument is still accepted, never raised, and the
helper counts it in ``meta.ml_error_count`` and logs each new one (docs/schema.md,
"Accounting"). A non-recording event's helpers do nothing; nothing here raises.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Never, Self

from . import hooks
from .log import log_once
from .normalize import safe_repr

__all__ = ["MLMethods", "ml_call"]


def ml_call(helper: str, ev: Any, *args: Any, **kwargs: Any) -> Any:
    """``wideevents.ml._bind.<helper>(ev, ...)``, contained: its result, or None."""
    try:
        helpers = hooks.ml_helpers
        if helpers is None:
            if not ev.recording:
                return None  # a non-recording event's helpers do nothing anyway
            log_once("ml-unwired", "wideevents: ev.%s() needs wideevents.ml, which was not "
                     "wired in (import wideevents does it); the call was ignored", helper)
            return None
        return getattr(helpers, helper)(ev, *args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - the helpers contain their own errors; belt and braces
        log_once(f"ml:{helper}:{type(exc).__name__}", "wideevents: ev.%s() failed: %s", helper,
                 safe_repr(exc, 200))
        return None


class MLMethods:
    """``model``, ``scores``, ``features``, ``ranking``, ``retrieval``, ``shadow`` and
    ``feedback_context``: see :mod:`wideevents.ml` and docs/schema.md for their fields."""

    __slots__ = ()

    def model(self, name: str, version: str, *extra: Never, stage: str | None = None,
              artifact_sha256: str | None = None, trained_at: Any = None,
              **meta: Any) -> Self:
        """``model.*`` fields (each extra keyword becomes ``model.<key>``)."""
        ml_call("model", self, name, version, *extra, stage=stage,
                artifact_sha256=artifact_sha256, trained_at=trained_at, **meta)
        return self

    def scores(self, values: Any, *extra: Never, labels: Sequence[Any] | None = None,
               k: int = 5, logits: bool = False, kind: str = "auto",
               threshold: float | None = None, positive: Any = None,
               **unexpected: Never) -> Self:
        """``prediction.*`` and ``score.*`` fields; see :func:`wideevents.ml.score_fields`."""
        ml_call("scores", self, values, *extra, labels=labels, k=k, logits=logits, kind=kind,
                threshold=threshold, positive=positive, **unexpected)
        return self

    def features(self, values: Any, *extra: Never, names: Sequence[str] | None = None,
                 profile: Any = None, **unexpected: Never) -> Self:
        """``feature.*``, ``feature_bin.*`` and ``data.*`` fields."""
        ml_call("features", self, values, *extra, names=names, profile=profile, **unexpected)
        return self

    def ranking(self, ids: Any, scores: Any = None, *extra: Never, k: int = 10,
                **unexpected: Never) -> Self:
        """``result.*`` fields; the event's primary result."""
        ml_call("ranking", self, ids, scores, *extra, k=k, **unexpected)
        return self

    def retrieval(self, backend: str, *extra: Never, candidates: Any = None,
                  status: Any = None, duration_ms: Any = None, **unexpected: Never) -> Self:
        """``retrieval.<backend>.*`` and ``timing.retrieval.<backend>_ms``."""
        ml_call("retrieval", self, backend, *extra, candidates=candidates, status=status,
                duration_ms=duration_ms, **unexpected)
        return self

    def shadow(self, version: str, *extra: Never, ids: Any = None, scores: Any = None,
               k: int = 10, duration_ms: Any = None, labels: Sequence[Any] | None = None,
               logits: bool | None = None, threshold: float | None = None,
               positive: Any = None, **unexpected: Never) -> Self:
        """``shadow.*``: agreement of a dark-launched model with the primary result. The
        shadow's ``labels``, ``logits``, ``threshold`` and ``positive`` default to the
        primary's (``ev.scores``)."""
        ml_call("shadow", self, version, *extra, ids=ids, scores=scores, k=k,
                duration_ms=duration_ms, labels=labels, logits=logits, threshold=threshold,
                positive=positive, **unexpected)
        return self

    def feedback_context(self) -> str:
        """A signed token (at most 512 URL-safe characters) carrying this prediction's model,
        label, scores and ``slice.*`` fields, to return with the response and pass back to
        ``wideevents.feedback(prediction_id, context=token)`` from any process; ``""`` for
        a non-recording event. Call it after ``model``/``scores`` and the slices."""
        token = ml_call("feedback_context", self)
        return token if type(token) is str else ""
