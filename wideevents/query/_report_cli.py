"""``wideevents report FILE... -o report.html``: the offline HTML report about a service.

Registered on the main CLI's subparsers (:func:`add_report_parser`); the page is built
by :func:`wideevents.query._html.build_report` (its module doc lists the sections) and
written atomically. Prints the path written; ``--where`` narrows every chart,
``--breakdown`` chooses the groups (default ``model.version`` when events have it),
``--profile`` is the reference of the drift section, ``--team`` (with ``--dataset``, or
``$HONEYCOMB_DATASET``) adds the Honeycomb link of each query. Needs matplotlib (the
``report`` extra) and DuckDB (``query``).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, TextIO

from wideevents._core.env import env
from wideevents._core.terminal import escape
from wideevents._errors import ConfigurationError

__all__ = ["add_report_parser", "run_report"]


def add_report_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``report`` (handler: :func:`run_report`)."""
    p = subparsers.add_parser(
        "report", help="write an offline HTML report (charts) about event files",
        description="Write one self-contained HTML page about a service's events: volume "
        "and errors over time, duration_ms as a heatmap and percentiles per group, the "
        "slowest and most error-prone groups, score distributions, drift, calibration and "
        "compare. Each chart's caption is the command that produces its numbers. The page "
        "loads nothing from the network. Example: wideevents report events.jsonl -o "
        "report.html",
    )  # fmt: skip
    p.add_argument("files", nargs="+", metavar="FILE", help="JSON-lines files or globs")
    p.add_argument("-o", "--output", default="report.html", metavar="PATH",
                   help="the page to write (report.html)")
    p.add_argument("--where", action="append", default=[], metavar="'COLUMN OP VALUE'",
                   help="only events that pass (repeatable; as in query)")
    p.add_argument("--breakdown", metavar="COLUMN",
                   help="the groups (default: model.version when events have it)")
    p.add_argument("--profile", metavar="PROFILE.json", help="the drift section's reference")
    p.add_argument("--title", help="the page's title")
    p.add_argument("--team", help="Honeycomb team slug: adds each query's Honeycomb link")
    p.add_argument("--environment", help="Honeycomb environment slug (for the links)")
    p.add_argument("--dataset", help="dataset of the links (default: $HONEYCOMB_DATASET)")
    p.add_argument("--no-cache", action="store_true", help="keep no columnar copy")
    p.set_defaults(func=run_report)
    return p  # type: ignore[no-any-return]


def run_report(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Handler of ``wideevents report``; returns the exit code."""
    from wideevents.query import QueryError
    from wideevents.query._html._page import check_target
    from wideevents.query._html._report import ReportOptions, write_report
    from wideevents.query._text import parse_where

    out = out or sys.stdout
    for w in args.where:
        parse_where(w)  # a bad filter fails here, before any work, with its fix
    check_target(args.output)  # a path that cannot be written fails before any work
    if args.profile:
        from wideevents.query._drift import load_profile

        load_profile(args.profile)  # not a readable profile: fail now, saying how to make one
    dataset = args.dataset or env("HONEYCOMB_DATASET")
    if args.team and not dataset:
        raise ConfigurationError("--team needs a dataset for the links: --dataset or "
                                 "$HONEYCOMB_DATASET")
    opts = ReportOptions(files=args.files, where=args.where, breakdown=args.breakdown,
                         profile=args.profile, title=args.title, team=args.team,
                         environment=args.environment, dataset=dataset,
                         cache=not args.no_cache)
    try:
        path = write_report(opts, args.output)
    except QueryError as exc:
        print(f"wideevents report: {escape(str(exc))}", file=sys.stderr)
        return 1
    out.write(f"wrote {escape(str(path))}: open it in a browser (file://{escape(os.path.abspath(path))})\n")
    return 0
