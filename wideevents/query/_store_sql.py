"""The SQL of one pass over a JSON-lines file into a typed part of the column store.

The store's format and the reasons for it are in :mod:`wideevents.query._store`; this
module writes the statements: the two readers (DuckDB's ``read_json`` by field name, and
JSON Pointers over ``read_ndjson_objects`` for what that rejects), the split of each
value by kind into a typed column, the one "rest" column per part for values of other
kinds, and parsed timestamps.
"""

from __future__ import annotations

import re
from typing import Final

from wideevents._filter import quote_identifier, sql_literal
from wideevents.query._model import QueryError

__all__ = ["MAX_OBJECT", "duckdb_path", "reader_sql", "rest_sql", "select_sql"]

MAX_OBJECT: Final = 64 * 1024 * 1024  # Honeycomb's event limit is 1 MB; be generous
_GLOB: Final = re.compile(r"[*?\[]")


def _split(raw: str, head: str, kind: str, alias: str) -> str:
    """The typed column of one field; ``head`` is the first byte of its JSON text."""
    text = f"CAST({raw} AS VARCHAR)"
    typed = {
        # TRY_CAST('12.5' AS BIGINT) rounds to 13: only integer literals qualify. Both readers
        # write numbers canonically (yyjson: -0 as 0, 1E2 as 100.0), where an integer
        # literal is exactly the decimal text of its BIGINT value.
        "i": f"CASE WHEN CAST(TRY_CAST({text} AS BIGINT) AS VARCHAR) = {text}"
        f" THEN TRY_CAST({text} AS BIGINT) END",
        # A finite double can only come from a number (strings start with a quote; true,
        # false, lists fail the cast); only NaN, Infinity, 1e400 need the first byte.
        "f": f"CASE WHEN isfinite(TRY_CAST({text} AS DOUBLE)) THEN TRY_CAST({text} AS DOUBLE)"
        f" WHEN {_number(f'ascii({text})')} THEN TRY_CAST({text} AS DOUBLE) END",
        "s": f"CASE WHEN {head} = 34 THEN {raw} ->> '$' END",
        "b": f"CASE WHEN {head} = 116 THEN TRUE WHEN {head} = 102 THEN FALSE END",
        "o": f"CASE WHEN {head} = 91 OR {head} = 123 THEN {raw} END",
    }[kind]
    return f"{typed} AS {alias}_t"


def _number(head: str) -> str:
    """Whether ``head``, the first byte of a JSON text, starts a number (``-`` or a digit)."""
    return f"({head} = 45 OR {head} BETWEEN 48 AND 57)"


def rest_sql(column: str, alias: str) -> str:
    """The value of the field ``alias`` in its part's rest ``column``, as JSON; NULL when
    the line has no rest value for it (a missing key: rest values are never JSON null)."""
    return f"json_extract({column}, '$.{alias}')"


def _time(raw: str, head: str, alias: str) -> str:
    """Unix seconds from an RFC 3339 string or a number."""
    return (
        f"CASE WHEN {head} = 34 THEN epoch_us(TRY_CAST({raw} ->> '$' AS TIMESTAMPTZ)) / 1e6"
        f" WHEN {_number(head)} THEN TRY_CAST(CAST({raw} AS VARCHAR)"
        f" AS DOUBLE) END AS {alias}"
    )


def _json_pointer(field: str) -> str:
    """RFC 6901: the member ``field`` of the root object, whatever its characters."""
    return "/" + field.replace("~", "~0").replace("/", "~1")


def duckdb_path(path: str) -> str:
    """``path`` as DuckDB's file readers take it literally. They expand glob patterns, so a
    file named ``x[1].jsonl`` would read ``x1.jsonl`` and ``*.jsonl`` every file beside it:
    ``*``, ``?`` and ``[`` become one-character classes. QueryError for what DuckDB cannot
    name (a backslash beside glob characters, a name that is not valid UTF-8)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        raise QueryError(
            f"cannot read {path.encode('utf-8', 'backslashreplace').decode()}: DuckDB cannot "
            "open a file name that is not valid UTF-8; rename it"
        ) from None
    if _GLOB.search(path) is None:
        return path
    if "\\" in path:
        raise QueryError(
            f"cannot read {path}: DuckDB cannot open a path with both a backslash and one of "
            "* ? [ in it; rename the file or its directory"
        )
    return _GLOB.sub(lambda m: f"[{m.group()}]", path)


def select_sql(
    path: str,
    names: list[str],
    kinds: dict[str, str],
    aliases: dict[str, str],
    time_aliases: dict[str, str],
    rest_column: str,
    *,
    strict: bool,
) -> str:
    """The SELECT of one pass over ``path`` into a part (``_store``'s module doc): three
    levels, raw JSON and its first byte; typed values; the rest as JSON."""
    raw = {name: f"j{n}" for n, name in enumerate(names)}
    head = {name: f"h{n}" for n, name in enumerate(names)}
    if strict:
        first = [f"{quote_identifier(n)} AS {raw[n]}" for n in names]
    else:  # the robust reader already names its columns j0, j1, ... by position
        first = [raw[n] for n in names]
    # The first byte of the JSON text tells the kinds apart; numbers need none.
    headed = [n for n in names if kinds.get(n) not in ("i", "f") or n in time_aliases]
    first += [f"ascii(CAST({raw[n]} AS VARCHAR)) AS {head[n]}" for n in headed]
    second = [raw[n] for n in names] + [head[n] for n in headed]
    second += [_split(raw[f], head[f], kinds[f], a) for f, a in aliases.items()]
    second += [_time(raw[f], head[f], a) for f, a in time_aliases.items()]
    third = [f"{a}_t" for a in aliases.values()]
    # A value is rest when it is not null (both readers give SQL NULL for a JSON null)
    # and not of the primary kind; the object is built only on the (rare) lines that
    # have one.
    rest = {a: f"{a}_t IS NULL AND {raw[f]} IS NOT NULL" for f, a in aliases.items()}
    if rest:
        members = ", ".join(f"CASE WHEN {cond} THEN '\"{a}\":' || CAST({raw[f]} AS VARCHAR)"
                            f" END" for (f, a), cond in zip(aliases.items(), rest.values(),
                                                            strict=True))
        third.append(f"CASE WHEN {' OR '.join(f'({c})' for c in rest.values())} THEN"
                     f" '{{' || concat_ws(',', {members}) || '}}' END AS {rest_column}")
    third += list(time_aliases.values())
    source = reader_sql(path, names, strict=strict)
    return (
        f"SELECT {', '.join(third) or '1 AS _row'} FROM (SELECT {', '.join(second) or '1 AS _row'}"
        f" FROM (SELECT {', '.join(first) or '1 AS _row'} FROM {source}))"
    )

def reader_sql(path: str, names: list[str], *, strict: bool) -> str:
    """The FROM item giving the JSON text of ``names`` as columns (the fast reader's by
    name, the robust one's ``j0``, ``j1``... by position)."""
    source = sql_literal(duckdb_path(path))
    if strict:
        # records = true: auto-detection reads a single JSON column as the whole line.
        spec = ", ".join(f"{sql_literal(n)}: 'JSON'" for n in names)
        return (
            f"read_json({source}, format = 'newline_delimited', records = true,"
            f" columns = {{{spec}}}, maximum_object_size = {MAX_OBJECT})"
        )
    # Robust: malformed lines (a half-written last line) and lines that are not JSON
    # objects are skipped (and counted by the store); JSON Pointers name every key exactly.
    paths = ", ".join(sql_literal(_json_pointer(n)) for n in names) or sql_literal("")
    # NULLIF: json_extract gives a JSON null as the text null, the fast reader as NULL.
    values = ", ".join(f"NULLIF(v[{n + 1}], 'null') AS j{n}" for n in range(len(names)))
    return (
        f"(SELECT {values or '1 AS _row'} FROM (SELECT json_extract(json, [{paths}]) AS v"
        f" FROM read_ndjson_objects({source}, ignore_errors = true,"
        f" maximum_object_size = {MAX_OBJECT}) WHERE json_type(json) = 'OBJECT'))"
    )
