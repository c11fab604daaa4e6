"""A query result as charts: ``wideevents query --html``.

What is drawn, from the result model the terminal renderer prints (``QueryResult``):
with a time series (``granularity``), one line chart per calculation (a line per group,
the first 8 groups) and, for a HEATMAP, a heatmap over time (per group, the first 4);
with breakdowns, bars per group for each calculation (the first 40 groups) and, for a
HEATMAP, one distribution line per group; always the result table. Each chart's
numbers are in its own table, and its caption is the command line given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

from wideevents.query._html import _charts
from wideevents.query._html._escape import label, plain
from wideevents.query._html._page import Section, render_page

__all__ = ["group_label", "query_page", "query_sections"]

_LINE_GROUPS: Final = 8
_HEATMAP_GROUPS: Final = 4
_BAR_GROUPS: Final = 40
_MAX_GRID: Final = 2000


def group_label(row: Mapping[str, Any], breakdowns: Sequence[str]) -> str:
    """The group of a row as one short text (its breakdown values, joined)."""
    if not breakdowns:
        return "all events"
    return " · ".join(plain(row.get(b)) for b in breakdowns)


def _group_key(row: Mapping[str, Any], breakdowns: Sequence[str]) -> tuple[str, ...]:
    return tuple(plain(row.get(b)) for b in breakdowns)


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _grid(stamps: Sequence[datetime], granularity: int) -> list[datetime] | None:
    """Every bucket start from the first to the last (None when over 2,000 buckets)."""
    if not stamps:
        return None
    first, last = min(stamps), max(stamps)
    n = int((last - first).total_seconds() // granularity) + 1
    if n > _MAX_GRID:
        return None
    return [first + timedelta(seconds=granularity * i) for i in range(n)]


def _is_heatmap(key: str) -> bool:
    return key.startswith("HEATMAP(")


def query_sections(result: Any, query: Any, *, command: str | None = None,
                   link: str | None = None) -> list[Section]:
    """Sections for one query result (charts first, then the result table)."""
    keys = [c.key for c in query.calculations]
    breakdowns = list(query.breakdowns)
    sections: list[Section] = []
    if result.series and query.granularity:
        sections += _series_sections(result, keys, breakdowns, int(query.granularity),
                                     command, link)
    if breakdowns and result.rows:
        sections += _breakdown_sections(result.rows, keys, breakdowns, command, link)
    elif result.rows:
        for key in (k for k in keys if _is_heatmap(k)):
            buckets = (result.rows[0].get(key) or {}).get("buckets", [])
            sections.append(_histogram_section(key, {"all events": buckets}, command, link))
    headers = [*breakdowns, *keys]
    rows = [[r.get(b) for b in breakdowns]
            + [_summary(r.get(k)) if _is_heatmap(k) else r.get(k) for k in keys]
            for r in result.rows]  # fmt: skip
    note = None
    if getattr(result, "skipped_lines", 0):
        note = f"skipped {result.skipped_lines} lines that are not a JSON object"
    if getattr(result, "warnings", None):
        note = "; ".join([*([note] if note else []), *result.warnings])
    sections.append(Section(title="Result table", command=command, link=link, headers=headers,
                            rows=rows, note=note, kind="table"))
    return sections


def _summary(value: Any) -> str:
    buckets = (value or {}).get("buckets", []) if isinstance(value, Mapping) else []
    if not buckets:
        return "(no numeric values)"
    total = sum(b["count"] for b in buckets)
    return f"{len(buckets)} buckets, {plain(total)} events, {plain(float(buckets[0]['lower']))}" \
           f" to {plain(float(buckets[-1]['upper']))}"


def _series_sections(result: Any, keys: list[str], breakdowns: list[str], granularity: int,
                     command: str | None, link: str | None) -> list[Section]:
    order = [_group_key(r, breakdowns) for r in result.rows]
    points: dict[tuple[str, ...], dict[str, Mapping[str, Any]]] = {}
    times: list[str] = []
    for p in result.series:
        if p["time"] not in times:
            times.append(p["time"])
        points.setdefault(_group_key(p["data"], breakdowns), {})[p["time"]] = p["data"]
    groups = [g for g in order if g in points] or list(points)
    sections = []
    stamps = [_time(t) for t in times]
    grid = _grid(stamps, granularity)
    if grid is not None:  # every bucket of the span, so an empty one shows (COUNT 0)
        times = [t.strftime("%Y-%m-%dT%H:%M:%SZ") for t in grid]
        stamps = grid
    for key in keys:
        if _is_heatmap(key):
            for g in groups[:_HEATMAP_GROUPS]:
                cols = [(points[g].get(t, {}).get(key) or {}).get("buckets", []) for t in times]
                who = " · ".join(g) if g else "all events"
                title = f"{key} over time" + (f" — {who}" if breakdowns else "")
                svg = _charts.time_heatmap(stamps, granularity, cols, ylabel=label(key[8:-1]),
                                           title=label(title))
                rows = [[t, b["lower"], b["upper"], b["count"]]
                        for t, col in zip(times, cols, strict=True) for b in col]
                sections.append(Section(title=title, svg=svg, command=command, link=link,
                                        headers=["time", "lower", "upper", "count"], rows=rows,
                                        kind="heatmap"))
            continue
        shown = groups[:_LINE_GROUPS]
        empty = 0 if key == "COUNT" or key.startswith("COUNT_DISTINCT(") else None
        values = {g: [points[g].get(t, {}).get(key, empty) for t in times] for g in shown}
        series = {label(" · ".join(g) if g else "all events"): values[g] for g in shown}
        title = f"{key} per {granularity} s"
        svg = _charts.time_lines(stamps, series, ylabel=label(key), title=label(title))
        headers = ["time", *[" · ".join(g) if g else key for g in shown]]
        rows = [[t, *[values[g][i] for g in shown]] for i, t in enumerate(times)]
        sections.append(Section(title=title, svg=svg, command=command, link=link,
                                headers=headers, rows=rows, kind="series"))
    return sections


def _breakdown_sections(rows: list[dict[str, Any]], keys: list[str], breakdowns: list[str],
                        command: str | None, link: str | None) -> list[Section]:
    sections = []
    shown = rows[:_BAR_GROUPS]
    names = [group_label(r, breakdowns) for r in shown]
    for key in keys:
        if _is_heatmap(key):
            groups = {label(n): (r.get(key) or {}).get("buckets", [])
                      for n, r in zip(names[:_LINE_GROUPS], shown, strict=False)}  # fmt: skip
            sections.append(_histogram_section(key, groups, command, link))
            continue
        title = f"{key} by {', '.join(breakdowns)}"
        svg = _charts.bars([label(n) for n in names], {label(key): [r.get(key) for r in shown]},
                           xlabel=label(key), title=label(title))
        sections.append(Section(title=title, svg=svg, command=command, link=link,
                                headers=[", ".join(breakdowns), key],
                                rows=[[n, r.get(key)] for n, r in zip(names, shown, strict=True)],
                                kind="bars"))
    return sections


def _histogram_section(key: str, groups: Mapping[str, Sequence[Mapping[str, Any]]],
                       command: str | None, link: str | None) -> Section:
    title = f"{key}: distribution"
    svg = _charts.histograms(groups, xlabel=label(key[8:-1]), title=label(title))
    rows = [[g, b["lower"], b["upper"], b["count"]] for g, bs in groups.items() for b in bs]
    return Section(title=title, svg=svg, command=command, link=link,
                   headers=["group", "lower", "upper", "count"], rows=rows, kind="histogram")


def query_page(result: Any, query: Any, *, command: str | None = None, link: str | None = None,
               title: str | None = None) -> str:
    """The whole page for ``wideevents query --html``."""
    return render_page(title or "wideevents query", query_sections(result, query,
                       command=command, link=link), subtitle="one query's result")
