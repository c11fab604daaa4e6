"""The documents of ``compare``, ``drift`` and ``calibration`` as charts.

Input: exactly the command's ``--json`` document (the result object's ``to_dict()``):

* compare: ``{"fields": [{"column", "score", "kind", "top": [{"value" | "range",
  "selection", "baseline"}]}]}``, best first: bars of each column's score, and per top
  column its values' shares in the selection and the baseline.
* drift: ``{"features": [{"feature", "psi", "js", "kind", "bins"}]}`` worst first, or
  ``{"groups": [{"group", "features"}]}``: PSI bars with the 0.1 / 0.25 thresholds, and the
  table of PSI and JS.
* calibration: ``{"groups": [{"group", "count", "ece", "brier", "accuracy", "bins"}]}``:
  the reliability diagram (per bin: mean predicted probability against observed rate)
  and the table of ECE, Brier and accuracy.

A key this module does not know is shown in the tables and otherwise ignored, so a field
added to a document later does not break its page.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from wideevents.query._html import _charts
from wideevents.query._html._escape import label, plain
from wideevents.query._html._page import Section, render_page

__all__ = ["analysis_page", "analysis_sections"]

_TOP_FIELDS: Final = 25
_DETAIL_FIELDS: Final = 3
_PREDICTED: Final = ("mean_predicted", "predicted", "mean_score", "confidence", "mean_p",
                     "avg_predicted", "p_mean")  # fmt: skip
_OBSERVED: Final = ("observed", "observed_rate", "rate", "positive_rate", "accuracy",
                    "observed_accuracy", "frequency")  # fmt: skip
PSI_LINES: Final = ((0.1, "0.1 moderate"), (0.25, "0.25 significant"))


def _pick(d: Mapping[str, Any], names: Sequence[str]) -> Any:
    for n in names:
        if n in d:
            return d[n]
    return None


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def bucket_name(b: Mapping[str, Any]) -> str:
    """A bucket of ``compare``/``drift`` as text: its value, ``[lower, upper)``, or
    ``(missing)`` / ``(other)``."""
    if b.get("missing"):
        return "(missing)"
    if b.get("other"):
        return "(other)"
    if "range" in b and isinstance(b["range"], Sequence) and len(b["range"]) == 2:
        lo, hi = b["range"]
        return f"[{plain(lo)}, {plain(hi)}]"
    return plain(b.get("value"))


def _bin_columns(bins: Sequence[Mapping[str, Any]]) -> list[str]:
    keys: list[str] = []
    for b in bins:
        keys += [k for k in b if k not in keys]
    return keys


def compare_sections(doc: Mapping[str, Any], *, command: str | None = None,
                     link: str | None = None, title: str = "compare") -> list[Section]:
    fields = list(doc.get("fields") or [])
    if not fields:
        return [Section(title=f"{title}: no column differs", command=command, link=link,
                        kind="table", headers=["column"], rows=[])]
    shown = fields[:_TOP_FIELDS]
    svg = _charts.bars([label(f.get("column")) for f in shown],
                       {"score": [f.get("score") for f in shown]},
                       xlabel="distance between selection and baseline (0 to 1)",
                       title=label(f"{title}: the columns that differ most"))
    sections = [Section(title=f"{title}: the columns that differ most", svg=svg,
                        command=command, link=link, headers=["column", "kind", "score"],
                        rows=[[f.get("column"), f.get("kind"), f.get("score")] for f in fields],
                        kind="compare")]
    for f in fields[:_DETAIL_FIELDS]:
        top = list(f.get("top") or [])
        names = [bucket_name(t) for t in top]
        section_title = f"{title}: {plain(f.get('column'))}, selection against baseline"
        svg = _charts.bars([label(n) for n in names],
                           {"selection": [t.get("selection") for t in top],
                            "baseline": [t.get("baseline") for t in top]},
                           xlabel="share of events", title=label(section_title))
        sections.append(Section(title=section_title, svg=svg, command=command, link=link,
                                headers=["value", "selection", "baseline"],
                                rows=[[n, t.get("selection"), t.get("baseline")]
                                      for n, t in zip(names, top, strict=True)],
                                kind="compare-detail"))
    return sections


def _drift_section(features: Sequence[Mapping[str, Any]], title: str, command: str | None,
                   link: str | None) -> Section:
    shown = list(features)[:_TOP_FIELDS]
    svg = _charts.bars([label(f.get("feature")) for f in shown],
                       {"PSI": [f.get("psi") for f in shown]}, xlabel="PSI",
                       title=label(title), lines=PSI_LINES)
    return Section(title=title, svg=svg, command=command, link=link,
                   headers=["feature", "kind", "psi", "js"],
                   rows=[[f.get("feature"), f.get("kind"), f.get("psi"), f.get("js")]
                         for f in features], kind="drift")  # fmt: skip


def drift_sections(doc: Mapping[str, Any], *, command: str | None = None,
                   link: str | None = None, title: str = "drift") -> list[Section]:
    if "groups" in doc:
        return [_drift_section(g.get("features") or [],
                               f"{title}: {plain(g.get('group'))}", command, link)
                for g in doc["groups"]]  # fmt: skip
    features = doc.get("features") or []
    sections = [_drift_section(features, f"{title}: PSI per feature, worst first", command, link)]
    for f in list(features)[:_DETAIL_FIELDS]:
        bins = [b for b in f.get("bins") or [] if isinstance(b, Mapping)]
        if not bins:
            continue
        names = [bucket_name(b) for b in bins]
        section_title = f"{title}: {plain(f.get('feature'))}, target against reference"
        svg = _charts.bars([label(n) for n in names],
                           {"reference": [b.get("reference") for b in bins],
                            "target": [b.get("target") for b in bins]},
                           xlabel="share of events", title=label(section_title))
        sections.append(Section(title=section_title, svg=svg, command=command, link=link,
                                headers=["bin", "reference", "target", "psi"],
                                rows=[[n, b.get("reference"), b.get("target"), b.get("psi")]
                                      for n, b in zip(names, bins, strict=True)],
                                kind="drift-bins"))
    return sections


def _group_name(g: Mapping[str, Any]) -> str:
    name = plain(g.get("group"))
    return f"{name} ({plain(g['kind'])})" if g.get("kind") else name


def calibration_sections(doc: Mapping[str, Any], *, command: str | None = None,
                         link: str | None = None, title: str = "calibration") -> list[Section]:
    groups = list(doc.get("groups") or [])
    curves: dict[str, list[tuple[float, float]]] = {}
    for g in groups[:8]:
        points = []
        for b in g.get("bins") or []:
            p, o = _num(_pick(b, _PREDICTED)), _num(_pick(b, _OBSERVED))
            if p is not None and o is not None and (_num(b.get("count")) or 0) > 0:
                points.append((p, o))
        curves[label(_group_name(g))] = points
    chart_title = f"{title}: reliability diagram"
    svg = _charts.reliability(curves, title=label(chart_title)) if groups else None
    rows = [[_group_name(g), g.get("count"), g.get("ece"), g.get("brier"), g.get("accuracy")]
            for g in groups]
    sections = [Section(title=chart_title, svg=svg, command=command, link=link,
                        headers=["group", "count", "ece", "brier", "accuracy"], rows=rows,
                        kind="calibration",
                        note=None if groups else "no feedback joined to a prediction")]
    for g in groups[:4]:
        bins = [b for b in g.get("bins") or [] if isinstance(b, Mapping)]
        if bins:
            cols = _bin_columns(bins)
            sections.append(Section(title=f"{title}: bins of {_group_name(g)}",
                                    command=command, link=link, headers=cols,
                                    rows=[[b.get(c) for c in cols] for b in bins],
                                    kind="calibration-bins"))
    return sections


_RENDERERS: Final = {"compare": compare_sections, "drift": drift_sections,
                     "calibration": calibration_sections}  # fmt: skip


def analysis_sections(kind: str, doc: Mapping[str, Any], *, command: str | None = None,
                      link: str | None = None) -> list[Section]:
    """Sections for the ``--json`` document of ``compare``, ``drift`` or ``calibration``."""
    if kind not in _RENDERERS:
        raise ValueError(f"unknown analysis {kind!r}; one of {sorted(_RENDERERS)}")
    return _RENDERERS[kind](doc, command=command, link=link)


def analysis_page(kind: str, doc: Mapping[str, Any], *, command: str | None = None,
                  links: Sequence[str] = (), title: str | None = None) -> str:
    """The whole page for ``wideevents compare|drift|calibration --html``; ``links``: the
    Honeycomb query links behind the result (``title: url`` lines of ``--link``)."""
    sections = analysis_sections(kind, doc, command=command)
    if links:
        rows = [link.split(": ", 1) if ": " in link else ["", link] for link in links]
        sections.append(Section(title="The same queries in Honeycomb", kind="links",
                                headers=["query", "link"], rows=rows))
    return render_page(title or f"wideevents {kind}", sections,
                       subtitle=f"the result of wideevents {kind}")
