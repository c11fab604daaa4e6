"""``run_local``: a Honeycomb query over JSON-lines files, with DuckDB as the engine.

What the local engine cannot compute exactly is refused before any file is read, with a
``ConfigurationError`` that names the field (:func:`check_local`); the execution itself is
``_run.Run``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from wideevents._errors import ConfigurationError
from wideevents.query._model import (
    RATE_OPS,
    Query,
    QueryError,
    QueryResult,
    check_granularity,
)
from wideevents.query._run import Run
from wideevents.query._store import ColumnStore, default_cache_dir

__all__ = ["check_local", "expand_paths", "import_duckdb", "run_local", "session"]


def import_duckdb() -> Any:
    """duckdb, or a ConfigurationError naming the extra that installs it."""
    try:
        import duckdb
    except ImportError:
        raise ConfigurationError(
            "local queries need DuckDB: pip install 'wideevents[query]'"
        ) from None
    return duckdb


def expand_paths(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[str]:
    """Files named or matched by glob patterns (``**`` recursive), in order, deduplicated."""
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not items:
        raise ConfigurationError("no file given: pass a path or a glob such as 'events/*.jsonl'")
    found: dict[str, None] = {}
    for item in items:
        text = os.fspath(item)
        if os.path.isdir(text):
            raise ConfigurationError(f"{text} is a directory; pass a glob such as {text}/*.jsonl")
        # A file that exists under this very name is that file, even when its name has
        # glob characters in it (x[1].jsonl must not read x1.jsonl).
        literal = os.path.isfile(text) or not glob.has_magic(text)
        matches = [text] if literal else sorted(glob.glob(text, recursive=True))
        matches = [m for m in matches if os.path.isfile(m)]
        if not matches:
            raise ConfigurationError(f"no file matches {text!r}")
        for match in matches:
            found[os.path.realpath(match)] = None
    return list(found)


def run_local(
    query: Query | Mapping[str, Any] | str,
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    *,
    now: float | None = None,
    cache: bool | str | os.PathLike[str] = True,
    timestamp_field: str = "timestamp",
    duration_field: str = "duration_ms",
    heatmap_buckets: int = 20,
) -> QueryResult:
    """Run ``query`` over JSON-lines files (globs, several files, ``.gz``).

    Weighting as Honeycomb: each event counts ``samplerate`` times, by the one sample-rate
    rule (numbers and numeric strings rounded half up, at least 1; anything else 1); SUM
    and AVG are weighted; Pxx is the smallest value whose
    cumulative weight reaches xx% (numpy's ``inverted_cdf``); COUNT_DISTINCT is not
    weighted; MIN/MAX/SUM/AVG/Pxx/HEATMAP use number values only (null when a group has
    none). HEATMAP is ``{"buckets": [{"lower", "upper", "count"}]}`` with
    ``heatmap_buckets`` equal-width buckets from the group's min to max. CONCURRENCY is
    the weighted time-average number of events in progress (``timestamp`` to
    ``timestamp + duration_ms``) over the query window, per bucket in a series. Filters
    follow the shared filter semantics. With no time field the whole files are covered,
    otherwise times are relative to ``now`` (default: the clock). RATE_* (granularity
    needed), named calculations, per-calculation filters and
    ``compare_time_offset_seconds`` (time window needed; ``result.compare``) as in
    ``_run``; ``calculated_fields``, ``formulas`` and COUNT with a column are refused
    (:func:`check_local`). ``result.warnings`` names query columns no event has.

    ``cache``: True keeps a typed Parquet copy of the fields each query reads under
    :func:`default_cache_dir` (keyed by path, size and mtime), a path puts it there,
    False keeps nothing. Raises ConfigurationError for a bad query, no matching file or
    a missing DuckDB; QueryError when DuckDB cannot read a file.
    """
    if not isinstance(query, Query):
        query = Query.from_json(query)
    if heatmap_buckets < 1:
        raise ConfigurationError(f"heatmap_buckets must be >= 1, got {heatmap_buckets}")
    window = query.window(time.time() if now is None else now)
    if window is not None and query.granularity is not None:
        check_granularity(query.granularity, window[1] - window[0])
    check_local(query, window)
    with session(paths, cache) as (con, store, files):
        settings = (timestamp_field, duration_field, heatmap_buckets)
        result, keys = Run(query, files, store, con, window, *settings).result()
        offset = query.compare_time_offset_seconds
        if offset is not None and window is not None:
            earlier = (window[0] - offset, window[1] - offset)
            result.compare = Run(query, files, store, con, earlier, *settings).aligned(keys)
        return result


@contextlib.contextmanager
def session(
    paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]],
    cache: bool | str | os.PathLike[str],
) -> Iterator[tuple[Any, ColumnStore, list[str]]]:
    """(DuckDB connection, column store, files): every local query and analysis command
    reads through one of these, set up alike (UTC; no progress bar, which DuckDB's Python
    client enables by default: ``run_local`` had been left with it on).
    ``cache``: True, False or a directory (:func:`run_local`). DuckDB and file errors
    become QueryError."""
    files = expand_paths(paths)
    duckdb = import_duckdb()
    cache_dir = default_cache_dir() if cache is True else None if cache is False else Path(cache)
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET enable_progress_bar = false")  # never draw on the user's stdout
        yield con, ColumnStore(con, cache_dir), files
    except duckdb.Error as exc:
        raise QueryError(f"DuckDB could not run the query over the events: {exc}") from exc
    except OSError as exc:  # a file vanished or became unreadable after it was matched
        raise QueryError(f"cannot read {exc.filename}: {exc.strerror}") from exc
    finally:
        con.close()


def check_local(query: Query, window: tuple[float, float] | None) -> None:
    """ConfigurationError naming what of ``query`` the local engine does not compute."""
    honeycomb = "run the query in Honeycomb (HoneycombQueryClient, or --honeycomb DATASET)"
    for name, what in (("calculated_fields", "Honeycomb's calculated field expressions"),
                       ("formulas", "Honeycomb's formulas over calculations")):  # fmt: skip
        if getattr(query, name):
            raise ConfigurationError(
                f"{name} is not supported by the local engine (it does not evaluate {what}); "
                f"{honeycomb}, or remove {name}"
            )
    for calc in query.calculations:
        if calc.op == "COUNT" and calc.column is not None:
            raise ConfigurationError(
                f"calculation COUNT with column {calc.column!r} is not supported by the local "
                f"engine (Honeycomb documents COUNT without a column); remove the column to "
                f"count events, or add the filter '{calc.column} exists' to count the events "
                "that have it"
            )
        if calc.op in RATE_OPS and query.granularity is None:
            raise ConfigurationError(
                f"{calc.term} needs a granularity in the local engine: the rate is a "
                "difference between time buckets, and Honeycomb's automatic granularity is "
                "not reproduced locally; add granularity (e.g. --granularity 60)"
            )
    if query.compare_time_offset_seconds is not None and window is None:
        raise ConfigurationError(
            "compare_time_offset_seconds needs a time window in the local engine (without "
            "one it reads the whole files, so there is no earlier window): add time_range, "
            "or start_time/end_time"
        )
