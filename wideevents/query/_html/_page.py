"""The page: a title, sections (chart, caption, numbers), a strict Content-Security-Policy.

A :class:`Section` is one chart (an SVG document, or none for a table-only section), its
title, the command line that produces its numbers, an optional Honeycomb link, and the
numbers as a table. :func:`render_page` writes the HTML; every string goes through
:func:`wideevents.query._html._escape.text`. The CSP allows exactly the page's own
stylesheet (by hash) and ``data:`` images: ``default-src 'none'`` forbids scripts, fonts,
frames, connections and any other origin, so opening the file makes no request.
"""

from __future__ import annotations

import base64
import hashlib
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from wideevents._errors import ConfigurationError
from wideevents._version import __version__
from wideevents.query._html._escape import cell, text

__all__ = ["CSP", "STYLE", "Section", "check_target", "render_page", "write_page"]

STYLE: Final = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;
max-width:1100px;padding:1.5em;color:#1b1b1b;background:#fff}
h1{font-size:1.6em;margin:.2em 0}h2{font-size:1.2em;margin:0 0 .4em}
.meta{color:#555;margin-bottom:1.5em}
figure{margin:0 0 2.2em;padding:1em;border:1px solid #ddd;border-radius:6px}
figure img{display:block;max-width:100%;height:auto}
figcaption{font-size:.9em;color:#333;margin-top:.5em}
code{font:13px/1.4 ui-monospace,Menlo,Consolas,monospace;background:#f4f4f4;padding:.1em .3em;
white-space:pre-wrap;word-break:break-all}
.note{color:#555;font-size:.9em}
details{margin-top:.6em}summary{cursor:pointer;color:#0f5c99}
table{border-collapse:collapse;font-size:.85em;margin-top:.4em}
th,td{border:1px solid #ddd;padding:.2em .5em;text-align:left;vertical-align:top}
td.n{text-align:right;font-variant-numeric:tabular-nums}
nav ul{columns:2;padding-left:1.2em}
""".strip()

_STYLE_HASH: Final = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
CSP: Final = (
    f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; img-src data:; "
    "base-uri 'none'; form-action 'none'"
)
_MAX_ROWS: Final = 5000  # a table longer than this is cut, and says so


@dataclass
class Section:
    """One chart (or table) of a page. ``svg``: the chart, or None for a table only."""

    title: str
    svg: bytes | None = None
    command: str | None = None
    link: str | None = None
    headers: Sequence[str] = ()
    rows: Sequence[Sequence[Any]] = ()
    note: str | None = None
    kind: str = "chart"  # the figure's data-section: what the tests and readers select on


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    head = "".join(f"<th scope=col>{text(h)}</th>" for h in headers)
    body = []
    for row in rows[:_MAX_ROWS]:
        cells = "".join(
            f'<td class=n>{cell(v)}</td>'
            if isinstance(v, (int, float)) and not isinstance(v, bool)
            else f"<td>{cell(v)}</td>"
            for v in row
        )
        body.append(f"<tr>{cells}</tr>")
    cut = ""
    if len(rows) > _MAX_ROWS:
        cut = f"<p class=note>first {_MAX_ROWS} of {len(rows)} rows</p>"
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{cut}"


def _section(index: int, s: Section) -> str:
    parts = [f'<figure id="s{index}" data-section="{text(s.kind)}">',
             f"<h2>{text(s.title)}</h2>"]  # fmt: skip
    if s.svg is not None:
        data = base64.b64encode(s.svg).decode("ascii")
        parts.append(f'<img data-chart src="data:image/svg+xml;base64,{data}" alt="{text(s.title)}">')
    if s.note:
        parts.append(f"<p class=note>{text(s.note)}</p>")
    caption = []
    if s.command:
        caption.append(f"Numbers from: <code>{text(s.command)}</code>")
    if s.link:
        caption.append(f'<a href="{text(s.link)}" rel="noreferrer">Open in Honeycomb</a>')
    if caption:
        parts.append(f"<figcaption>{'<br>'.join(caption)}</figcaption>")
    if s.headers:
        what = "The numbers" if s.svg is not None else "Table"
        parts.append(f"<details{'' if s.svg is not None else ' open'}><summary>{what} "
                     f"({len(s.rows)} rows)</summary>{_table(s.headers, s.rows)}</details>")
    parts.append("</figure>")
    return "\n".join(parts)


def render_page(title: str, sections: Sequence[Section], *, subtitle: str = "") -> str:
    """The whole page as HTML text."""
    made = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    nav = ""
    if len(sections) > 3:
        items = "".join(f'<li><a href="#s{i}">{text(s.title)}</a></li>'
                        for i, s in enumerate(sections))  # fmt: skip
        nav = f"<nav><ul>{items}</ul></nav>"
    body = "\n".join(_section(i, s) for i, s in enumerate(sections))
    if not sections:
        body = "<p>(nothing to show: no events matched)</p>"
    return (
        "<!DOCTYPE html>\n<html lang=en>\n<head>\n<meta charset=utf-8>\n"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name=viewport content="width=device-width, initial-scale=1">\n'
        '<meta name=referrer content=no-referrer>\n'
        f"<title>{text(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
        f"<header><h1>{text(title)}</h1><p class=meta>{text(subtitle)}"
        f"{' · ' if subtitle else ''}written by wideevents {text(__version__)} at {made}; "
        "this file loads nothing from the network</p></header>\n"
        f"{nav}\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )


def check_target(path: str | os.PathLike[str]) -> Path:
    """``path`` if a page can be written there; ConfigurationError saying what to fix when
    its directory is missing or it names a directory (checked before any work)."""
    target = Path(path)
    folder = target.parent
    if not folder.is_dir():
        raise ConfigurationError(f"cannot write {target}: directory {folder} does not exist; "
                                 "create it or choose another path")
    if target.is_dir():
        raise ConfigurationError(f"cannot write {target}: it is a directory; give a file name "
                                 "such as report.html")
    return target


def write_page(path: str | os.PathLike[str], page: str) -> Path:
    """Write ``page`` to ``path`` atomically (a temporary file renamed into place).

    ConfigurationError (saying what to fix) when the directory is missing or not writable.
    """
    target = check_target(path)
    folder = target.parent
    try:
        fd, tmp = tempfile.mkstemp(prefix=".wideevents-", suffix=".html", dir=folder)
    except OSError as exc:
        raise ConfigurationError(f"cannot write {target}: {exc.strerror}; choose another path"
                                 ) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write(page)
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise ConfigurationError(f"cannot write {target}: {exc.strerror}; choose another path"
                                 ) from None
    return target
