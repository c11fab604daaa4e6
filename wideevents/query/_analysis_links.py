"""The Honeycomb queries behind the analysis commands, for ``--link`` (``query_url``).

- ``compare``: the selection and the baseline as two queries (COUNT and a HEATMAP of
  ``duration_ms`` under each side's filters). Honeycomb's BubbleUp compares a region
  selected on a heatmap with the rest; a link cannot carry that selection (the query
  template link documents the query only), so open the selection's heatmap and select.
- ``drift``: per feature with a bin column (``feature_bin.*``, ``score.bin``), the weighted
  COUNT of each bin as named calculations with their own filters, ten features per query
  (so the breakdown by group, when there is one, is the only breakdown: Honeycomb's
  breakdowns would otherwise multiply).
- ``calibration``: feedback events broken down by ``score.bin`` (and the group), with
  COUNT, AVG(prediction.p_positive) and AVG(feedback.correct): the reliability table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from wideevents._filter import Condition
from wideevents.query._frame import conditions
from wideevents.query._model import Calculation, Query

__all__ = ["calibration_queries", "compare_queries", "drift_queries"]

_PER_QUERY = 10


def _spec(conds: Sequence[Any]) -> list[dict[str, Any]]:
    return [c.to_json() for c in conditions(list(conds), "filter")]


def compare_queries(where: Sequence[Any], baseline: Sequence[Any]) -> list[tuple[str, Query]]:
    calcs = ["COUNT", "HEATMAP(duration_ms)"]
    out = [("selection", Query.from_json({"calculations": calcs, "filters": _spec(where)}))]
    if baseline:
        out.append(("baseline", Query.from_json({"calculations": calcs,
                                                 "filters": _spec(baseline)})))
    return out


def drift_queries(result: Any, target: Sequence[Any], breakdown: str | None) -> list[tuple[str, Query]]:
    """Queries of the binned features of ``result`` (a DriftResult)."""
    entries = result.features if result.features is not None else [
        f for g in (result.groups or [])[:1] for f in g["features"]]
    names = []
    for entry in entries:
        name = entry["feature"]
        column = ("feature_bin." + name[8:]) if name.startswith("feature.") else name
        if entry["kind"] == "numeric" and column.startswith(("feature_bin.", "score.bin")):
            names.append((name, column, sum(1 for b in entry["bins"] if "range" in b)))
    out = []
    for start in range(0, len(names), _PER_QUERY):
        calcs = []
        chunk = names[start:start + _PER_QUERY]
        for name, column, n in chunk:
            calcs += [Calculation("COUNT", name=f"{name}={i}",
                                  filters=(Condition(column, "=", i),))
                      for i in range(n)]
        spec = {"calculations": [c.to_json() for c in calcs], "filters": _spec(target),
                "breakdowns": [breakdown] if breakdown else []}
        out.append((f"drift features {start + 1}-{start + len(chunk)} of {len(names)}",
                    Query.from_json(spec)))
    return out


def calibration_queries(breakdown: str | None, where: Sequence[Any]) -> list[tuple[str, Query]]:
    spec = {
        "calculations": ["COUNT", "AVG(prediction.p_positive)", "AVG(feedback.correct)"],
        "breakdowns": [*([breakdown] if breakdown else []), "score.bin"],
        "filters": [{"column": "name", "op": "=", "value": "feedback"}, *_spec(where)],
        "orders": [{"column": "score.bin", "order": "ascending"}],
    }
    return [("reliability table", Query.from_json(spec))]
