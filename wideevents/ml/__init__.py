"""Fields that make one inference event debuggable: scores, features, rankings, shadows.

Pure functions returning flat dicts of dotted-key fields, usable with or without an event::

    score_fields(values, *, labels=None, k=5, logits=False, kind="auto", threshold=None,
                 positive=None)
    score_fields_batch(array_2d, ...)        # one dict per row, vectorised
    feature_fields(values, *, names=None, profile=None)
    ranking_fields(ids, scores=None, *, k=10)
    compare_rankings(primary_ids, shadow_ids, k=10)
    Profile.fit(X, names, categorical=..., scores=...) / .save(path) / Profile.load(path)
    feedback(prediction_id, *, label=None, reward=None, timestamp=None, context=None, **fields)
    configure_feedback_cache(max_size=10_000, ttl_s=3600.0)

Inputs are read as ML code holds them: dicts, pandas one-row frames and Series, numpy
arrays, tensors, scipy sparse rows (``Profile.fit`` also lists of dicts and sparse
matrices); missing values of every kind are nulls and categories compare by value
(``_values``). None of them raises on bad input: problems are counted in
``meta.ml_error_count`` with short reasons in ``meta.ml_error_reasons`` and logged once.
``Profile.fit``/``load`` and ``configure_feedback_cache`` run at start-up and raise
``ConfigurationError``. ``ev.feedback_context()`` (``_context``) carries a prediction to
feedback handled by another process.
``docs/schema.md`` describes every field. numpy is imported on first use, not by
``import wideevents.ml``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._features import feature_fields
    from ._feedback import configure_feedback_cache, feedback
    from ._profile import Profile
    from ._ranking import compare_rankings, ranking_fields
    from ._scores import score_fields
    from ._scores_batch import score_fields_batch

__all__ = [
    "Profile",
    "compare_rankings",
    "configure_feedback_cache",
    "feature_fields",
    "feedback",
    "ranking_fields",
    "score_fields",
    "score_fields_batch",
]

_HOME = {
    "Profile": "._profile",
    "compare_rankings": "._ranking",
    "configure_feedback_cache": "._feedback",
    "feature_fields": "._features",
    "feedback": "._feedback",
    "ranking_fields": "._ranking",
    "score_fields": "._scores",
    "score_fields_batch": "._scores_batch",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
