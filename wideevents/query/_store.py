"""Typed columnar copies of JSON-lines files, so DuckDB queries them fast and exactly.

A JSON field can hold values of several kinds across events (``200`` here, ``"200"``
there); DuckDB's schema detection would merge them (or guess a DATE from a version
string), breaking the filter semantics. So each field a query needs is read as raw JSON
and split, in the same pass, into two columns:

* ``<alias>_t``: the values of the field's *primary* kind, typed (``i`` BIGINT, ``f``
  DOUBLE, ``s`` VARCHAR, ``b`` BOOLEAN, ``o`` JSON for lists/objects). The primary kind
  is the most common one in a sample of the file's first lines.
* ``<alias>_r``: the raw JSON of every other non-null value (usually none at all).

A field with no ``_r`` values in any file takes the fast typed path; otherwise its value
is rebuilt as JSON and compared kind by kind. The split looks at the first byte of each
value's JSON text (``"`` string, ``t``/``f`` boolean, ``-``/digit number, ``[``/``{``
other), which costs far less than parsing it again. The time field also gets a column of
Unix seconds parsed from RFC 3339 text (or taken from a number).

Columns are fetched on demand: a query reads, in one pass over the file, only the fields
no earlier query fetched, and writes them as one Parquet *part*. A file's parts line up
row by row, so they are combined with DuckDB's POSITIONAL JOIN. Parts live in
``<cache_dir>/<hash of path>/`` with a ``manifest.json`` keyed by the file's size and
mtime: when the file changes, its cache starts over. With no cache directory, parts are
temporary tables of the query's own connection.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from wideevents._core.env import env
from wideevents._core.log import log_once
from wideevents._filter import ColumnKind, quote_identifier, sql_literal

__all__ = ["ColumnStore", "FileColumns", "combined_kind", "default_cache_dir"]

_FORMAT: Final = 2
_MAX_OBJECT: Final = 64 * 1024 * 1024  # Honeycomb's event limit is 1 MB; be generous
_SAMPLE_LINES: Final = 1000
_SAMPLE_BYTES: Final = 4 * 1024 * 1024
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
    holds the alias, primary ``kind`` and non-null counts (``typed``, ``rest``)."""

    source: str
    entries: dict[str, dict[str, Any]]
    time_aliases: dict[str, str]

    def expression(self, field: str, kind: ColumnKind, integers: bool) -> str:
        """The field's value in this file as the query-wide ``kind`` (``integers``: the
        number kind holds only BIGINTs), typed the same in every file."""
        entry = self.entries[field]
        typed = quote_identifier(entry["alias"] + "_t")
        rest = quote_identifier(entry["alias"] + "_r")
        primary, has_typed = entry["kind"], entry["typed"] > 0
        if kind == "missing":
            return "NULL"
        if kind == "json":
            as_json = f"CAST({typed} AS JSON)" if primary == "o" else f"to_json({typed})"
            parts = ([as_json] if has_typed else []) + (
                [f"CAST({rest} AS JSON)"] if entry["rest"] else []
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
            for n, line in enumerate(f):
                if n >= _SAMPLE_LINES or f.tell() > _SAMPLE_BYTES:
                    break
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
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


def _split(raw: str, head: str, kind: str, alias: str) -> str:
    """The typed column of one field; ``head`` is the first byte of its JSON text."""
    text = f"CAST({raw} AS VARCHAR)"
    number = f"({head} = 45 OR {head} BETWEEN 48 AND 57)"
    typed = {
        # TRY_CAST('12.5' AS BIGINT) rounds, so only integer literals qualify.
        "i": f"CASE WHEN {number} AND NOT contains({text}, '.') AND NOT contains({text}, 'e')"
        f" AND NOT contains({text}, 'E') THEN TRY_CAST({text} AS BIGINT) END",
        "f": f"CASE WHEN {number} THEN TRY_CAST({text} AS DOUBLE) END",
        "s": f"CASE WHEN {head} = 34 THEN {raw} ->> '$' END",
        "b": f"CASE WHEN {head} = 116 THEN TRUE WHEN {head} = 102 THEN FALSE END",
        "o": f"CASE WHEN {head} = 91 OR {head} = 123 THEN {raw} END",
    }[kind]
    return f"{typed} AS {alias}_t"


def _time(raw: str, head: str, alias: str) -> str:
    return (
        f"CASE WHEN {head} = 34 THEN epoch_us(TRY_CAST({raw} ->> '$' AS TIMESTAMPTZ)) / 1e6"
        f" WHEN {head} = 45 OR {head} BETWEEN 48 AND 57 THEN TRY_CAST(CAST({raw} AS VARCHAR)"
        f" AS DOUBLE) END AS {alias}"
    )


def _json_path(field: str) -> str:
    return "$." + json.dumps(field)


class _Unstable(Exception):
    """The file changed while it was read."""


def _fresh(path: str, st: os.stat_result) -> dict[str, Any]:
    return {
        "format": _FORMAT, "path": path, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
        "rows": None, "next": 0, "columns": {}, "times": {},
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
                _clear(directory)
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
        )

    def _scan(self, directory: Path | None, part: str | None) -> str:
        if part is None:
            return "(SELECT 1 AS _empty WHERE FALSE)"
        if directory is None:
            return quote_identifier(part)
        return f"read_parquet({sql_literal(str(directory / part))})"

    def _manifest(self, path: str, st: os.stat_result) -> tuple[dict[str, Any], Path | None]:
        if self._cache_dir is None:
            current = self._memory.get(path)
            if current is None or [current["size"], current["mtime_ns"]] != [
                st.st_size,
                st.st_mtime_ns,
            ]:
                self._memory[path] = current = _fresh(path, st)
            return current, None
        directory = self._cache_dir / hashlib.sha256(path.encode()).hexdigest()[:32]
        fresh = _fresh(path, st)
        try:
            manifest = json.loads((directory / "manifest.json").read_text())
            same = all(manifest[k] == fresh[k] for k in ("format", "path", "size", "mtime_ns"))
            if same and all((directory / e["part"]).exists() for e in _entries(manifest)):
                return manifest, directory
        except (OSError, ValueError, KeyError, TypeError):
            pass
        # New or changed file, or an unreadable cache: start over for this file.
        if not directory.exists():
            _prune(self._cache_dir)
        _clear(directory)
        try:
            directory.mkdir(parents=True, exist_ok=True)
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
        part = self._write(path, directory, kinds, time_fields, aliases, time_aliases)
        counted = "".join(f", count({a}_t), count({a}_r)" for a in aliases.values())
        row = self._con.execute(
            f"SELECT count(*){counted} FROM {self._scan(directory, part)}"
        ).fetchone()
        rows, counts = int(row[0]), [int(v) for v in row[1:]]
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
                "typed": counts[2 * n], "rest": counts[2 * n + 1],
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
    ) -> str:
        """One pass over the file into a new part; the strict fast reader first, then the
        robust one if DuckDB rejects a line."""
        part = f"p{uuid.uuid4().hex[:12]}" + (".parquet" if directory is not None else "")
        names = list(dict.fromkeys([*kinds, *time_fields]))
        lowered = [n.lower() for n in names]
        strict_ok = bool(names) and len(set(lowered)) == len(lowered)
        for strict in (True, False) if strict_ok else (False,):
            select = self._select(path, names, kinds, aliases, time_aliases, strict=strict)
            try:
                if directory is None:
                    self._con.execute(f"CREATE TEMP TABLE {quote_identifier(part)} AS {select}")
                else:
                    tmp = directory / (part + ".tmp")
                    self._con.execute(
                        f"COPY ({select}) TO {sql_literal(str(tmp))} (FORMAT parquet)"
                    )
                    os.replace(tmp, directory / part)
                return part
            except Exception:  # duckdb.InvalidInputException: malformed JSON
                if not strict:
                    raise
        raise AssertionError("unreachable")

    def _save(self, directory: Path, manifest: dict[str, Any]) -> None:
        tmp = directory / f"manifest.{uuid.uuid4().hex[:8]}.tmp"
        try:
            tmp.write_text(json.dumps(manifest))
            os.replace(tmp, directory / "manifest.json")
        except OSError as exc:
            log_once("query.cache.save", "wideevents query cache not saved: %s", exc)
            with contextlib.suppress(OSError):
                tmp.unlink()

    def _select(
        self,
        path: str,
        names: list[str],
        kinds: dict[str, str],
        aliases: dict[str, str],
        time_aliases: dict[str, str],
        *,
        strict: bool,
    ) -> str:
        """Three levels: raw JSON and its first byte; typed values; the rest as JSON."""
        raw = {name: f"j{n}" for n, name in enumerate(names)}
        head = {name: f"h{n}" for n, name in enumerate(names)}
        if strict:
            first = [f"{quote_identifier(n)} AS {raw[n]}" for n in names]
        else:  # the robust reader already names its columns j0, j1, ... by position
            first = [raw[n] for n in names]
        first += [f"ascii(CAST({raw[n]} AS VARCHAR)) AS {head[n]}" for n in names]
        second = [f"{raw[n]}, {head[n]}" for n in names]
        second += [_split(raw[f], head[f], kinds[f], a) for f, a in aliases.items()]
        second += [_time(raw[f], head[f], a) for f, a in time_aliases.items()]
        third = [f"{a}_t, CASE WHEN {a}_t IS NULL AND {head[f]} <> 110 THEN {raw[f]} END AS {a}_r"
                 for f, a in aliases.items()]  # fmt: skip
        third += list(time_aliases.values())
        source = self._reader(path, names, strict=strict)
        return (
            f"SELECT {', '.join(third) or '1 AS _row'} FROM (SELECT {', '.join(second) or '1 AS _row'}"
            f" FROM (SELECT {', '.join(first) or '1 AS _row'} FROM {source}))"
        )

    def _reader(self, path: str, names: list[str], *, strict: bool) -> str:
        if strict:
            spec = ", ".join(f"{sql_literal(n)}: 'JSON'" for n in names)
            return (
                f"read_json({sql_literal(path)}, format = 'newline_delimited',"
                f" columns = {{{spec}}}, maximum_object_size = {_MAX_OBJECT})"
            )
        # Robust: malformed lines (a half-written last line) and lines that are not JSON
        # objects are skipped; field names that differ only by case stay distinct.
        paths = ", ".join(sql_literal(_json_path(n)) for n in names) or sql_literal("$")
        values = ", ".join(f"v[{n + 1}] AS j{n}" for n in range(len(names)))
        return (
            f"(SELECT {values or '1 AS _row'} FROM (SELECT json_extract(json, [{paths}]) AS v"
            f" FROM read_ndjson_objects({sql_literal(path)}, ignore_errors = true,"
            f" maximum_object_size = {_MAX_OBJECT}) WHERE json_type(json) = 'OBJECT'))"
        )


def _clear(directory: Path, grace: float = 60.0) -> None:
    """Remove a file's cached parts, except very recent ones: another process may be
    writing its first part there right now (its manifest will refer to it)."""
    try:
        children = list(directory.iterdir())
    except OSError:
        return
    now = time.time()
    for child in children:
        with contextlib.suppress(OSError):
            if now - child.stat().st_mtime > grace or child.name == "manifest.json":
                child.unlink()


def _prune(root: Path, stale_after: float = 3600.0) -> None:
    """Drop cached copies of files that no longer exist (temporary files come and go), and
    leftovers without a manifest; runs when a new file enters the cache."""
    try:
        children = [c for c in root.iterdir() if c.is_dir()]
    except OSError:
        return
    now = time.time()
    for child in children:
        gone = False
        try:
            source = json.loads((child / "manifest.json").read_text())["path"]
            gone = not os.path.exists(source)
        except (OSError, ValueError, KeyError, TypeError):
            with contextlib.suppress(OSError):
                gone = now - child.stat().st_mtime > stale_after
        if gone:
            shutil.rmtree(child, ignore_errors=True)


def _entries(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    return [*manifest["columns"].values(), *manifest["times"].values()]
