"""The demo's questions: local queries that expose each injected incident."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Question:
    title: str
    finding: str
    spec: dict[str, Any]


QUESTIONS = (
    Question(
        "Which backend is slow, and for whom?",
        "the vector backend times out in one region only; the global average hides it",
        {"calculations": [{"op": "COUNT"}, {"op": "P99", "column": "timing.retrieval.vector_ms"},
                          {"op": "P99", "column": "duration_ms"}],
         "breakdowns": ["slice.region", "retrieval.vector.status"],
         "filters": [{"column": "name", "op": "=", "value": "GET /search"}],
         "orders": [{"op": "COUNT", "order": "descending"}]},
    ),
    Question(
        "Which tenant's features drifted?",
        "one tenant's click-through prior is silently 0: every request is out of range",
        {"calculations": [{"op": "COUNT"}, {"op": "AVG", "column": "feature.ctr_prior_mean"},
                          {"op": "SUM", "column": "data.oor_count"}],
         "breakdowns": ["slice.tenant"],
         "filters": [{"column": "name", "op": "=", "value": "GET /search"}],
         "orders": [{"op": "SUM", "column": "data.oor_count", "order": "descending"}]},
    ),
    Question(
        "Which model version emits non-finite scores?",
        "only the canary, on long queries; the champion never does",
        {"calculations": [{"op": "COUNT"}, {"op": "MAX", "column": "feature.query_len"}],
         "breakdowns": ["model.version"],
         "filters": [{"column": "ranking.nonfinite_count", "op": ">", "value": 0}]},
    ),
    Question(
        "How far does each version agree with the shadow model?",
        "agreement per version, from the dark-launched ranker scored on every request",
        {"calculations": [{"op": "COUNT"}, {"op": "AVG", "column": "shadow.rbo"},
                          {"op": "AVG", "column": "shadow.overlap_at_k"}],
         "breakdowns": ["model.version"],
         "filters": [{"column": "name", "op": "=", "value": "GET /search"}]},
    ),
    Question(
        "How late does feedback arrive?",
        "clicks joined to their predictions; some arrive hours later",
        {"calculations": [{"op": "COUNT"}, {"op": "P50", "column": "feedback.delay_ms"},
                          {"op": "MAX", "column": "feedback.delay_ms"}],
         "breakdowns": ["feedback.matched", "model.version"],
         "filters": [{"column": "name", "op": "=", "value": "feedback"}]},
    ),
)


def _term(calc: dict[str, Any]) -> str:
    return calc["op"] if "column" not in calc else f"{calc['op']}({calc['column']})"


def command_line(spec: dict[str, Any], path: str) -> str:
    """The ``wideevents query`` command that reproduces ``spec``."""
    parts = ["wideevents", "query", path]
    for calc in spec.get("calculations", []):
        parts += ["--calc", _term(calc)]
    for b in spec.get("breakdowns", []):
        parts += ["--breakdown", b]
    for f in spec.get("filters", []):
        value = f.get("value")
        shown = value if isinstance(value, str) else str(value).lower() \
            if isinstance(value, bool) else str(value)
        if isinstance(value, str) and (" " in value or not value):
            shown = f'"{value}"'
        parts += ["--where", f"{f['column']} {f['op']} {shown}"]
    for o in spec.get("orders", []):
        term = _term(o) if "op" in o else o["column"]
        parts += ["--order", f"{term} {'desc' if o.get('order') == 'descending' else 'asc'}"]
    return " ".join(shlex.quote(p) for p in parts)


def run_questions(path: str) -> list[tuple[Question, Any, str]]:
    """Run every question over ``path``; returns (question, result, table text)."""
    from wideevents.query import Query, run_local
    from wideevents.query._cli import format_table

    out = []
    for q in QUESTIONS:
        query = Query.from_json(q.spec)
        result = run_local(query, path)
        out.append((q, result, format_table(result, query)))
    return out
