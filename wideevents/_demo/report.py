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


@dataclass(frozen=True)
class Analysis:
    """One step of the walkthrough answered by ``compare``, ``drift`` or ``calibration``."""

    title: str
    finding: str
    argv: tuple[str, ...]  # after ``wideevents``; FILE and PROFILE stand for the paths


ANALYSES = (
    Analysis(
        "What is different about the slow requests?",
        "one command ranks every field: after the timings themselves (the mixer's and the "
        "client instrumentation's http.client.*), the region and the vector backend's timeouts",
        ("compare", "FILE", "--where", "duration_ms > 60", "--baseline", "name = GET /search",
         "--baseline", "duration_ms <= 60", "--limit", "10"),
    ),
    Analysis(
        "Which features drifted from training, and for whom?",
        "PSI against the training profile per tenant: globex's click-through prior",
        ("drift", "FILE", "--profile", "PROFILE", "--breakdown", "slice.tenant", "--limit", "3"),
    ),
    Analysis(
        "Are the click probabilities calibrated?",
        "only feedback shows it: the canary's probabilities are over-confident",
        ("calibration", "FILE", "--breakdown", "model.version", "--bins", "5"),
    ),
)


def _argv(analysis: Analysis, path: str, profile: str) -> list[str]:
    return [path if a == "FILE" else profile if a == "PROFILE" else a for a in analysis.argv]


def analysis_command(analysis: Analysis, path: str, profile: str) -> str:
    """The ``wideevents`` command line of one analysis step."""
    return " ".join(shlex.quote(p) for p in ["wideevents", *_argv(analysis, path, profile)])


def run_analyses(path: str, profile: str) -> list[tuple[Analysis, str]]:
    """Run every analysis step over ``path`` through its command's own handler; returns
    (step, the text the command prints)."""
    import argparse
    import io

    from wideevents.query import _analysis_cli

    parser = argparse.ArgumentParser(prog="wideevents")
    sub = parser.add_subparsers()
    for add in (_analysis_cli.add_compare_parser, _analysis_cli.add_drift_parser,
                _analysis_cli.add_calibration_parser):
        add(sub)
    out = []
    for step in ANALYSES:
        args = parser.parse_args(_argv(step, path, profile))
        text = io.StringIO()
        args.func(args, out=text)
        out.append((step, text.getvalue().rstrip("\n")))
    return out


def write_html_report(events_path: str) -> str | None:
    """The demo's last step: ``report.html`` beside ``events_path`` (with ``profile.json``
    beside it as the drift reference when it exists). Returns the path written, or None
    (with the reason on stderr) when the page cannot be made: the demo itself succeeded."""
    import os
    import sys

    from wideevents._core.terminal import escape

    folder = os.path.dirname(os.path.abspath(events_path))
    target = os.path.join(folder, "report.html")
    profile = os.path.join(folder, "profile.json")
    try:
        from wideevents.query._html._report import ReportOptions, write_report

        opts = ReportOptions(files=[events_path], title="wideevents demo: the search mixer",
                             profile=profile if os.path.isfile(profile) else None)
        return str(write_report(opts, target))
    except ModuleNotFoundError as exc:
        print(f"wideevents demo: no report.html: missing module {exc.name!r}; install it with "
              "pip install 'wideevents[report]'", file=sys.stderr)
    except Exception as exc:  # noqa: BLE001 - the walkthrough ran; a page it cannot write is a note
        print(f"wideevents demo: no report.html: {escape(str(exc))}", file=sys.stderr)
    return None
