"""``wideevents compare``, ``drift`` and ``calibration``: registered on the main CLI.

Each prints a text answer (every value through :mod:`wideevents._core.terminal`'s escaping)
or, with ``--json``, the result's ``to_dict()`` document; warnings (a filter column no
event has, an empty side) go to stderr; ``--link`` prints the Honeycomb query links behind
the answer (``_analysis_links``). Definitions: docs/analysis.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from wideevents._core.env import env
from wideevents._core.terminal import escape
from wideevents._errors import ConfigurationError

__all__ = ["add_calibration_parser", "add_compare_parser", "add_drift_parser"]


def _common(p: argparse.ArgumentParser, files: str = "+") -> None:
    p.add_argument("files", nargs=files, metavar="FILE", help="JSON-lines files or globs")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--no-cache", action="store_true", help="do not keep a columnar copy")
    p.add_argument("--link", action="store_true", help="print the Honeycomb query links")
    p.add_argument("--team", help="Honeycomb team slug (for --link)")
    p.add_argument("--environment", help="Honeycomb environment slug (for --link)")
    p.add_argument("--dataset", help="dataset for --link (default: $HONEYCOMB_DATASET)")
    p.add_argument("--html", metavar="PATH", help="also write the result as an offline HTML "
                   "page (charts and tables; needs the 'report' extra)")  # issue 20


def add_compare_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``compare`` (handler: :func:`run_compare`)."""
    p = subparsers.add_parser(
        "compare", help="what is different about the selected events",
        description="Rank every column by how differently the selected events (--where) and "
        "the baseline (--baseline, default every other event) are distributed: total "
        "variation distance of the weighted shares (docs/analysis.md). Example: wideevents "
        "compare events.jsonl --where 'duration_ms > 250'",
    )  # fmt: skip
    _common(p)
    p.add_argument("--where", action="append", default=[], metavar="'COLUMN OP VALUE'",
                   required=True, help="the selection (repeatable, combined with AND)")
    p.add_argument("--baseline", action="append", default=[], metavar="'COLUMN OP VALUE'",
                   help="the baseline (repeatable; default: every event not selected)")
    p.add_argument("--limit", type=int, default=10, help="columns to show (10)")
    p.set_defaults(func=run_compare)
    return p  # type: ignore[no-any-return]


def add_drift_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``drift`` (handler: :func:`run_drift`)."""
    p = subparsers.add_parser(
        "drift", help="per feature, how far the events are from a profile or a baseline",
        description="PSI and Jensen-Shannon distance per feature (feature.*, feature_bin.*, "
        "the model's score) of the target events against a training profile (--profile) or "
        "a baseline slice (--baseline). PSI >= 0.1 is moderate, >= 0.25 significant drift "
        "(docs/analysis.md). Example: wideevents drift events.jsonl --profile profile.json "
        "--breakdown slice.tenant",
    )  # fmt: skip
    _common(p, "*")
    ref = p.add_mutually_exclusive_group(required=True)
    ref.add_argument("--profile", metavar="PROFILE.json", help="a saved wideevents.ml.Profile")
    ref.add_argument("--baseline", action="append", metavar="'COLUMN OP VALUE'",
                     help="the reference slice (repeatable, AND)")
    p.add_argument("--target", action="append", default=[], metavar="'COLUMN OP VALUE'",
                   help="the events to check (repeatable, AND; default: all, or all but the "
                   "baseline)")
    p.add_argument("--breakdown", metavar="COLUMN", help="repeat per value of COLUMN")
    p.add_argument("--groups", type=int, default=1000, metavar="N", help="with --breakdown, "
                   "the N groups with the most events (1000)")
    p.add_argument("--limit", type=int, default=10, help="features to show per group (10)")
    p.add_argument("--honeycomb", metavar="DATASET", help="compute it in Honeycomb (Query Data "
                   "API, Enterprise plan; the last 7 days; needs --profile)")
    p.set_defaults(func=run_drift)
    return p  # type: ignore[no-any-return]


def add_calibration_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``calibration`` (handler: :func:`run_calibration`)."""
    p = subparsers.add_parser(
        "calibration", help="reliability, ECE and Brier score from feedback",
        description="Feedback events joined to their predictions: per group, the reliability "
        "table (per probability bin: count, mean predicted probability, observed rate), the "
        "expected calibration error, the Brier score and the accuracy (docs/analysis.md). "
        "Example: wideevents calibration events.jsonl --breakdown model.version",
    )  # fmt: skip
    _common(p, "*")
    p.add_argument("--breakdown", metavar="COLUMN", help="one group per value of COLUMN")
    p.add_argument("--groups", type=int, default=1000, metavar="N", help="with --breakdown, "
                   "the N groups with the most feedback (1000)")
    p.add_argument("--bins", type=int, default=10, help="probability bins (10)")
    p.add_argument("--where", action="append", default=[], metavar="'COLUMN OP VALUE'",
                   help="conditions on the joined feedback rows (repeatable, AND)")
    p.add_argument("--positive", help="the positive class of a binary model (default: inferred)")
    p.add_argument("--honeycomb", metavar="DATASET", help="compute it in Honeycomb (Query Data "
                   "API, Enterprise plan; the last 7 days; score.bin's 10 bins; no Brier score)")
    p.set_defaults(func=run_calibration)
    return p  # type: ignore[no-any-return]


# --- handlers ---------------------------------------------------------------------------------


def _links(args: argparse.Namespace, queries: Sequence[tuple[str, Any]], out: TextIO) -> list[str]:
    from wideevents.query import query_url

    dataset = args.dataset or getattr(args, "honeycomb", None) or env("HONEYCOMB_DATASET")
    if not args.team or not dataset:
        raise ConfigurationError("--link needs --team and a dataset (--dataset or "
                                 "$HONEYCOMB_DATASET)")
    return [f"{title}: {query_url(q, team=args.team, environment=args.environment, dataset=dataset)}"
            for title, q in queries]  # fmt: skip


def _finish(name: str, args: argparse.Namespace, result: Any, text: list[str],
            queries: Sequence[tuple[str, Any]], out: TextIO) -> int:
    links = _links(args, queries, out) if args.link else []
    if getattr(args, "html", None):  # issue 20: the same document as a page
        from wideevents.query._html._cli_support import write_analysis_html

        written = write_analysis_html(args.html, name, args, result.to_dict(), links)
        print(f"wideevents {name}: wrote {escape(str(written))}", file=sys.stderr)
    if args.json:
        doc = result.to_dict()
        if links:
            doc = {**doc, "links": links}
        out.write(json.dumps(doc, indent=2, default=str) + "\n")
    else:
        out.write("\n".join(text) + "\n")
        for link in links:
            out.write(f"Honeycomb {link}\n")
    for warning in result.warnings:
        print(f"wideevents {name}: warning: {escape(warning)}", file=sys.stderr)
    if result.skipped_lines:
        print(f"wideevents {name}: note: skipped {result.skipped_lines} lines that are not a "
              "JSON object", file=sys.stderr)
    return 0


def _files(args: argparse.Namespace) -> None:
    if not args.files:
        raise ConfigurationError("give event files (or --honeycomb DATASET)")


def _guard(name: str, run: Any) -> Any:
    from wideevents.query import QueryError

    try:
        return run()
    except QueryError as exc:
        print(f"wideevents {name}: {escape(str(exc))}", file=sys.stderr)
        return None


def run_compare(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Handler of ``wideevents compare``."""
    from wideevents.query._analysis_links import compare_queries
    from wideevents.query._analysis_text import compare_text
    from wideevents.query._compare import compare

    out = out or sys.stdout
    result = _guard("compare", lambda: compare(args.files, where=args.where,
                                               baseline=args.baseline or None,
                                               limit=args.limit, cache=not args.no_cache))
    if result is None:
        return 1
    queries = compare_queries(args.where, args.baseline) if args.link else []
    return _finish("compare", args, result, compare_text(result), queries, out)


def run_drift(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Handler of ``wideevents drift``."""
    from wideevents.query._analysis_links import drift_queries
    from wideevents.query._analysis_text import drift_text
    from wideevents.query._drift import drift

    out = out or sys.stdout
    if args.limit < 1:
        raise ConfigurationError(f"--limit must be >= 1, got {args.limit}")
    if args.honeycomb:
        from wideevents.query import HoneycombQueryClient
        from wideevents.query._analysis_honeycomb import drift_honeycomb

        if not args.profile:
            raise ConfigurationError("drift --honeycomb needs --profile (its bins are the "
                                     "profile's, through the feature_bin.* fields)")
        ran = _guard("drift", lambda: drift_honeycomb(
            HoneycombQueryClient(), args.honeycomb, profile=args.profile,
            target=args.target or None, breakdown=args.breakdown))
        if ran is None:
            return 1
        result, honeycomb = ran
        queries = [(f"query {n + 1}", q) for n, q in enumerate(honeycomb)] if args.link else []
        return _finish("drift", args, result, drift_text(result, args.limit), queries, out)
    _files(args)
    result = _guard("drift", lambda: drift(args.files, profile=args.profile,
                                           baseline=args.baseline, target=args.target or None,
                                           breakdown=args.breakdown, groups=args.groups,
                                           cache=not args.no_cache))
    if result is None:
        return 1
    queries = drift_queries(result, args.target, args.breakdown) if args.link else []
    return _finish("drift", args, result, drift_text(result, args.limit), queries, out)


def run_calibration(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Handler of ``wideevents calibration``."""
    from wideevents.query._analysis_links import calibration_queries
    from wideevents.query._analysis_text import calibration_text
    from wideevents.query._calibration import calibration
    from wideevents.query._text import parse_value

    out = out or sys.stdout
    positive = None if args.positive is None else parse_value(args.positive)
    if args.honeycomb:
        from wideevents.query import HoneycombQueryClient
        from wideevents.query._analysis_honeycomb import calibration_honeycomb, check_bins

        check_bins(args.bins)
        ran = _guard("calibration", lambda: calibration_honeycomb(
            HoneycombQueryClient(), args.honeycomb, breakdown=args.breakdown,
            where=args.where or None, positive=positive))
        if ran is None:
            return 1
        result, honeycomb = ran
        queries = [("query", q) for q in honeycomb] if args.link else []
        return _finish("calibration", args, result, calibration_text(result), queries, out)
    _files(args)
    result = _guard("calibration", lambda: calibration(
        args.files, breakdown=args.breakdown, bins=args.bins, where=args.where or None,
        positive=positive, groups=args.groups, cache=not args.no_cache))
    if result is None:
        return 1
    queries = calibration_queries(args.breakdown, args.where) if args.link else []
    return _finish("calibration", args, result, calibration_text(result), queries, out)
