"""``wideevents report``: the page about a service's events, assembled from queries.

Every chart's numbers come from one command a user can paste (its caption), run here
through the same functions (``run_local``; ``compare``/``drift``/``calibration`` of
:mod:`wideevents.query`). The sections, in order:

1. volume over time, split by ``error`` when events have that field (else by ``name``);
2. ``duration_ms`` as a heatmap over time;
3. ``duration_ms`` percentiles (P50, P90, P99) per group of ``--breakdown`` (default
   ``model.version`` when events have it), slowest first;
4. the groups with the most errors, and their error rate;
5. for ML events: the score distribution per model version (the score column is the
   first of ``prediction.score``, ``score.top1``, ``result.1.score`` the events have);
6. drift (against ``--profile``, else the first model version against the last),
   calibration (when feedback events exist), and ``compare`` for the slowest 1% and for
   errors.

The granularity of the time charts is the largest of 1 day, 1 hour, 10 minutes, 1
minute, 10 s, 1 s that gives at least 20 buckets (1 s when none does); when 90% of the
events lie in under a tenth of the files' span, the time charts show that span only and
say how many events they leave out (:func:`_time_window`). A step that
cannot run (a column no event has, a failing analysis) becomes a note
on the page saying why, never an exception: the rest of the report is still written.
"""

from __future__ import annotations

import json
import logging
import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from wideevents.query._html._analysis import analysis_sections
from wideevents.query._html._escape import plain
from wideevents.query._html._page import Section, render_page
from wideevents.query._html._query import query_sections

__all__ = ["ReportOptions", "build_report", "command_line"]

log = logging.getLogger("wideevents")

_LADDER: Final = (86400, 3600, 600, 60, 10, 1)
_MIN_BUCKETS: Final = 20
_TAIL: Final = 0.05  # the time charts narrow to the central 90% of the events when that helps
_NARROW: Final = 10  # ... when those events span under a tenth of the files' span
_SCORE_COLUMNS: Final = ("prediction.score", "score.top1", "result.1.score")
_FEEDBACK_COLUMNS: Final = ("feedback.matched", "feedback.label", "feedback.correct")


@dataclass
class ReportOptions:
    """What ``wideevents report`` was asked for."""

    files: Sequence[str]
    where: Sequence[str] = ()
    breakdown: str | None = None
    profile: str | None = None
    title: str | None = None
    team: str | None = None
    environment: str | None = None
    dataset: str | None = None
    cache: bool = True
    shown_files: Sequence[str] = field(default_factory=list)


@dataclass
class _Spec:
    """One query as the command line writes it; :meth:`query` builds the same query."""

    calcs: list[str]
    breakdowns: list[str] = field(default_factory=list)
    where: list[str] = field(default_factory=list)
    orders: list[str] = field(default_factory=list)
    limit: int | None = None
    granularity: int | None = None
    start_time: int | None = None
    end_time: int | None = None

    def query(self) -> Any:
        from wideevents.query import Query
        from wideevents.query._text import parse_order, parse_where

        spec: dict[str, Any] = {"calculations": self.calcs, "breakdowns": self.breakdowns,
                                "filters": [parse_where(w).to_json() for w in self.where],
                                "orders": [parse_order(o).to_json() for o in self.orders]}
        if self.limit is not None:
            spec["limit"] = self.limit
        for name in ("granularity", "start_time", "end_time"):
            if getattr(self, name) is not None:
                spec[name] = getattr(self, name)
        return Query.from_json(spec)

    def command(self, files: Sequence[str]) -> str:
        parts = ["wideevents", "query", *files]
        for c in self.calcs:
            parts += ["--calc", c]
        for b in self.breakdowns:
            parts += ["--breakdown", b]
        for w in self.where:
            parts += ["--where", w]
        for o in self.orders:
            parts += ["--order", o]
        if self.limit is not None:
            parts += ["--limit", str(self.limit)]
        for name in ("granularity", "start_time", "end_time"):
            if getattr(self, name) is not None:
                parts += ["--" + name.replace("_", "-"), str(getattr(self, name))]
        return shlex.join(parts)


def command_line(command: str, files: Sequence[str], options: Sequence[str]) -> str:
    """``wideevents COMMAND FILE... OPTIONS`` quoted for a POSIX shell."""
    return shlex.join(["wideevents", command, *files, *options])


class _Report:
    def __init__(self, opts: ReportOptions) -> None:
        from wideevents.query._local import expand_paths

        self.opts = opts
        self.paths = expand_paths(list(opts.files))
        self.shown = list(opts.shown_files or opts.files)
        self.sections: list[Section] = []
        self.skipped_lines = 0
        self.columns = self.present(["error", "duration_ms", "model.version", "name",
                                     *_SCORE_COLUMNS, *_FEEDBACK_COLUMNS])

    def present(self, columns: Sequence[str]) -> set[str]:
        """Which of ``columns`` some event (passing no filter) has: one pass, a named COUNT
        per column restricted to ``column exists`` (a sample of the first lines would miss
        fields that only later events have, such as feedback's)."""
        from wideevents.query import Query, run_local

        calcs = [{"op": "COUNT", "name": f"c{i}", "filters": [{"column": c, "op": "exists"}]}
                 for i, c in enumerate(columns)]
        result = run_local(Query.from_json({"calculations": calcs}), self.paths,
                           cache=self.opts.cache)
        self.skipped_lines = result.skipped_lines
        row = result.rows[0] if result.rows else {}
        return {c for i, c in enumerate(columns) if row.get(f"c{i}")}

    def run(self, spec: _Spec) -> Any:
        from wideevents.query import run_local

        return run_local(spec.query(), self.paths, cache=self.opts.cache)

    def link(self, spec: _Spec) -> str | None:
        if not self.opts.team or not self.opts.dataset:
            return None
        from wideevents.query import query_url

        return query_url(spec.query(), team=self.opts.team, environment=self.opts.environment,
                         dataset=self.opts.dataset)

    def add_query(self, spec: _Spec, *, kinds: Sequence[str] = ("series", "heatmap",
                  "histogram", "bars"), note: str | None = None) -> Any:
        result = self.run(spec)
        found = query_sections(result, spec.query(), command=spec.command(self.shown),
                               link=self.link(spec))
        for s in found:
            if s.kind in kinds:
                s.note = s.note or note
                self.sections.append(s)
        return result

    def note(self, title: str, text: str, command: str | None = None) -> None:
        self.sections.append(Section(title=title, note=text, command=command, kind="note"))

    def step(self, title: str, body: Callable[[], None]) -> None:
        """Run one part of the report; a failure is a note on the page, not an exception."""
        try:
            body()
        except Exception as exc:  # noqa: BLE001 - one failed chart must not cost the report
            log.warning("wideevents report: %s failed: %s", title, exc)
            self.note(title, f"could not be drawn: {type(exc).__name__}: {exc}")


@dataclass
class _Window:
    """The time charts' buckets and span: ``start``/``end`` None for the whole files."""

    granularity: int
    start: int | None = None
    end: int | None = None
    outside: float = 0.0  # weighted events of the files outside [start, end)
    has_buckets: bool = True


def _buckets(report: _Report, where: list[str], window: _Window) -> list[tuple[int, float]]:
    spec = _Spec(["COUNT"], where=where, granularity=window.granularity,
                 start_time=window.start, end_time=window.end)
    out = [(int(datetime.fromisoformat(p["time"].replace("Z", "+00:00")).timestamp()),
            float(p["data"]["COUNT"])) for p in report.run(spec).series or []]
    return sorted(out)


def _time_window(report: _Report, where: list[str]) -> _Window:
    """The granularity (the largest of the ladder giving 20 or more buckets) and, when
    90% of the events fall in under a tenth of the files' span (feedback arriving hours
    after the requests, say), that narrower span, so the time charts show where the
    events are: whole buckets, leaving out at most 5% of the weighted events at each end
    (over all passes: a finer second pass spends only what the first left of that
    budget). The events left out are counted and said under each time chart; the
    captions carry ``--start-time``/``--end-time``."""
    window, total, low_out, high_out = _Window(1), 0.0, 0.0, 0.0
    for _ in range(3):  # narrowing twice at most: a coarse pass, then finer ones
        buckets: list[tuple[int, float]] = []
        for g in _LADDER:
            if window.start is not None and window.end is not None and not (
                    (window.end - window.start) / 1000 <= g <= window.end - window.start):
                continue  # Honeycomb's rule, checked by Query: window/1000 to the window
            window.granularity = g
            buckets = _buckets(report, where, window)
            if len(buckets) >= _MIN_BUCKETS:
                break
        if not buckets:
            window.has_buckets = window.start is not None
            return window
        total = total or sum(c for _, c in buckets)
        g = window.granularity
        span = (window.end - window.start if window.start is not None and window.end is not None
                else buckets[-1][0] + g - buckets[0][0])
        lo, low = 0, 0.0
        while lo < len(buckets) - 1 and low_out + low + buckets[lo][1] <= total * _TAIL:
            low += buckets[lo][1]
            lo += 1
        hi, high = len(buckets) - 1, 0.0
        while hi > lo and high_out + high + buckets[hi][1] <= total * _TAIL:
            high += buckets[hi][1]
            hi -= 1
        first, last = buckets[lo][0], buckets[hi][0] + g
        if (last - first) * (_NARROW if window.start is None else 2) > span:
            break  # narrowing would not show the events much better
        window = _Window(g, first, last)
        low_out, high_out = low_out + low, high_out + high
    window.outside = low_out + high_out
    return window


def _utc(t: int) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _analysis(kind: str) -> Callable[..., Any]:
    """``wideevents.query.compare``, ``drift`` or ``calibration``."""
    import wideevents.query as q

    return getattr(q, kind)  # type: ignore[no-any-return]


def _timed(r: _Report, where: list[str], pin: bool = False
           ) -> tuple[dict[str, Any], str | None, bool]:
    """The time arguments of a time chart over the events passing ``where``, its note, and
    whether there is anything to chart over time. ``pin``: the charts show other events
    too (feedback), so the window is always explicit, these events' span at the least."""
    w = _time_window(r, where)
    if pin and w.start is None and w.has_buckets:
        buckets = _buckets(r, where, w)
        if buckets:
            w = _Window(w.granularity, buckets[0][0], buckets[-1][0] + w.granularity)
    timed: dict[str, Any] = {"granularity": w.granularity, "start_time": w.start,
                             "end_time": w.end}
    note = None
    if w.start is not None:
        span = f"{_utc(w.start)} to {_utc(w.end or w.start)}"
        note = (f"from {span}, where 90% of the events other than feedback are; "
                f"{plain(w.outside)} of them outside it are left out of the time charts (not "
                "of the other sections), and so is any feedback outside it")
    return timed, note, w.has_buckets


def build_report(opts: ReportOptions) -> str:
    """The report page's HTML (see the module doc for its sections)."""
    r = _Report(opts)
    where = list(opts.where)
    breakdown = opts.breakdown or ("model.version" if "model.version" in r.columns else None)
    has_error = "error" in r.columns
    has_duration = "duration_ms" in r.columns
    if r.skipped_lines:
        r.note("lines skipped", f"{r.skipped_lines} lines of the files are not a JSON object "
               "(malformed, truncated, invalid UTF-8): they are in no chart")
    # The service's own events choose the time window: feedback (wideevents.feedback(),
    # name "feedback") arrives minutes to hours after its request and would stretch the
    # axis until the requests are one column.
    served = [*where, "name != feedback"] if "name" in r.columns else where
    timed, note, over_time = _timed(r, served, pin=served is not where)
    if not over_time:
        r.note("over time", "no event (passing --where) has a timestamp: no time charts")
    split = ["error"] if has_error else ["name"] if "name" in r.columns else []
    r.step("volume", lambda: r.add_query(_Spec(
        ["COUNT"], breakdowns=split, where=where, **timed), kinds=("series",), note=note))
    if has_duration:
        r.step("latency heatmap", lambda: r.add_query(_Spec(
            ["HEATMAP(duration_ms)"], where=served, **timed), kinds=("heatmap",), note=note))
    if breakdown and has_duration:
        r.step("latency per group", lambda: _percentiles(r, breakdown, served))
    if breakdown and has_error:
        r.step("errors per group", lambda: _errors(r, breakdown, where))
    elif not has_error:
        r.note("errors", "no event has an `error` field")
    score = next((c for c in _SCORE_COLUMNS if c in r.columns), None)
    if score and "model.version" in r.columns:
        r.step("scores", lambda: r.add_query(_Spec(
            [f"HEATMAP({score})", "COUNT"], breakdowns=["model.version"], where=where,
            orders=["COUNT desc"], limit=8), kinds=("histogram",)))
    r.step("drift", lambda: _drift(r, where))
    if any(c in r.columns for c in _FEEDBACK_COLUMNS):
        r.step("calibration", lambda: _calibration(r, breakdown, where))
    if has_duration:
        r.step("compare: slowest 1%", lambda: _compare_slowest(r, served))
    if has_error:
        r.step("compare: errors", lambda: _compare(r, [*where, "error = true"], "errors"))
    title = opts.title or "wideevents report"
    files = ", ".join(plain(f) for f in r.shown)
    return render_page(title, r.sections, subtitle=f"events from {files}")


def _percentiles(r: _Report, breakdown: str, where: list[str]) -> None:
    calcs = ["P50(duration_ms)", "P90(duration_ms)", "P99(duration_ms)", "COUNT"]
    spec = _Spec(calcs, breakdowns=[breakdown], where=where, orders=["P99(duration_ms) desc"],
                 limit=20)
    result = r.run(spec)
    from wideevents.query._html import _charts
    from wideevents.query._html._escape import label
    from wideevents.query._html._query import group_label

    names = [group_label(row, [breakdown]) for row in result.rows]
    title = f"duration_ms percentiles by {breakdown}, slowest first"
    svg = _charts.bars([label(n) for n in names],
                       {c[:3]: [row.get(c) for row in result.rows] for c in calcs[:3]},
                       xlabel="duration_ms", title=label(title))
    rows = [[n, *[row.get(c) for c in calcs]] for n, row in zip(names, result.rows, strict=True)]
    r.sections.append(Section(title=title, svg=svg, command=spec.command(r.shown),
                              link=r.link(spec), headers=[breakdown, *calcs], rows=rows,
                              kind="percentiles"))


def _errors(r: _Report, breakdown: str, where: list[str]) -> None:
    errors = _Spec(["COUNT"], breakdowns=[breakdown], where=[*where, "error = true"],
                   orders=["COUNT desc"], limit=20)
    totals = _Spec(["COUNT"], breakdowns=[breakdown], where=where, limit=1000)
    bad, every = r.run(errors), r.run(totals)
    from wideevents.query._html import _charts
    from wideevents.query._html._escape import label
    from wideevents.query._html._query import group_label

    total = {group_label(row, [breakdown]): row["COUNT"] for row in every.rows}
    names = [group_label(row, [breakdown]) for row in bad.rows]
    rates = [row["COUNT"] / total[n] if total.get(n) else None
             for n, row in zip(names, bad.rows, strict=True)]
    title = f"the groups of {breakdown} with the most errors"
    commands = f"{errors.command(r.shown)}  (rate: divided by)  {totals.command(r.shown)}"
    if not bad.rows:
        r.note(title, "no event has error = true", commands)
        return
    svg = _charts.bars([label(n) for n in names], {"error rate": rates}, xlabel="error rate",
                       title=label(title))
    rows = [[n, row["COUNT"], total.get(n), rate]
            for n, row, rate in zip(names, bad.rows, rates, strict=True)]
    r.sections.append(Section(title=title, svg=svg, command=commands, link=r.link(errors),
                              headers=[breakdown, "errors", "events", "error rate"], rows=rows,
                              kind="errors"))


def _doc(result: Any) -> Any:
    return result.to_dict() if hasattr(result, "to_dict") else result


def _drift(r: _Report, where: list[str]) -> None:
    fn = _analysis("drift")
    title = "drift"
    if r.opts.profile:
        options = ["--profile", r.opts.profile, *_where_options("--target", where)]
        kwargs: dict[str, Any] = {"profile": r.opts.profile, "target": where or None}
    else:
        versions = _versions(r, where)
        if len(versions) < 2:
            r.note(title, "give --profile PROFILE.json (or events of two model versions) "
                   "to see drift")
            return
        base, target = (equals("model.version", versions[0]),
                        equals("model.version", versions[-1]))
        # the report's --where narrows both sides
        options = [*_where_options("--baseline", [*where, base]),
                   *_where_options("--target", [*where, target])]
        kwargs = {"baseline": [*where, base], "target": [*where, target]}
    command = command_line("drift", r.shown, options)
    doc = _doc(fn(r.paths, **kwargs))
    r.sections += analysis_sections("drift", doc, command=command)


def equals(column: str, value: Any) -> str:
    """The ``--where`` text ``column = value`` that reads back as exactly ``value`` (a
    string that would read as a number, ``true`` or JSON is written quoted)."""
    from wideevents.query._text import parse_value

    if isinstance(value, str) and parse_value(value) != value:
        return f"{column} = {json.dumps(value, ensure_ascii=False)}"
    if isinstance(value, str):
        return f"{column} = {value}"
    return f"{column} = {json.dumps(value)}"


def _where_options(flag: str, where: list[str]) -> list[str]:
    out: list[str] = []
    for w in where:
        out += [flag, w]
    return out


def _versions(r: _Report, where: list[str]) -> list[str]:
    spec = _Spec(["COUNT"], breakdowns=["model.version"], where=where,
                 limit=100)
    rows = [row for row in r.run(spec).rows if isinstance(row.get("model.version"), str)]
    return sorted(row["model.version"] for row in rows if row["COUNT"])


def _calibration(r: _Report, breakdown: str | None, where: list[str]) -> None:
    fn = _analysis("calibration")
    options = [*(["--breakdown", breakdown] if breakdown else []),
               *_where_options("--where", where)]
    command = command_line("calibration", r.shown, options)
    doc = _doc(fn(r.paths, breakdown=breakdown, where=where or None))
    r.sections += analysis_sections("calibration", doc, command=command)


def _compare_slowest(r: _Report, where: list[str]) -> None:
    result = r.run(_Spec(["P99(duration_ms)"], where=where))
    p99 = result.rows[0].get("P99(duration_ms)") if result.rows else None
    if p99 is None:
        r.note("compare: the slowest 1%", "no event has a numeric duration_ms")
        return
    _compare(r, [*where, f"duration_ms >= {plain(float(p99))}"], "the slowest 1%")


def _compare(r: _Report, selection: list[str], what: str) -> None:
    fn = _analysis("compare")
    command = command_line("compare", r.shown, _where_options("--where", selection))
    doc = _doc(fn(r.paths, where=selection))
    r.sections += analysis_sections("compare", doc, command=command)
    for s in r.sections:
        if s.kind.startswith("compare") and s.title.startswith("compare:") and what not in s.title:
            s.title = s.title.replace("compare:", f"compare ({what}):", 1)


def write_report(opts: ReportOptions, out: str | Path) -> Path:
    """Build the report and write it to ``out``."""
    from wideevents.query._html._page import write_page

    return write_page(out, build_report(opts))
