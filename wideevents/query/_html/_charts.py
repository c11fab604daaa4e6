"""Charts as SVG documents, drawn with matplotlib (no JavaScript, nothing to fetch).

Each function takes plain numbers and already-escaped labels
(:func:`wideevents.query._html._escape.label`) and returns the bytes of one SVG document.
matplotlib runs without pyplot (a ``Figure`` with the SVG canvas: no GUI backend, no
global state), with text drawn as glyph outlines (``svg.fonttype = path``: the page needs
no font), mathtext off (``text.parse_math = False``: a ``$`` in a label is a dollar sign)
and a fixed ``svg.hashsalt`` (the same input gives the same bytes). Colours: the Okabe-Ito
palette (Okabe & Ito, "Color Universal Design", 2008), readable with every common colour
vision deficiency; heatmaps use viridis (perceptually uniform, colour-blind safe).
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Final

__all__ = ["PALETTE", "bars", "histograms", "reliability", "time_heatmap", "time_lines"]

_VECTOR_CELLS: Final = 3000  # more heatmap cells than this are drawn as one embedded image
PALETTE: Final = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9",
                  "#F0E442", "#000000")  # fmt: skip
_RC: Final = {"svg.fonttype": "path", "svg.hashsalt": "wideevents", "text.parse_math": False,
              "font.size": 10, "axes.spines.top": False, "axes.spines.right": False}  # fmt: skip


@contextmanager
def _figure(width: float = 9.0, height: float = 3.6) -> Iterator[Any]:
    import matplotlib
    from cycler import cycler
    from matplotlib.figure import Figure

    rc: Any = dict(_RC, **{"axes.prop_cycle": cycler(color=list(PALETTE))})
    with matplotlib.rc_context(rc):
        fig = Figure(figsize=(width, height), layout="constrained")
        yield fig


def _svg(fig: Any) -> bytes:
    from matplotlib.backends.backend_svg import FigureCanvasSVG

    FigureCanvasSVG(fig)
    buf = io.BytesIO()
    title = fig.axes[0].get_label() if fig.axes else ""
    fig.savefig(buf, format="svg", metadata={"Date": None, "Title": title or None})
    return buf.getvalue()


def _title(ax: Any, title: str) -> None:
    """The page shows each chart's title as a heading: inside the picture it is only the
    SVG's metadata title (written by :func:`_svg`), not drawn a second time."""
    ax.set_label(title)


def _finite(v: Any) -> float:
    """A number to plot; missing and non-finite values are gaps (NaN)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return math.nan
    return float(v)


def time_lines(times: Sequence[datetime], series: Mapping[str, Sequence[Any]], *,
               ylabel: str, title: str) -> bytes:
    """One line per series over time (gaps where a bucket has no value)."""
    with _figure() as fig:
        ax = fig.add_subplot()
        for name, values in series.items():
            ax.plot(list(times), [_finite(v) for v in values], label=name,
                    marker="." if len(times) <= 120 else None)  # dots only where they are seen
        ax.set_ylabel(ylabel)
        _title(ax, title)
        ax.set_ylim(bottom=0)
        if len(series) > 1:
            ax.legend(loc="best", fontsize=8)
        fig.autofmt_xdate()
        return _svg(fig)


def time_heatmap(times: Sequence[datetime], width_s: float,
                 columns: Sequence[Sequence[Mapping[str, Any]]], *, ylabel: str,
                 title: str) -> bytes:
    """A heatmap over time: per time bucket, its HEATMAP buckets as cells from ``lower``
    to ``upper`` coloured by weighted count (each time bucket has its own range, as the
    query engine returns it; nothing is re-binned). The cells are one collection; over
    :data:`_VECTOR_CELLS` of them they are embedded as one raster image inside the SVG,
    so a long series stays a small file (the table keeps the exact numbers)."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.collections import PolyCollection
    from matplotlib.colors import Normalize
    from matplotlib.dates import date2num

    top = max((b["count"] for col in columns for b in col), default=0) or 1
    norm = Normalize(vmin=0, vmax=top)
    cmap = colormaps["viridis"]
    day_width = width_s / 86400.0
    verts, counts = [], []
    for t, col in zip(times, columns, strict=True):
        x = float(date2num(t))  # type: ignore[no-untyped-call]  # matplotlib's stubs lack it
        for b in col:
            if b["count"] > 0:
                lo, hi = float(b["lower"]), float(b["upper"])
                verts.append([(x, lo), (x + day_width, lo), (x + day_width, hi), (x, hi)])
                counts.append(float(b["count"]))
    with _figure(height=4.2) as fig:
        ax = fig.add_subplot()
        ax.set_facecolor("#f2f2f2")
        if verts:
            cells = PolyCollection(verts, facecolors=[cmap(norm(c)) for c in counts],
                                   linewidths=0, rasterized=len(verts) > _VECTOR_CELLS)
            ax.add_collection(cells)
            ax.autoscale_view()
        if times:
            ax.set_xlim(float(date2num(times[0])),  # type: ignore[no-untyped-call]
                        float(date2num(times[-1])) + day_width)  # type: ignore[no-untyped-call]
        ax.xaxis_date()
        ax.set_ylabel(ylabel)
        _title(ax, title)
        fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="events")
        fig.autofmt_xdate()
        return _svg(fig)


def bars(categories: Sequence[str], series: Mapping[str, Sequence[Any]], *, xlabel: str,
         title: str, lines: Sequence[tuple[float, str]] = ()) -> bytes:
    """Horizontal grouped bars: one group per category, one bar per series; ``lines``:
    vertical reference lines (value, label), e.g. drift thresholds."""
    n = max(len(series), 1)
    height = max(2.4, min(14.0, 0.9 + 0.28 * len(categories) * max(1.0, n * 0.7)))
    with _figure(height=height) as fig:
        ax = fig.add_subplot()
        step = 0.8 / n
        for k, (name, values) in enumerate(series.items()):
            ys = [i - 0.4 + step * (k + 0.5) for i in range(len(categories))]
            ax.barh(ys, [_finite(v) for v in values], height=step * 0.92, label=name)
        ax.set_yticks(range(len(categories)), list(categories))
        ax.invert_yaxis()
        for value, name in lines:
            ax.axvline(value, color="#555555", linestyle="--", linewidth=1)
            ax.annotate(name, (value, 1.0), xycoords=("data", "axes fraction"), fontsize=8,
                        ha="left", va="bottom", color="#333333")
        ax.set_xlabel(xlabel)
        _title(ax, title)
        if len(series) > 1:
            ax.legend(loc="best", fontsize=8)
        return _svg(fig)


def histograms(groups: Mapping[str, Sequence[Mapping[str, Any]]], *, xlabel: str,
               title: str) -> bytes:
    """Distributions from HEATMAP buckets, one step line per group, as shares of the group
    (so groups of different sizes compare)."""
    with _figure() as fig:
        ax = fig.add_subplot()
        for name, buckets in groups.items():
            total = sum(b["count"] for b in buckets) or 1
            if not buckets:
                continue
            edges = [b["lower"] for b in buckets] + [buckets[-1]["upper"]]
            shares = [b["count"] / total for b in buckets]
            ax.stairs(shares, edges, label=name, linewidth=1.6)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("share of the group's events")
        _title(ax, title)
        if len(groups) > 1:
            ax.legend(loc="best", fontsize=8)
        return _svg(fig)


def reliability(groups: Mapping[str, Sequence[tuple[float, float]]], *, title: str) -> bytes:
    """A reliability diagram: observed rate against mean predicted probability per bin,
    one line per group, with the diagonal of perfect calibration."""
    with _figure(width=6.0, height=5.0) as fig:
        ax = fig.add_subplot()
        ax.plot([0, 1], [0, 1], color="#777777", linestyle=":", label="perfectly calibrated")
        for name, points in groups.items():
            ax.plot([p for p, _ in points], [o for _, o in points], marker="o", label=name)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("mean predicted probability")
        ax.set_ylabel("observed rate")
        _title(ax, title)
        ax.legend(loc="upper left", fontsize=8)
        return _svg(fig)
