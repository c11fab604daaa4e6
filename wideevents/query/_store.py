"""Typed columnar copies of JSON-lines files, so DuckDB queries them fast and exactly.

A JSON field can hold values of several kinds across events (``200`` here, ``"200"``
there); DuckDB's schema detection would merge them (or guess a DATE from a version
string), breaking the filter semantics. So each field a query needs is read as raw JSON
and split, in the same pass, into two columns:

* ``<alias>_t``: the values of the field's *primary* kind, typed (``i`` BIGINT, ``f``
  DOUBLE, ``s`` VARCHAR, ``b`` BOOLEAN, ``o`` JSON for lists/objects). The primary kind
  is the most common one in a sample of the file's first lines.
* the *rest*: the raw JSON of every other non-null value (usually none at all), kept for
  all the fields of a part in one column ``r<n>`` (``n`` the part's first alias number,
  so the column names of a file's parts never collide): NULL on a line whose values all have
  their field's primary kind, else a JSON object ``{"<alias>": <raw JSON>, ...}`` of the
  line's other values. One mostly-NULL column per part costs far less to write than one
  per field (format 4; format 3 wrote a ``<alias>_r`` column per field).

A field with no rest values in any file takes the fast typed path; otherwise its value
is rebuilt as JSON and compared kind by kind. The split looks at the first byte of each
value's JSON text (``"`` string, ``t``/``f`` boolean, ``[``/``{`` other), which costs far
less than parsing it again; a number is told by its cast (an integer literal is the
decimal text of its BIGINT; a finite DOUBLE only comes from a number). The time field also
gets a column of Unix seconds parsed from RFC 3339 text (or taken from a number).

Columns are fetched on demand: a query reads, in one pass over the file, only the fields
no earlier query fetched, and writes them as one Parquet *part*. A file's parts line up
row by row, so they are combined with DuckDB's POSITIONAL JOIN. Parts live in
``<cache_dir>/v3-<hash of path>/`` with a ``manifest.json`` keyed by the file's size and
mtime: when the file changes, its cache starts over. With no cache directory, parts are
temporary tables of the query's own connection.

How fields are addressed: the fast reader is ``read_json`` with ``records = true`` and one
JSON column per field (left to auto-detection, a single column, or a line that is not an
object, made DuckDB return each whole line as the "column"); the robust reader extracts
by JSON Pointer (RFC 6901: ``/`` + the key with ``~`` as ``~0`` and ``/`` as ``~1``),
which names any key exactly: empty, ``$``, ``.``, ``"``, ``[``, ``*``, backslash, spaces,
non-ASCII, controls; keys differing only in case stay apart in both readers. Lines that
are not JSON objects are skipped and counted (``skipped`` in the manifest).

The cache directory holds only entries it can prove it created (``_cachedir``); any
other directory there is never deleted nor used. The SQL of a pass is in ``_store_sql``.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import re
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from wideevents._core.env import env
from wideevents._core.log import log_once
from wideevents._filter import ColumnKind, quote_identifier, sql_literal
from wideevents.query._cachedir import PART, clear, create_entry, is_entry, prune
from wideevents.query._hints import parse_line
from wideevents.query._model import QueryError
from wideevents.query._store_sql import MAX_OBJECT, duckdb_path, rest_sql, select_sql

__all__ = [
    "MAX_KEYS",
    "ColumnStore",
    "FileColumns",
    "combined_kind",
    "default_cache_dir",
    "duckdb_path",
]

_FORMAT: Final = 4
_SAMPLE_LINES: Final = 1000
_SAMPLE_BYTES: Final = 4 * 1024 * 1024
#: At most this many distinct keys of a file are listed by :meth:`ColumnStore.keys`.
MAX_KEYS: Final = 10_000
# SQL type of the typed column per primary kind, and of a unified query kind.
_TYPED: Final = {"i": "BIGINT", "f": "DOUBLE", "s": "VARCHAR", "b": "BOOLEAN", "o": "JSON"}


def default_cache_dir() -> Path:
    """``$WIDEEVENTS_CACHE_DIR``, else ``$XDG_CACHE_HOME/wideevents/query``, else under ~."""
    explicit = env("WIDEEVENTS_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = env("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "wideevents" / "query"


@dataclass
class FileColumns:
    """One file's fields as SQL: ``source`` is a FROM-clause item; ``entries[field]``
    holds the alias, primary ``kind`` and non-null counts (``typed``, ``rest``);
    ``skipped`` counts the lines that are not JSON objects."""

    source: str
    entries: dict[str, dict[str, Any]]
    time_aliases: dict[str, str]
    skipped: int = 0  # lines of the file that are not JSON objects (not in ``source``)

    def expression(self, field: str, kind: ColumnKind, integers: bool) -> str:
        """The field's value in this file as the query-wide ``kind`` (``integers``: the
        number kind holds only BIGINTs), typed the same in every file."""
        entry = self.entries[field]
        typed = quote_identifier(entry["alias"] + "_t")
        rest = rest_sql(entry["rest_column"], entry["alias"])
        primary, has_typed = entry["kind"], entry["typed"] > 0
        if kind == "missing":
            return "NULL"
        if kind == "json":
            as_json = f"CAST({typed} AS JSON)" if primary == "o" else f"to_json({typed})"
            parts = ([as_json] if has_typed else []) + (
                [rest] if entry["rest"] else []
            )
            return f"coalesce({', '.join(parts)})" if parts else "CAST(NULL AS JSON)"
        wanted = {"number": "i" if integers else "f", "string": "s", "boolean": "b", "other": "o"}[
            kind
        ]
        sql_type = _TYPED[wanted]
        matches = primary == wanted or (kind == "number" and primary in ("i", "f"))
        return (
            f"CAST({typed} AS {sql_type})" if has_typed and matches else f"CAST(NULL AS {sql_type})"
        )

    def time(self, field: str) -> str:
        """The quoted name of the Unix-seconds column parsed from ``field``."""
        return quote_identifier(self.time_aliases[field])


def combined_kind(parts: Sequence[FileColumns], field: str) -> tuple[ColumnKind, bool]:
    """The kind of ``field`` across files, and whether its numbers are all integers."""
    kinds = {p.entries[field]["kind"] for p in parts if p.entries[field]["typed"]}
    if any(p.entries[field]["rest"] for p in parts):
        return "json", False
    if not kinds:
        return "missing", False
    if kinds <= {"i", "f"}:
        return "number", kinds == {"i"}
    if len(kinds) > 1:
        return "json", False
    only = {"s": "string", "b": "boolean", "o": "other"}[next(iter(kinds))]
    return only, False  # type: ignore[return-value]


def _value_kind(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "b"
    if isinstance(value, int):
        return "i" if -(2**63) <= value < 2**63 else "f"
    if isinstance(value, float):
        return "f"
    return "s" if isinstance(value, str) else "o"


def sample_kinds(path: str, fields: Iterable[str]) -> dict[str, str]:
    """The primary kind of each field: the most common kind in the first lines of the file
    (numbers are ``f`` as soon as one is not an integer); ``s`` when never seen."""
    seen: dict[str, Counter[str]] = {f: Counter() for f in fields}
    try:
        opener: Any = gzip.open if path.endswith(".gz") else open
        with opener(path, "rb") as f:
            budget = _SAMPLE_BYTES  # never more than this in memory, whatever the lines
            for _ in range(_SAMPLE_LINES):
                line = f.readline(budget)
                budget -= len(line)
                if not line or (budget <= 0 and not line.endswith(b"\n")):
                    break  # the end, or a line longer than what is left to sample
                event = parse_line(line)
                if isinstance(event, dict):
                    for field, counter in seen.items():
                        kind = _value_kind(event.get(field))
                        if kind is not None:
                            counter[kind] += 1
    except (OSError, EOFError):
        pass  # unreadable here (e.g. .zst): DuckDB reads it; kinds fall back to strings
    out = {}
    for field, counter in seen.items():
        if counter["i"] and counter["f"]:
            counter["f"] += counter.pop("i")
        out[field] = counter.most_common(1)[0][0] if counter else "s"
    return out


_REST_COLUMN: Final = re.compile(r"r[0-9]+")


class _Unstable(Exception):
    """The file changed while it was read."""


def _fresh(path: str, st: os.stat_result) -> dict[str, Any]:
    return {
        "format": _FORMAT, "path": path, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
        "rows": None, "skipped": None, "strict": True, "next": 0, "columns": {}, "times": {},
        "keys": None,
    }  # fmt: skip


class ColumnStore:
    """Fetches fields of JSON-lines files into typed parts, cached on disk when possible."""

    def __init__(self, con: Any, cache_dir: Path | None) -> None:
        self._con = con
        self._cache_dir = cache_dir
        self._memory: dict[str, dict[str, Any]] = {}

    def columns(self, path: str, fields: Iterable[str], time_fields: Iterable[str]) -> FileColumns:
        """Make sure ``fields`` (and the parsed ``time_fields``) of ``path`` are available."""
        wanted, wanted_t = sorted(set(fields)), sorted(set(time_fields))
        st = os.stat(path)
        manifest, directory = self._manifest(path, st)
        try:
            self._ensure(path, st, manifest, directory, wanted, wanted_t)
        except _Unstable:
            # Earlier parts no longer line up with the file: this query gets one
            # consistent pass of its own, and nothing is cached.
            if directory is not None:
                clear(directory)
            manifest, directory = _fresh(path, os.stat(path)), None
            self._memory[path] = manifest
            self._ensure(path, None, manifest, None, wanted, wanted_t)
        used = [manifest["columns"][f] for f in wanted] + [manifest["times"][f] for f in wanted_t]
        parts = list(dict.fromkeys(e["part"] for e in used)) or [None]
        scans = [self._scan(directory, p) for p in parts]
        return FileColumns(
            source=scans[0] if len(scans) == 1 else "(" + " POSITIONAL JOIN ".join(scans) + ")",
            entries={f: manifest["columns"][f] for f in wanted},
            time_aliases={f: manifest["times"][f]["alias"] for f in wanted_t},
            skipped=int(manifest["skipped"] or 0),
        )

    def keys(self, path: str) -> list[str]:
        """Every top-level key of the JSON objects of ``path`` (at most :data:`MAX_KEYS`, in
        sorted order), read once per version of the file and kept in its manifest."""
        st = os.stat(path)
        manifest, directory = self._manifest(path, st)
        known = manifest.get("keys")
        if isinstance(known, list) and all(isinstance(k, str) for k in known):
            return known
        # json_keys is [] for an array or a scalar and NULL for a line that is not JSON, so
        # no json_type() filter is needed: it would parse every line a second time.
        rows = self._con.execute(
            f"SELECT DISTINCT unnest(json_keys(json)) FROM read_ndjson_objects("
            f"{sql_literal(duckdb_path(path))}, ignore_errors = true, maximum_object_size ="
            f" {MAX_OBJECT})"
        ).fetchall()
        found = sorted(str(row[0]) for row in rows)[:MAX_KEYS]
        after = os.stat(path)
        if (after.st_size, after.st_mtime_ns) == (st.st_size, st.st_mtime_ns):
            manifest["keys"] = found  # a file that moved meanwhile is read again next time
            if directory is not None:
                self._save(directory, manifest)
        return found

    def _scan(self, directory: Path | None, part: str | None) -> str:
        if part is None:
            return "(SELECT 1 AS _empty WHERE FALSE)"
        if directory is None:
            return quote_identifier(part)
        return f"read_parquet({sql_literal(duckdb_path(str(directory / part)))})"

    def _in_memory(self, path: str, st: os.stat_result) -> dict[str, Any]:
        current = self._memory.get(path)
        if current is None or [current["size"], current["mtime_ns"]] != [
            st.st_size,
            st.st_mtime_ns,
        ]:
            self._memory[path] = current = _fresh(path, st)
        return current

    def _manifest(self, path: str, st: os.stat_result) -> tuple[dict[str, Any], Path | None]:
        if self._cache_dir is None:
            return self._in_memory(path, st), None
        name = "v3-" + hashlib.sha256(os.fsencode(path)).hexdigest()[:32]
        directory = self._cache_dir / name
        fresh = _fresh(path, st)
        if is_entry(directory):
            try:
                manifest = json.loads((directory / "manifest.json").read_text())
                same = all(manifest[k] == fresh[k] for k in ("format", "path", "size", "mtime_ns"))
                entries = _entries(manifest)
                if same and all(
                    isinstance(e["part"], str) and PART.fullmatch(e["part"])
                    and (directory / e["part"]).is_file()
                    for e in entries
                ) and all(  # names interpolated into SQL: only the ones this module writes
                    _REST_COLUMN.fullmatch(e["rest_column"]) for e in manifest["columns"].values()
                ):
                    return manifest, directory
            except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
                pass
            # A changed file, or an unreadable manifest: start over in the same entry.
            clear(directory)
            return fresh, directory
        if os.path.lexists(directory):
            log_once("query.cache.foreign", "wideevents query cache: %s exists but was not "
                     "created by wideevents; not using it", directory)  # fmt: skip
            self._memory[path] = fresh
            return fresh, None
        prune(self._cache_dir)
        try:
            create_entry(self._cache_dir, name)
        except OSError as exc:
            log_once("query.cache.dir", "wideevents query cache disabled: %s", exc)
            self._memory[path] = fresh
            return fresh, None
        return fresh, directory

    def _ensure(
        self,
        path: str,
        st: os.stat_result | None,
        manifest: dict[str, Any],
        directory: Path | None,
        wanted: list[str],
        wanted_t: list[str],
    ) -> None:
        fields = [f for f in wanted if f not in manifest["columns"]]
        time_fields = [f for f in wanted_t if f not in manifest["times"]]
        if not fields and not time_fields and manifest["rows"] is not None:
            return
        base = manifest["next"]
        aliases = {f: f"c{base + n}" for n, f in enumerate(fields)}
        time_aliases = {f: f"t{base + len(fields) + n}" for n, f in enumerate(time_fields)}
        kinds = sample_kinds(path, fields)
        rest_column = f"r{base}"
        part, strict, rejected = self._write(
            path, directory, kinds, time_fields, aliases, time_aliases, rest_column,
            manifest["strict"],
        )
        known = None if directory is None else self._counts(directory / part, aliases, rest_column)
        if known is None:
            counted = "".join(f", count({a}_t), count({rest_sql(rest_column, a)})"
                              for a in aliases.values())
            row = self._con.execute(
                f"SELECT count(*){counted} FROM {self._scan(directory, part)}"
            ).fetchone()
            known = int(row[0]), [int(v) for v in row[1:]]
        rows, counts = known
        if rejected:
            manifest["strict"] = False  # a line the fast reader rejects: skip it next time
        if manifest["skipped"] is None:
            manifest["skipped"] = 0 if strict else self._skipped(path)
        if st is not None:
            after = os.stat(path)
            moved = (after.st_size, after.st_mtime_ns) != (st.st_size, st.st_mtime_ns)
            if moved or manifest["rows"] not in (None, rows):
                raise _Unstable
        manifest["rows"] = rows
        manifest["next"] = base + len(fields) + len(time_fields)
        for n, f in enumerate(fields):
            manifest["columns"][f] = {
                "part": part, "alias": aliases[f], "kind": kinds[f],
                "typed": counts[2 * n], "rest": counts[2 * n + 1], "rest_column": rest_column,
            }  # fmt: skip
        for f in time_fields:
            manifest["times"][f] = {"part": part, "alias": time_aliases[f]}
        if directory is not None:
            self._save(directory, manifest)

    def _write(
        self,
        path: str,
        directory: Path | None,
        kinds: dict[str, str],
        time_fields: list[str],
        aliases: dict[str, str],
        time_aliases: dict[str, str],
        rest_column: str,
        try_strict: bool,
    ) -> tuple[str, bool, bool]:
        """One pass over the file into a new part; the strict fast reader first (unless an
        earlier pass found a line it rejects), then the robust one. Returns the part's name,
        whether the strict reader wrote it (then every line was a JSON object) and whether
        it rejected the file."""
        part = f"p{uuid.uuid4().hex[:12]}" + (".parquet" if directory is not None else "")
        names = list(dict.fromkeys([*kinds, *time_fields]))
        lowered = [n.lower() for n in names]
        # The strict reader's columns are a struct: names must be non-empty and distinct
        # regardless of case (DuckDB's binder folds case there, not in the data).
        strict_ok = (
            try_strict and bool(names) and all(names) and len(set(lowered)) == len(lowered)
        )
        rejected = False
        for strict in (True, False) if strict_ok else (False,):
            select = select_sql(path, names, kinds, aliases, time_aliases, rest_column,
                                  strict=strict)
            try:
                if directory is None:
                    self._con.execute(f"CREATE TEMP TABLE {quote_identifier(part)} AS {select}")
                else:
                    tmp = directory / (part + ".tmp")
                    self._con.execute(
                        f"COPY ({select}) TO {sql_literal(str(tmp))} (FORMAT parquet)"
                    )
                    os.replace(tmp, directory / part)
                return part, strict, rejected
            except Exception as exc:  # duckdb.InvalidInputException: malformed JSON
                if strict:
                    rejected = True
                    continue
                if "maximum_object_size" in str(exc):
                    raise QueryError(
                        f"cannot read {path}: it has a line longer than DuckDB reads (the "
                        f"limit is {MAX_OBJECT // 2**20} MB, enforced past about twice that); "
                        "remove or split that line"
                    ) from None
                raise
        raise AssertionError("unreachable")

    def _counts(
        self, part: Path, aliases: dict[str, str], rest_column: str
    ) -> tuple[int, list[int]] | None:
        """(rows, [typed, rest count per field]) of a Parquet part from its footer, without
        reading its data: each column chunk's value and null counts (the Parquet format's
        ``ColumnMetaData.num_values`` and ``Statistics.null_count``, which DuckDB's writer
        fills). None when a count is missing, or when some line has a rest value (the
        rest column's values then have to be read to count them per field)."""
        name = sql_literal(duckdb_path(str(part)))  # a cache path may hold glob characters
        meta = self._con.execute(
            "SELECT path_in_schema, sum(num_values), sum(stats_null_count), count(*),"
            f" count(stats_null_count) FROM parquet_metadata({name}) GROUP BY path_in_schema"
        ).fetchall()
        rows_row = self._con.execute(
            f"SELECT sum(num_rows) FROM parquet_file_metadata({name})"
        ).fetchone()
        chunks = {name: (values, nulls) for name, values, nulls, n, with_stats in meta
                  if n == with_stats}  # every chunk of the column has its null count
        if rows_row is None or rows_row[0] is None:
            return None
        rows = int(rows_row[0])
        if aliases and chunks.get(rest_column) != (rows, rows):
            return None  # a rest value somewhere (or no footer count): count them by reading
        counts: list[int] = []
        for alias in aliases.values():
            found = chunks.get(alias + "_t")
            if found is None or found[0] != rows:
                return None
            counts += [rows - int(found[1]), 0]
        return rows, counts

    def _skipped(self, path: str) -> int:
        """Lines of ``path`` that are not JSON objects (blank lines are not counted): not
        JSON, a truncated line, invalid UTF-8, a lone surrogate escape, an array or a
        scalar."""
        row = self._con.execute(
            "SELECT count(*) FILTER (WHERE json IS NULL OR json_type(json) <> 'OBJECT') FROM "
            f"read_ndjson_objects({sql_literal(duckdb_path(path))}, ignore_errors = true,"
            f" maximum_object_size = {MAX_OBJECT})"
        ).fetchone()
        return int(row[0])

    def _save(self, directory: Path, manifest: dict[str, Any]) -> None:
        tmp = directory / f"manifest.{uuid.uuid4().hex[:8]}.tmp"
        try:
            tmp.write_text(json.dumps(manifest))
            os.replace(tmp, directory / "manifest.json")
        except OSError as exc:
            log_once("query.cache.save", "wideevents query cache not saved: %s", exc)
            with contextlib.suppress(OSError):
                tmp.unlink()


def _entries(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    return [*manifest["columns"].values(), *manifest["times"].values()]
