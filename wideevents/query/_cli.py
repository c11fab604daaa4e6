"""``wideevents query`` and ``wideevents tail``: registered on the main CLI's subparsers.

``query`` runs a Honeycomb-style query over JSON-lines files (or in Honeycomb with
``--honeycomb DATASET``) and prints an aligned table, HEATMAPs as text histograms, or
``--json``; ``--link`` prints the Honeycomb UI link for the same query. Lines of the
files that are not JSON objects are counted: a ``note:`` line under the table, and
``skipped_lines`` in ``--json``. A column of the query that no event has (a misspelling)
is reported with the nearest column seen: on stderr under a table, in ``warnings`` in
``--json``; the query runs anyway. With ``compare_time_offset_seconds`` the earlier
window's rows follow (``compare`` in ``--json``). ``tail`` prints the last events that
pass its filters and follows the file (``_tail``), pretty-printing each through
structlog's ConsoleRenderer; a ``--where`` column absent from the end of the file is
reported on stderr the same way.

Everything printed for people (cells, headers, histogram titles, tail's events, error
messages) goes through :mod:`wideevents._core.terminal`: control, C1 and bidi characters
show as escapes (``\\x1b``, ``\\u202e``), never raw. ``--json`` is JSON with every
non-ASCII character escaped by the encoder.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any, TextIO

from wideevents._core.env import env
from wideevents._core.terminal import console_fields, escape, show_value
from wideevents._errors import ConfigurationError

__all__ = ["add_query_parser", "add_tail_parser", "format_table", "run_query", "run_tail"]

_SPARK = "▁▂▃▄▅▆▇█"
_BAR = "█"


def add_query_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``query`` (handler: :func:`run_query`)."""
    p = subparsers.add_parser(
        "query",
        help="run a Honeycomb-style query over JSON-lines event files",
        description="Honeycomb-style query over JSON-lines files (globs and .gz welcome), with "
        "sample-rate weighting. Lines that are not JSON objects are skipped and counted (a "
        "note under the table; skipped_lines in --json). Control characters in values are "
        "shown escaped. Example: wideevents query events.jsonl --calc COUNT "
        "--calc 'P99(duration_ms)' --breakdown model.version --where 'error = true'",
    )
    p.add_argument("files", nargs="*", metavar="FILE", help="JSON-lines files or globs")
    p.add_argument(
        "--calc",
        action="append",
        default=[],
        metavar="CALC",
        help="COUNT, P99(duration_ms), HEATMAP(score.top1), ... (repeatable)",
    )
    p.add_argument("--breakdown", action="append", default=[], metavar="COLUMN")
    p.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="'COLUMN OP VALUE'",
        help="e.g. 'error = true', 'duration_ms > 250', 'user.id exists'",
    )
    p.add_argument("--any", action="store_true", help="combine --where filters with OR")
    p.add_argument("--having", action="append", default=[], metavar="'CALC OP NUMBER'")
    p.add_argument("--order", action="append", default=[], metavar="'TERM [asc|desc]'")
    p.add_argument("--limit", type=int)
    p.add_argument("--granularity", type=int, metavar="SECONDS", help="also print a time series")
    p.add_argument("--time-range", type=int, metavar="SECONDS", help="the last SECONDS only")
    p.add_argument("--start-time", type=int, metavar="UNIX")
    p.add_argument("--end-time", type=int, metavar="UNIX")
    p.add_argument("--spec", metavar="FILE", help="a Honeycomb query spec (JSON); flags override")
    p.add_argument("--json", action="store_true",
                   help="print the result as JSON (rows, series, complete, skipped_lines)")
    p.add_argument("--no-cache", action="store_true",
                   help="do not keep a columnar copy (the cache: $WIDEEVENTS_CACHE_DIR, else "
                   "~/.cache/wideevents/query; it deletes only entries it created)")
    p.add_argument("--html", metavar="PATH", help="also write the result as an offline HTML "
                   "page (charts and tables; needs the 'report' extra)")
    p.add_argument("--honeycomb", metavar="DATASET", help="run in Honeycomb (Enterprise plan)")
    p.add_argument("--link", action="store_true", help="print the Honeycomb query link")
    p.add_argument("--team", help="Honeycomb team slug (for --link)")
    p.add_argument("--environment", help="Honeycomb environment slug (for --link)")
    p.add_argument(
        "--dataset", help="dataset for --link (default: --honeycomb or $HONEYCOMB_DATASET)"
    )
    p.set_defaults(func=run_query)
    return p  # type: ignore[no-any-return]


def add_tail_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``tail`` (handler: :func:`run_tail`)."""
    p = subparsers.add_parser(
        "tail", help="follow an event file and pretty-print new events",
        description="Print the last events of a JSON-lines event file that pass the filters, "
        "then follow it and pretty-print events as they arrive. Lines that are not JSON "
        "objects are skipped and reported on stderr; control characters in values are "
        "shown escaped.",
    )  # fmt: skip
    p.add_argument("file", metavar="FILE")
    p.add_argument("--where", action="append", default=[], metavar="'COLUMN OP VALUE'",
                   help="show only events that pass (applied before -n takes the last N)")
    p.add_argument("--any", action="store_true", help="combine --where filters with OR")
    p.add_argument("-n", "--lines", type=int, default=10,
                   help="matching events to show first (default 10); read from the end of "
                   "the file in blocks")
    p.add_argument("--no-follow", action="store_true", help="print and exit")
    p.add_argument("--max-events", type=int, help="exit after printing this many events")
    p.add_argument("--interval", type=float, default=0.2, help=argparse.SUPPRESS)
    p.set_defaults(func=run_tail)
    return p  # type: ignore[no-any-return]


def _build_query(args: argparse.Namespace) -> Any:
    from wideevents.query import Query
    from wideevents.query._text import parse_having, parse_order, parse_where

    spec: dict[str, Any] = {}
    if args.spec:
        try:
            with open(args.spec, encoding="utf-8") as f:
                spec = Query.from_json(f.read()).to_json()
        except OSError as exc:
            raise ConfigurationError(f"cannot read --spec {args.spec}: {exc.strerror}") from None
    if args.calc:
        spec["calculations"] = args.calc
    if args.breakdown:
        spec["breakdowns"] = args.breakdown
    if args.where:
        spec["filters"] = [parse_where(w).to_json() for w in args.where]
    if args.any:
        spec["filter_combination"] = "OR"
    if args.having:
        spec["havings"] = [parse_having(h).to_json() for h in args.having]
    if args.order:
        spec["orders"] = [parse_order(o).to_json() for o in args.order]
    for name in ("limit", "granularity", "time_range", "start_time", "end_time"):
        if getattr(args, name) is not None:
            spec[name] = getattr(args, name)
    return Query.from_json(spec)


def run_query(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Handler of ``wideevents query``; returns the exit code."""
    from wideevents.query import HoneycombQueryClient, QueryError, query_url, run_local

    out = out or sys.stdout
    query = _build_query(args)
    if getattr(args, "html", None):
        from wideevents.query._html._page import check_target

        check_target(args.html)  # before the query runs: a bad path fails early
    if not args.files and not args.honeycomb and not args.link:
        raise ConfigurationError("give event files (or --honeycomb DATASET, or --link)")
    result = None
    try:
        if args.honeycomb:
            result = HoneycombQueryClient().run(query, args.honeycomb)
        elif args.files:
            result = run_local(query, args.files, cache=not args.no_cache)
    except QueryError as exc:
        print(f"wideevents query: {escape(str(exc))}", file=sys.stderr)
        return 1
    link = None
    if args.link:
        dataset = args.dataset or args.honeycomb or env("HONEYCOMB_DATASET")
        if not args.team or not dataset:
            raise ConfigurationError(
                "--link needs --team and a dataset (--dataset or $HONEYCOMB_DATASET)"
            )
        link = query_url(query, team=args.team, environment=args.environment, dataset=dataset)
    if getattr(args, "html", None) and result is not None:
        from wideevents.query._html._cli_support import write_query_html

        written = write_query_html(args.html, args, result, query, link)
        print(f"wideevents query: wrote {escape(str(written))}", file=sys.stderr)
    if args.json:
        doc: dict[str, Any] = {"query": query.to_json()}
        if result is not None:
            doc |= {"rows": result.rows, "series": result.series, "complete": result.complete,
                    "skipped_lines": result.skipped_lines, "warnings": result.warnings}  # fmt: skip
            if result.compare is not None:
                doc["compare"] = {"rows": result.compare.rows, "series": result.compare.series}
        if link:
            doc["link"] = link
        out.write(json.dumps(doc, indent=2, default=str) + "\n")
        return 0
    if result is not None:
        for warning in result.warnings:
            print(f"wideevents query: warning: {escape(warning)}", file=sys.stderr)
        out.write(format_table(result, query) + "\n")
        if result.compare is not None:
            offset = query.compare_time_offset_seconds
            out.write(f"\ncompared with {offset} seconds earlier\n")
            out.write(format_table(result.compare, query) + "\n")
    if link:
        out.write(f"Honeycomb: {link}\n")
    return 0


# --- tables ----------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None:
        return "(null)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _plain_number(value)
    if isinstance(value, Mapping) and "buckets" in value:
        return _sparkline([b["count"] for b in value["buckets"]])
    if isinstance(value, (list, Mapping)):
        try:
            return escape(json.dumps(value, ensure_ascii=False))
        except (TypeError, ValueError, RecursionError):  # e.g. nested too deeply to print
            return show_value(value)
    return escape(str(value))


def _plain_number(value: float) -> str:
    """Six significant digits in plain decimal notation, as people read tables: ``20631312``
    and ``0.00005``, not ``2.06313e+07`` and ``5e-05``. Outside [1e-9, 1e21) the exponent
    is kept (1e21: where JavaScript's Number toString stops writing plain digits)."""
    text = f"{value:.6g}"
    if "e" not in text or not 1e-9 <= abs(value) < 1e21:
        return text
    if abs(value) >= 1:
        return f"{value:.0f}"
    return format(Decimal(text), "f")  # the six digits, with the zeros the exponent stood for


def _sparkline(counts: Sequence[float]) -> str:
    top = max(counts, default=0)
    if not top:
        return "(empty)"
    return "".join(" " if c <= 0 else _SPARK[min(7, int(c / top * 7.999))] for c in counts)


def _align(header: list[str], body: list[list[str]], numeric: list[bool]) -> list[str]:
    widths = [max([len(h)] + [len(r[i]) for r in body]) for i, h in enumerate(header)]

    def line(cells: list[str]) -> str:
        parts = [
            c.rjust(w) if n else c.ljust(w) for c, w, n in zip(cells, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    return [line(header), "  ".join("-" * w for w in widths)] + [line(r) for r in body]


def _table(
    rows: Sequence[Mapping[str, Any]], columns: list[str], lead: Sequence[str] = ()
) -> list[str]:
    header = [*lead, *columns]
    body = [[_cell(r.get(c)) for c in header] for r in rows]
    header = [escape(h) for h in header]
    numeric = [all(isinstance(r.get(c), (int, float)) and not isinstance(r.get(c), bool)
                   for r in rows if r.get(c) is not None) for c in header]  # fmt: skip
    return _align(header, body, numeric)


def _histogram(title: str, buckets: Sequence[Mapping[str, Any]], width: int = 40) -> list[str]:
    lines = [title]
    if not buckets:
        return lines + ["  (no numeric values)"]
    top = max(b["count"] for b in buckets) or 1
    # Buckets are half-open except the last, which includes the maximum.
    labels = [
        f"[{_cell(float(b['lower']))}, {_cell(float(b['upper']))}{']' if k == len(buckets) - 1 else ')'}"
        for k, b in enumerate(buckets)
    ]
    counts = [_cell(b["count"]) for b in buckets]
    lw, cw = max(map(len, labels)), max(map(len, counts))
    for label, count, b in zip(labels, counts, buckets, strict=True):
        bar = _BAR * max(1 if b["count"] > 0 else 0, round(b["count"] / top * width))
        lines.append(f"  {label.ljust(lw)}  {count.rjust(cw)}  {bar}")
    return lines


def format_table(result: Any, query: Any) -> str:
    """The result as an aligned text table (HEATMAP cells as sparklines, then each HEATMAP
    as a histogram), followed by the time series when there is one."""
    keys = [c.key for c in query.calculations]
    lines = _table(result.rows, keys, list(query.breakdowns))
    if not result.rows:
        lines.append("(no rows)")
    skipped = getattr(result, "skipped_lines", 0)
    if skipped:
        lines.append(
            f"note: skipped {skipped} line{'s' if skipped != 1 else ''} that "
            f"{'are' if skipped != 1 else 'is'} not a JSON object (malformed, truncated, "
            "invalid UTF-8, or not an object); they are in no row"
        )
    for calc in (c for c in query.calculations if c.op == "HEATMAP"):
        for row in result.rows[:10]:
            where = ", ".join(f"{escape(b)}={_cell(row.get(b))}" for b in query.breakdowns)
            buckets = (row.get(calc.key) or {}).get("buckets", [])
            title = f"{escape(calc.key)}{' — ' + where if where else ''}"
            lines += [""] + _histogram(title, buckets)
    if result.series:
        plain = [k for k in keys if not k.startswith("HEATMAP(")]
        points = [{"time": p["time"], **p["data"]} for p in result.series]
        lines += ["", f"series (granularity {query.granularity}s)"]
        lines += _table(points, plain, ["time", *query.breakdowns])
    return "\n".join(lines)


# --- tail ------------------------------------------------------------------------------------


def _renderer(stream: TextIO) -> Callable[[dict[str, Any]], str]:
    from structlog.dev import ConsoleRenderer

    render = ConsoleRenderer(colors=stream.isatty())

    def to_text(event: dict[str, Any]) -> str:
        level = "error" if event.get("error") is True else "info"
        return str(render(None, "info", console_fields(event, level=level)))

    return to_text


def run_tail(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Handler of ``wideevents tail``; returns the exit code."""
    from wideevents._filter import compile_filter
    from wideevents.query._tail import Skipped, tail_events
    from wideevents.query._text import parse_where

    out = out or sys.stdout
    conditions = [parse_where(w) for w in args.where]
    keep = compile_filter(conditions, "OR" if args.any else "AND")
    if not os.path.isfile(args.file):
        raise ConfigurationError(f"no such file: {args.file}")
    if args.max_events is not None and args.max_events < 1:
        raise ConfigurationError("--max-events must be at least 1")
    if args.lines < 0:
        raise ConfigurationError(f"-n/--lines must be 0 or more, got {args.lines}")
    for warning in _tail_warnings(args.file, [c.column for c in conditions]):
        print(f"wideevents tail: warning: {escape(warning)}", file=sys.stderr, flush=True)
    render, shown = _renderer(out), 0
    events = tail_events(args.file, args.lines, keep, not args.no_follow, args.interval)
    for event in events:
        if isinstance(event, Skipped):
            what = ("a line that is not a JSON object" if event.count == 1
                    else f"{event.count} lines that are not JSON objects")  # fmt: skip
            print(f"wideevents tail: skipped {what} (malformed, truncated, invalid UTF-8, "
                  "nested too deeply, not an object, or over 16 MB)",
                  file=sys.stderr, flush=True)  # fmt: skip
            continue
        out.write(render(event) + "\n")
        out.flush()
        shown += 1
        if args.max_events is not None and shown >= args.max_events:
            break
    return 0


def _tail_warnings(path: str, columns: Sequence[str]) -> list[str]:
    """A warning per ``--where`` column that no event among the file's last lines has."""
    from wideevents.query._hints import columns_in_lines, missing_column
    from wideevents.query._tail import last_lines

    columns = list(dict.fromkeys(columns))
    if not columns:
        return []
    seen: set[str] = set()
    columns_in_lines(last_lines(path), seen)
    if not seen:
        return []  # no event yet (a new file being followed): nothing to judge by
    scope = " in the last lines of the file"
    return [missing_column(c, "filter", seen, scope) for c in columns if c not in seen]
