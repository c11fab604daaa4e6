"""``--html PATH`` of the query commands: the command line of a caption, and the writing.

:func:`query_command` writes back the ``wideevents query`` command that gives the same
numbers (from the parsed arguments, without ``--html``/``--json``/``--link``), so the
caption can be pasted; :func:`write_query_html` and :func:`write_analysis_html` render and
write the page and return its path.
"""

from __future__ import annotations

import argparse
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from wideevents.query._html._analysis import analysis_page
from wideevents.query._html._page import write_page
from wideevents.query._html._query import query_page

__all__ = ["analysis_command", "query_command", "write_analysis_html", "write_query_html"]

_REPEATED = (("calc", "--calc"), ("breakdown", "--breakdown"), ("where", "--where"),
             ("having", "--having"), ("order", "--order"))  # fmt: skip
_SINGLE = (("limit", "--limit"), ("granularity", "--granularity"),
           ("time_range", "--time-range"), ("start_time", "--start-time"),
           ("end_time", "--end-time"), ("spec", "--spec"), ("honeycomb", "--honeycomb"))  # fmt: skip


def query_command(args: argparse.Namespace) -> str:
    """The ``wideevents query`` command of ``args`` (no output options)."""
    parts = ["wideevents", "query", *getattr(args, "files", [])]
    for name, flag in _REPEATED:
        for value in getattr(args, name, None) or []:
            parts += [flag, str(value)]
    if getattr(args, "any", False):
        parts.append("--any")
    for name, flag in _SINGLE:
        value = getattr(args, name, None)
        if value is not None:
            parts += [flag, str(value)]
    return shlex.join(parts)


def analysis_command(kind: str, args: argparse.Namespace, skip: tuple[str, ...] = ()) -> str:
    """``wideevents KIND FILE... --option value ...`` from the parsed arguments: every
    option whose value is not None/False/empty, except output ones (``--html``,
    ``--json``, ``--link``) and ``skip``."""
    parts = ["wideevents", kind, *getattr(args, "files", [])]
    quiet = {"files", "func", "command", "html", "json", "link", *skip}
    for name, value in vars(args).items():
        if name in quiet or value is None or value is False or value == []:
            continue
        flag = "--" + name.replace("_", "-")
        if value is True:
            parts.append(flag)
        elif isinstance(value, list):
            for v in value:
                parts += [flag, str(v)]
        else:
            parts += [flag, str(value)]
    return shlex.join(parts)


def write_query_html(path: str, args: argparse.Namespace, result: Any, query: Any,
                     link: str | None) -> Path:
    """Render ``result`` of ``wideevents query`` as a page and write it to ``path``."""
    return write_page(path, query_page(result, query, command=query_command(args), link=link))


def write_analysis_html(path: str, kind: str, args: argparse.Namespace,
                        doc: Mapping[str, Any], links: Sequence[str] = ()) -> Path:
    """Render the ``--json`` document of ``compare``/``drift``/``calibration`` as a page;
    ``links``: the ``--link`` lines (``title: url``), listed in a last table."""
    return write_page(path, analysis_page(kind, doc, command=analysis_command(kind, args),
                                          links=links))
