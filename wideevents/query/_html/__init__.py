"""HTML pages of query and analysis results: one self-contained, offline file each.

The contract, for every page this package writes:

* **One file, nothing fetched.** Charts are SVG drawn by matplotlib on the writer's
  machine and embedded as ``data:`` images; the page has no script, font, stylesheet or
  image from anywhere else, and its Content-Security-Policy (``default-src 'none'``,
  inline styles and ``data:`` images only) forbids the browser to load anything, even if
  a value in the page tried to.
* **Every string from events is text.** Labels, values, column names, titles and command
  lines go through :func:`wideevents.query._html._escape.text`: control, bidi and
  lone-surrogate characters shown as escapes (as the terminal output does), then HTML
  escaped. Inside charts the same escaped text is drawn as glyph outlines, never parsed
  (matplotlib's mathtext is off).
* **Accessible.** Every chart is a ``<figure>`` with a text title (also the image's
  ``alt``), a caption with the command line that produces its numbers (and the Honeycomb
  link when a team is given), and its numbers as a table in a ``<details>`` section.
  Colours are the Okabe-Ito colour-blind-safe palette; heatmaps use viridis.

Entry points: :func:`query_page` (``wideevents query --html``), :func:`analysis_page`
(``compare``/``drift``/``calibration --html``), :func:`build_report` (``wideevents report``).
matplotlib is needed (the ``report`` extra).
"""

from __future__ import annotations

from wideevents.query._html._analysis import analysis_page, analysis_sections
from wideevents.query._html._page import Section, render_page, write_page
from wideevents.query._html._query import query_page, query_sections
from wideevents.query._html._report import ReportOptions, build_report

__all__ = [
    "ReportOptions",
    "Section",
    "analysis_page",
    "analysis_sections",
    "build_report",
    "query_page",
    "query_sections",
    "render_page",
    "write_page",
]
