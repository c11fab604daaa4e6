"""Query wide events locally (DuckDB over JSON lines) and in Honeycomb, with one spec.

:class:`Query` is Honeycomb's query specification; :func:`run_local` runs it over the
JSON-lines files the stdout/file sinks write, with Honeycomb's sample-rate weighting;
:class:`HoneycombQueryClient` runs the same spec through Honeycomb's Query Data API
(Enterprise plan); :func:`query_url` links to the query in Honeycomb's UI (every plan).
:func:`compare`, :func:`drift` and :func:`calibration` answer the usual ML questions over
the same files in one call each (docs/analysis.md); each result's ``to_dict()`` is the
command's ``--json`` document.
"""

from __future__ import annotations

from wideevents.query._calibration import CalibrationResult, calibration
from wideevents.query._compare import CompareResult, compare
from wideevents.query._drift import DriftResult, drift
from wideevents.query._honeycomb import HoneycombQueryClient, query_url
from wideevents.query._local import run_local
from wideevents.query._model import (
    Calculation,
    Having,
    Order,
    Query,
    QueryError,
    QueryResult,
    QueryTimeout,
)

__all__ = [
    "Calculation",
    "CalibrationResult",
    "CompareResult",
    "DriftResult",
    "Having",
    "HoneycombQueryClient",
    "Order",
    "Query",
    "QueryError",
    "QueryResult",
    "QueryTimeout",
    "calibration",
    "compare",
    "drift",
    "query_url",
    "run_local",
]
