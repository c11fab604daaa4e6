"""The ML helpers bound to an event: what ``Event.model``, ``Event.scores`` ... call.

Each function takes the event first and follows one pattern: return at once for a
non-recording event; otherwise touch ``ev.prediction_id`` (every event that uses an ML helper
gets a ``prediction.id``), compute the fields with the pure functions of this package, fold
their ``meta.ml_error_count`` / ``meta.ml_error_reasons`` into the event's running totals and
add them. Nothing here raises into user code. An argument the signature does not have (a
misspelt keyword, a stray positional argument; ``Event``'s signatures let mypy catch them)
is ignored, counted as a problem (``<helper>: unknown keyword argument``) and logged once per
helper and name; the rest of the call is recorded.

``ev._ml`` holds this module's per-event state: the primary result (the top-k ids of
``ranking``, else the decision of ``scores``) that ``shadow`` compares with.
"""

from __future__ import annotations

import difflib
import math
import time
from typing import Any, Protocol

from .._core.ids import uuid7_unix_ms
from .._core.log import log_once
from .._core.redact import default_redactor
from .._core.timefmt import rfc3339
from . import _context
from ._problems import COUNT_KEY, REASONS_KEY, Problems, as_float, as_index, merge_counts
from ._time import unix_seconds
from ._values import is_missing

__all__ = [
    "MLEvent", "feedback_context", "features", "model", "ranking", "retrieval", "scores",
    "shadow",
]

_SIGNATURES = {
    "scores": ("labels", "k", "logits", "kind", "threshold", "positive"),
    "features": ("names", "profile"),
    "ranking": ("k",),
    "retrieval": ("candidates", "status", "duration_ms"),
    "shadow": ("ids", "scores", "k", "duration_ms", "labels", "logits", "threshold", "positive"),
}


class MLEvent(Protocol):
    """The part of ``wideevents.Event`` these helpers use."""

    _ml: Any

    @property
    def recording(self) -> bool: ...

    @property
    def prediction_id(self) -> str: ...

    @property
    def fields(self) -> dict[str, Any]: ...

    def add(self, mapping: dict[str, Any], /) -> object: ...

    def get(self, key: str, default: Any = None, /) -> Any: ...


class _Pure:
    """The numpy-backed pure functions, imported on first use so that importing this module
    (which ``wideevents.Event`` does) stays cheap; then cached as plain attributes."""

    def __getattr__(self, name: str) -> Any:
        from . import _features, _ranking, _scores

        for module in (_scores, _features, _ranking):
            value = getattr(module, name, None)
            if value is not None:
                setattr(self, name, value)
                return value
        raise AttributeError(name)


_pure = _Pure()


class _State:
    """The event's primary result, for ``shadow``."""

    __slots__ = ("kind", "label", "options", "ranking", "score", "top")

    def __init__(self) -> None:
        self.ranking: list[Any] | None = None
        self.kind: str | None = None
        self.label: Any = None
        self.score: float | None = None
        self.top: list[Any] | None = None
        self.options: dict[str, Any] = {}


def _state(ev: MLEvent) -> _State:
    state = ev._ml
    if not isinstance(state, _State):
        state = ev._ml = _State()
    return state


def _add(ev: MLEvent, fields: dict[str, Any]) -> None:
    """Add ``fields``, folding their ML error accounting into the event's totals."""
    count = fields.pop(COUNT_KEY, 0)
    if count:
        reasons = fields.pop(REASONS_KEY, [])
        fields[COUNT_KEY], fields[REASONS_KEY] = merge_counts(
            ev.get(COUNT_KEY), ev.get(REASONS_KEY), count, reasons
        )
    ev.add(fields)


def _unexpected(problems: Problems, what: str, extra: tuple[Any, ...],
                unknown: dict[str, Any]) -> None:
    """Count (and log, once per helper and name) arguments the helper does not take."""
    if extra:
        problems.add(f"{what}: unexpected positional argument", f"{len(extra)} extra")
    for name in unknown:
        problems.add(f"{what}: unknown keyword argument", log=False)
        near = difflib.get_close_matches(name, _SIGNATURES.get(what, ()), n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        log_once(f"ml:{what}:keyword:{name}", "wideevents.ml: ev.%s() got an unknown keyword "
                 "argument %r, ignored (counted in meta.ml_error_count)%s", what, name[:100], hint)


def _contain(ev: MLEvent, what: str, exc: BaseException) -> None:
    problems = Problems()
    problems.add(f"{what}: internal error", exc)
    try:
        _add(ev, problems.into({}))
    except Exception as again:  # noqa: BLE001 - the event itself is broken
        log_once("ml:broken-event", "wideevents.ml: cannot record on the event (%r)", again)


def model(
    ev: MLEvent,
    name: str,
    version: str,
    *extra: Any,
    stage: str | None = None,
    artifact_sha256: str | None = None,
    trained_at: Any = None,
    **meta: Any,
) -> None:
    """``model.name``, ``model.version``, ``model.stage``, ``model.artifact.sha256``,
    ``model.trained_at`` (RFC 3339) and ``model.age_s`` (now - trained_at), ``model.<key>``
    for each extra keyword. ``trained_at``: datetime (naive = UTC), Unix seconds or ISO 8601.
    """
    if not ev.recording:
        return
    try:
        _ = ev.prediction_id  # every event using an ML helper gets a prediction.id
        problems = Problems()
        _unexpected(problems, "model", extra, {})
        fields: dict[str, Any] = {"model.name": str(name), "model.version": str(version)}
        if stage is not None:
            fields["model.stage"] = str(stage)
        if artifact_sha256 is not None:
            fields["model.artifact.sha256"] = str(artifact_sha256)
        if not is_missing(trained_at):  # None, pandas' NaT, numpy's NaT: not known
            seconds = unix_seconds(trained_at)
            if seconds is None:
                problems.add("model: trained_at is not a point in time", trained_at)
            else:
                fields["model.trained_at"] = rfc3339(seconds)
                fields["model.age_s"] = time.time() - seconds
        for key, value in meta.items():
            fields["model." + key] = value
        _add(ev, problems.into(fields))
    except Exception as exc:  # noqa: BLE001 - containment
        _contain(ev, "model", exc)


def scores(
    ev: MLEvent,
    values: Any,
    *extra: Any,
    labels: Any = None,
    k: int = 5,
    logits: bool = False,
    kind: str = "auto",
    threshold: float | None = None,
    positive: Any = None,
    **unknown: Any,
) -> None:
    """``prediction.*`` and ``score.*`` (see :func:`wideevents.ml.score_fields`); the decision
    becomes the primary result ``shadow`` compares with when there is no ranking."""
    if not ev.recording:
        return
    try:
        _ = ev.prediction_id  # every event using an ML helper gets a prediction.id
        fields, resolved = _pure.score_fields_kind(
            values, labels=labels, k=k, logits=logits, kind=kind, threshold=threshold,
            positive=positive,
        )
        if resolved is not None:
            state = _state(ev)
            state.kind = resolved
            state.label = fields.get("prediction.label")
            state.score = fields.get("prediction.score")
            state.top = fields.get("score.topk.labels")
            state.options = {"labels": labels, "k": k, "logits": logits,
                             "threshold": threshold, "positive": positive}
        if extra or unknown:
            problems = Problems()
            _unexpected(problems, "scores", extra, unknown)
            fields = problems.into(problems.absorb(fields))
        _add(ev, fields)
    except Exception as exc:  # noqa: BLE001 - containment
        _contain(ev, "scores", exc)


def features(ev: MLEvent, values: Any, *extra: Any, names: Any = None, profile: Any = None,
             **unknown: Any) -> None:
    """``feature.*``, ``feature_bin.*`` and ``data.*`` (see :func:`wideevents.ml.feature_fields`)."""
    if not ev.recording:
        return
    try:
        _ = ev.prediction_id  # every event using an ML helper gets a prediction.id
        fields = _pure.feature_fields(values, names=names, profile=profile)
        if extra or unknown:
            problems = Problems()
            _unexpected(problems, "features", extra, unknown)
            fields = problems.into(problems.absorb(fields))
        _add(ev, fields)
    except Exception as exc:  # noqa: BLE001 - containment
        _contain(ev, "features", exc)


def ranking(ev: MLEvent, ids: Any, scores: Any = None, *extra: Any, k: int = 10,
            **unknown: Any) -> None:
    """``result.*`` (see :func:`wideevents.ml.ranking_fields`); the top k become the event's
    primary result."""
    if not ev.recording:
        return
    try:
        _ = ev.prediction_id  # every event using an ML helper gets a prediction.id
        fields, top = _pure.ranking_fields_top(ids, scores, k=k)
        if top is not None:
            _state(ev).ranking = top
        if extra or unknown:
            problems = Problems()
            _unexpected(problems, "ranking", extra, unknown)
            fields = problems.into(problems.absorb(fields))
        _add(ev, fields)
    except Exception as exc:  # noqa: BLE001 - containment
        _contain(ev, "ranking", exc)


def _milliseconds(value: Any, problems: Problems, what: str) -> float | None:
    ms = as_float(value)
    if not (math.isfinite(ms) and ms >= 0.0) or isinstance(value, bool):
        problems.add(f"{what}: duration_ms is not a non-negative number", value)
        return None
    return ms


def retrieval(ev: MLEvent, backend: str, *extra: Any, candidates: Any = None,
              status: Any = None, duration_ms: Any = None, **unknown: Any) -> None:
    """``retrieval.<backend>.candidates`` / ``.status`` and ``timing.retrieval.<backend>_ms``:
    one leg of a search mixer's fan-out. ``None`` leaves a field out."""
    if not ev.recording:
        return
    try:
        _ = ev.prediction_id  # every event using an ML helper gets a prediction.id
        problems = Problems()
        _unexpected(problems, "retrieval", extra, unknown)
        if not isinstance(backend, str) or not backend:
            problems.add("retrieval: backend must be a non-empty string", backend)
            backend = str(backend) or "unknown"
        fields: dict[str, Any] = {}
        if candidates is not None:
            count = as_index(candidates)
            if count is None:
                problems.add("retrieval: candidates is not an integer", candidates)
            else:
                fields[f"retrieval.{backend}.candidates"] = count
        if status is not None:
            fields[f"retrieval.{backend}.status"] = (
                status if isinstance(status, str) else str(status)
            )
        if duration_ms is not None:
            ms = _milliseconds(duration_ms, problems, "retrieval")
            if ms is not None:
                fields[f"timing.retrieval.{backend}_ms"] = ms
        _add(ev, problems.into(fields))
    except Exception as exc:  # noqa: BLE001 - containment
        _contain(ev, "retrieval", exc)


def shadow(
    ev: MLEvent,
    version: str,
    *extra: Any,
    ids: Any = None,
    scores: Any = None,
    k: int = 10,
    duration_ms: Any = None,
    labels: Any = None,
    logits: bool | None = None,
    threshold: float | None = None,
    positive: Any = None,
    **unknown: Any,
) -> None:
    """``shadow.*``: a dark-launched model's agreement with the event's primary result.

    Against a ranking (``ev.ranking``): ``ids`` (ranked by ``scores`` when given) compared at
    depth ``k`` with :func:`wideevents.ml.compare_rankings`. Against a classifier
    (``ev.scores``): the shadow's ``scores`` are scored with its own ``labels``, ``logits``,
    ``threshold`` and ``positive`` (each defaulting to the primary's), giving
    ``shadow.prediction.label`` / ``.score`` / ``.p_positive``, ``shadow.top1_same`` (label
    agreement) and ``shadow.score_delta`` (shadow score - primary score); multiclass also
    compares the top-k labels at depth min(k, the primary's k). ``ids`` instead of ``scores``
    is taken as the shadow's ranked labels. Regression gets the delta only.
    """
    if not ev.recording:
        return
    try:
        _ = ev.prediction_id  # every event using an ML helper gets a prediction.id
        problems = Problems()
        _unexpected(problems, "shadow", extra, unknown)
        own = {"labels": labels, "logits": logits, "threshold": threshold, "positive": positive}
        fields: dict[str, Any] = {"shadow.model.version": str(version)}
        if duration_ms is not None:
            ms = _milliseconds(duration_ms, problems, "shadow")
            if ms is not None:
                fields["timing.shadow_ms"] = ms
        state = ev._ml if isinstance(ev._ml, _State) else None
        if ids is None and scores is None:
            problems.add("shadow: pass ids or scores")
        elif state is None or (state.ranking is None and state.kind is None):
            problems.add("shadow: no primary result (call ranking or scores first)")
        elif state.ranking is not None:
            _against_ranking(fields, problems, state.ranking, ids, scores, k)
        else:
            _against_classifier(fields, problems, state, ids, scores, k, own)
        _add(ev, problems.into(fields))
    except Exception as exc:  # noqa: BLE001 - containment
        _contain(ev, "shadow", exc)


def _merge(fields: dict[str, Any], problems: Problems, more: dict[str, Any]) -> None:
    """Move ``more``'s fields into ``fields`` and its accounting into ``problems``."""
    fields.update(problems.absorb(more))


def _ranked_ids(problems: Problems, ids: Any, scores: Any, k: int) -> Any:
    if scores is None:
        return ids
    ranked, top = _pure.ranking_fields_top(ids, scores, k=k)
    _merge({}, problems, ranked)
    return top if top is not None else []


def _against_ranking(
    fields: dict[str, Any], problems: Problems, primary: list[Any], ids: Any, scores: Any, k: int
) -> None:
    if ids is None:
        problems.add("shadow: ids needed to compare with a ranking")
        return
    _merge(
        fields, problems, _pure.compare_rankings(primary, _ranked_ids(problems, ids, scores, k), k)
    )


def _against_classifier(
    fields: dict[str, Any],
    problems: Problems,
    state: _State,
    ids: Any,
    scores: Any,
    k: Any,
    own: dict[str, Any],
) -> None:
    mine, primary = as_index(k), as_index(state.options.get("k", 5))
    depth = 5 if mine is None or primary is None else min(mine, primary)
    if ids is not None:
        if state.top is None:
            problems.add("shadow: primary has no ranked labels to compare ids with")
            return
        _merge(
            fields,
            problems,
            _pure.compare_rankings(state.top, _ranked_ids(problems, ids, scores, depth), depth),
        )
        return
    options = dict(state.options)
    options.update((name, value) for name, value in own.items() if value is not None)
    shadow_fields, kind = _pure.score_fields_kind(scores, kind=state.kind or "auto", **options)
    if kind is None:
        _merge({}, problems, shadow_fields)
        return
    label = shadow_fields.get("prediction.label")
    score = shadow_fields.get("prediction.score")
    if kind != "regression":
        fields["shadow.prediction.label"] = label
    fields["shadow.prediction.score"] = score
    if "prediction.p_positive" in shadow_fields:
        fields["shadow.prediction.p_positive"] = shadow_fields["prediction.p_positive"]
    if kind == "multiclass" and state.top is not None:
        compared = _pure.compare_rankings(
            state.top, shadow_fields.get("score.topk.labels") or [], depth
        )
        _merge(fields, problems, compared)
    elif kind == "binary":
        fields["shadow.top1_same"] = (
            None if label is None or state.label is None else label == state.label
        )
    if score is not None and state.score is not None:
        fields["shadow.score_delta"] = score - state.score
    _merge({}, problems, shadow_fields)


def _is_secret(ev: MLEvent) -> Any:
    """The key rule of the pipeline the event goes to (its ``redact=`` names included)."""
    redactor = getattr(getattr(ev, "_pipeline", None), "redactor", None) or default_redactor()
    return redactor.is_secret


def feedback_context(ev: MLEvent) -> str:
    """The event's feedback context token (:mod:`wideevents.ml._context`), or ``""`` for a
    non-recording event (logged once: its prediction is recorded nowhere)."""
    if not ev.recording:
        log_once("ml:feedback_context:stand-in", "wideevents.ml: feedback_context() was "
                 "called outside any event; it returns '' (no event records the prediction)")
        return ""
    try:
        pid = ev.prediction_id
        made_ms = uuid7_unix_ms(pid)
        if made_ms is None:  # an id the application set: the prediction is being made now
            made_ms = int(time.time() * 1000)
        token, cut = _context.make_token(ev.fields, pid, made_ms, _is_secret(ev),
                                         _context.current_key())
        if cut:
            problems = Problems()
            problems.add("feedback_context: slices left out or text cut to fit 512 bytes")
            _add(ev, problems.into({}))
        return token
    except Exception as exc:  # noqa: BLE001 - containment
        _contain(ev, "feedback_context", exc)
        return ""
