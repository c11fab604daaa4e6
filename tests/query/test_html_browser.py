"""The HTML pages of ``wideevents report`` and ``query --html``, opened in headless Chromium.

Each page must load with no console error and no request leaving ``file://``, draw every
chart at a non-zero size, not be blank, show numbers equal to what numpy computes here
from the event file (never from the code under test), and show hostile event strings as
text. Skipped, saying how to install it, when Chromium is absent.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.query.html_browser import Browser, require_chromium

HOSTILE_UA = ("<script>document.title='pwned'</script>\x1b[31mred\u202e<img src=x onerror=alert(1)>"
              "--><!--]]>")
START = 1_779_998_400  # a whole multiple of 600 s, so the buckets start at START
G = 60  # the report's granularity for 30 minutes of events (the largest with >= 20 buckets)


def _events(path: Path, n: int = 900, seed: int = 3) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    events = []
    for i in range(n):
        version = "v1" if i % 3 else "v2"
        duration = float(rng.lognormal(3.0 if version == "v1" else 3.5, 0.5))
        ts = START + float(rng.uniform(0, 1800))
        ev = {"timestamp": datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z"),
              "name": "predict", "duration_ms": round(duration, 3),
              "model.version": version, "error": bool(rng.random() < (0.05 if version == "v1" else 0.2)),
              "prediction.score": float(rng.beta(2, 5 if version == "v1" else 2)),
              "user_agent.original": HOSTILE_UA if i % 10 == 0 else "curl/8.0"}
        if i % 7 == 0:
            ev["samplerate"] = 4
        events.append(ev)
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return events


def _weights(events: list[dict[str, Any]]) -> np.ndarray:
    return np.array([e.get("samplerate", 1) for e in events])


def _p(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """Honeycomb's weighted percentile as docs/query.md defines it: the smallest value whose
    cumulative weight reaches q% of the total (numpy's inverted_cdf on repeated values)."""
    return float(np.percentile(np.repeat(values, weights), q, method="inverted_cdf"))


@pytest.fixture(scope="module")
def browser() -> Any:
    require_chromium()
    with Browser() as b:
        yield b


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    folder = tmp_path_factory.mktemp("report")
    events = _events(folder / "events.jsonl")
    out = folder / "report.html"
    subprocess.run([sys.executable, "-m", "wideevents._cli", "report",
                    str(folder / "events.jsonl"), "-o", str(out), "--no-cache"],
                   check=True, capture_output=True, timeout=300)
    return out, events


def _table(browser: Browser, kind: str) -> list[list[str]]:
    return browser.evaluate(  # type: ignore[no-any-return]
        f"[...document.querySelectorAll('figure[data-section=\"{kind}\"] tbody tr')]"
        ".map(r => [...r.cells].map(c => c.textContent))")


def test_report_loads_offline_without_console_errors(browser: Browser, report: Any) -> None:
    """The report loads with no console error, no CSP violation and no request but itself."""
    page, _ = report
    visit = browser.visit(page)
    assert [] == visit.errors()
    assert [page.resolve().as_uri()] == visit.outside()


def test_every_chart_renders_with_a_size(browser: Browser, report: Any) -> None:
    """Every chart image decodes and is drawn at a non-zero size."""
    page, _ = report
    browser.visit(page)
    charts = browser.evaluate(
        "[...document.querySelectorAll('img[data-chart]')].map(i => {"
        "const r = i.getBoundingClientRect();"
        "return [i.alt, i.complete, i.naturalWidth, r.width, r.height]})")
    assert len(charts) >= 5
    broken = [c for c in charts if not (c[1] and c[2] > 0 and c[3] > 0 and c[4] > 0)]
    assert [] == broken


def test_screenshot_is_not_blank(browser: Browser, report: Any) -> None:
    """A screenshot of the report has real pixel variance (charts drawn, not a blank page)."""
    from PIL import Image

    page, _ = report
    browser.visit(page)
    pixels = np.asarray(Image.open(io.BytesIO(browser.screenshot())).convert("L"), dtype=float)
    assert pixels.shape[0] > 900
    assert pixels.std() > 10, pixels.std()
    assert (pixels < 128).mean() > 0.005  # some dark ink: axes, labels, bars


def test_percentile_table_equals_numpy(browser: Browser, report: Any) -> None:
    """P50/P90/P99 and COUNT per model.version in the page equal numpy's weighted values."""
    page, events = report
    browser.visit(page)
    rows = {r[0]: [float(x) for x in r[1:]] for r in _table(browser, "percentiles")}
    expected = {}
    for version in ("v1", "v2"):
        mine = [e for e in events if e["model.version"] == version]
        d, w = np.array([e["duration_ms"] for e in mine]), _weights(mine)
        expected[version] = [_p(d, w, 50), _p(d, w, 90), _p(d, w, 99), float(w.sum())]
    assert expected.keys() == rows.keys()
    for version, values in expected.items():
        assert values == pytest.approx(rows[version], rel=1e-5)


def test_volume_over_time_equals_numpy(browser: Browser, report: Any) -> None:
    """The events per minute and error in the volume table equal numpy's weighted counts."""
    page, events = report
    browser.visit(page)
    table = _table(browser, "series")[:1] and browser.evaluate(
        "(() => {const f = document.querySelector('figure[data-section=\"series\"]');"
        "return [[...f.querySelectorAll('thead th')].map(c => c.textContent),"
        "[...f.querySelectorAll('tbody tr')].map(r => [...r.cells].map(c => c.textContent))]})()")
    header, rows = table
    ts = np.array([datetime.fromisoformat(e["timestamp"]).timestamp() for e in events])
    bucket = (np.floor(ts / G) * G).astype(int)
    errors = np.array([e["error"] for e in events])
    w = _weights(events)
    for column, mask in (("true", errors), ("false", ~errors)):
        shown = {r[0]: float(r[header.index(column)]) for r in rows}
        expected = {}
        for b in range(int(bucket.min()), int(bucket.max()) + 1, G):
            when = datetime.fromtimestamp(b, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            expected[when] = float(w[(bucket == b) & mask].sum())
        assert expected == shown


def test_error_rate_equals_numpy(browser: Browser, report: Any) -> None:
    """The error rate per model.version in the page equals numpy's weighted rate."""
    page, events = report
    browser.visit(page)
    rows = {r[0]: (float(r[1]), float(r[2]), float(r[3])) for r in _table(browser, "errors")}
    expected = {}
    for version in ("v1", "v2"):
        mine = [e for e in events if e["model.version"] == version]
        w, err = _weights(mine), np.array([e["error"] for e in mine])
        expected[version] = (float(w[err].sum()), float(w.sum()), w[err].sum() / w.sum())
    assert expected.keys() == rows.keys()
    for version, values in expected.items():
        assert values == pytest.approx(rows[version], rel=1e-5)


def test_hostile_user_agent_renders_as_text(browser: Browser, tmp_path: Path) -> None:
    """Script tags, markup and control characters in a user agent are shown as text: no
    script runs, no image loads, the title stays, the escape is visible."""
    _events(tmp_path / "events.jsonl")
    out = tmp_path / "ua.html"
    subprocess.run([sys.executable, "-m", "wideevents._cli", "report",
                    str(tmp_path / "events.jsonl"), "-o", str(out), "--no-cache",
                    "--breakdown", "user_agent.original", "--title", HOSTILE_UA],
                   check=True, capture_output=True, timeout=300)
    visit = browser.visit(out)
    assert [] == visit.errors()
    assert [out.resolve().as_uri()] == visit.outside()
    state = browser.evaluate(
        "({title: document.title, scripts: document.scripts.length,"
        " imgs: [...document.images].filter(i => !i.hasAttribute('data-chart')).length,"
        " drawn: [...document.images].map(i => i.naturalWidth > 0),"
        " cells: [...document.querySelectorAll('figure[data-section=\"percentiles\"] tbody td:first-child')]"
        ".map(c => c.textContent)})")
    shown = ("<script>document.title='pwned'</script>\\x1b[31mred\\u202e<img src=x onerror=alert(1)>"
             "--><!--]]>")
    assert shown == state["title"]
    assert 0 == state["scripts"]
    assert 0 == state["imgs"]
    assert len(state["drawn"]) >= 5 and all(state["drawn"])  # the labels did not break the SVGs
    assert sorted([shown, "curl/8.0"]) == sorted(state["cells"])


def test_query_html_heatmap_and_series(browser: Browser, tmp_path: Path) -> None:
    """`query --html` with HEATMAP and --granularity draws both, and its series table
    equals numpy's per-bucket counts."""
    events = _events(tmp_path / "events.jsonl")
    out = tmp_path / "q.html"
    subprocess.run([sys.executable, "-m", "wideevents._cli", "query",
                    str(tmp_path / "events.jsonl"), "--calc", "COUNT", "--calc",
                    "HEATMAP(duration_ms)", "--granularity", "600", "--no-cache",
                    "--html", str(out)], check=True, capture_output=True, timeout=300)
    visit = browser.visit(out)
    assert [] == visit.errors()
    kinds = browser.evaluate("[...document.querySelectorAll('figure')].map(f => f.dataset.section)")
    assert ["series", "heatmap", "histogram", "table"] == kinds
    ts = np.array([datetime.fromisoformat(e["timestamp"]).timestamp() for e in events])
    w = _weights(events)
    expected = [[datetime.fromtimestamp(b, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                 float(w[(np.floor(ts / 600) * 600) == b].sum())]
                for b in range(START, START + 1800, 600)]
    assert expected == [[r[0], float(r[1])] for r in _table(browser, "series")]


def test_compare_html_in_chromium(browser: Browser, tmp_path: Path) -> None:
    """`compare --html` loads offline with no error, draws its charts, and the score of
    model.version equals numpy's total variation distance between the weighted shares of
    the errors and of the other events (docs/analysis.md: compare's score)."""
    events = _events(tmp_path / "events.jsonl")
    out = tmp_path / "c.html"
    subprocess.run([sys.executable, "-m", "wideevents._cli", "compare",
                    str(tmp_path / "events.jsonl"), "--where", "error = true", "--no-cache",
                    "--html", str(out)], check=True, capture_output=True, timeout=300)
    visit = browser.visit(out)
    assert [] == visit.errors()
    assert [out.resolve().as_uri()] == visit.outside()
    sizes = browser.evaluate("[...document.querySelectorAll('img[data-chart]')]"
                             ".map(i => i.getBoundingClientRect().height)")
    assert len(sizes) >= 2 and min(sizes) > 0
    scores = {r[0]: float(r[2]) for r in _table(browser, "compare")}
    w, err = _weights(events), np.array([e["error"] for e in events])
    version = np.array([e["model.version"] for e in events])
    share = {side: np.array([w[mask & (version == v)].sum() for v in ("v1", "v2")]) / w[mask].sum()
             for side, mask in (("selection", err), ("baseline", ~err))}
    expected = 0.5 * float(np.abs(share["selection"] - share["baseline"]).sum())
    assert expected == pytest.approx(scores["model.version"], rel=1e-5)


def test_analysis_pages_render_in_chromium(browser: Browser, tmp_path: Path) -> None:
    """drift and calibration pages (from documents of issue 19's --json shapes) load with
    no error and draw the PSI bars and the reliability diagram at a non-zero size."""
    from tests.query.test_html_page import CALIBRATION, DRIFT
    from wideevents.query._html import analysis_page, write_page

    for kind, doc, expected in (("drift", DRIFT, ["drift", "drift-bins"]),
                                ("calibration", CALIBRATION, ["calibration"])):
        out = write_page(tmp_path / f"{kind}.html", analysis_page(kind, doc))
        visit = browser.visit(out)
        assert [] == visit.errors()
        drawn = browser.evaluate(
            "[...document.querySelectorAll('figure')].filter(f => f.querySelector('img'))"
            ".map(f => [f.dataset.section, f.querySelector('img').getBoundingClientRect().height > 0"
            " && f.querySelector('img').naturalWidth > 0])")
        assert [[k, True] for k in expected] == drawn[:len(expected)]


def test_raster_heatmap_renders_offline(browser: Browser, tmp_path: Path) -> None:
    """A heatmap drawn as a raster inside its SVG (over 3,000 cells) loads with no error
    and no request, and is drawn at a non-zero size."""
    _events(tmp_path / "e.jsonl", n=20_000, seed=2)
    out = tmp_path / "q.html"
    subprocess.run([sys.executable, "-m", "wideevents._cli", "query", str(tmp_path / "e.jsonl"),
                    "--calc", "HEATMAP(duration_ms)", "--granularity", "2", "--no-cache",
                    "--html", str(out)], check=True, capture_output=True, timeout=300)
    visit = browser.visit(out)
    assert [] == visit.errors()
    assert [out.resolve().as_uri()] == visit.outside()
    drawn = browser.evaluate("[...document.querySelectorAll('img[data-chart]')].map(i =>"
                             " i.naturalWidth > 0 && i.getBoundingClientRect().height > 0)")
    assert [True, True] == drawn
