"""The demo's last step: `report.html` beside `events.jsonl`, said where, opened in Chromium.

The page must be one self-contained file under 5 MB that loads with no console error and
no request leaving it, every chart drawn at a non-zero size; its percentile table must
equal numpy's weighted percentiles computed here from the demo's own events file.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.query.html_browser import Browser, require_chromium

pytestmark = pytest.mark.slow  # the demo runs a server and 300 requests first (~15 s)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    cwd = tmp_path_factory.mktemp("demo-report")
    proc = subprocess.run([sys.executable, "-m", "wideevents._cli", "demo", "--requests", "300"],
                          cwd=cwd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout, cwd


def test_demo_writes_report_beside_events_and_says_where(demo: tuple[str, Path]) -> None:
    """report.html is written next to events.jsonl, under 5 MB, and the demo names it."""
    stdout, cwd = demo
    page = cwd / "report.html"
    assert page.is_file()
    assert f"The charts: {page}" in stdout
    assert page.stat().st_size < 5_000_000


def test_demo_report_in_chromium(demo: tuple[str, Path]) -> None:
    """The demo's report loads offline with no error, draws every chart, and its request
    duration percentiles per model.version equal numpy's (weighted inverted_cdf,
    docs/query.md) over the requests, feedback left out."""
    require_chromium()
    _, cwd = demo
    events = [json.loads(line) for line in (cwd / "events.jsonl").read_text().splitlines()]
    with Browser() as b:
        visit = b.visit(cwd / "report.html")
        assert [] == visit.errors()
        assert [(cwd / "report.html").resolve().as_uri()] == visit.outside()
        sizes: list[Any] = b.evaluate(
            "[...document.querySelectorAll('img[data-chart]')].map(i => {"
            "const r = i.getBoundingClientRect(); return [i.naturalWidth, r.width, r.height]})")
        rows = b.evaluate(
            "[...document.querySelectorAll('figure[data-section=\"percentiles\"] tbody tr')]"
            ".map(r => [...r.cells].map(c => c.textContent))")
    assert len(sizes) >= 5 and all(min(s) > 0 for s in sizes)
    shown = {r[0]: [float(x) for x in r[1:4]] for r in rows}
    expected = {}
    # The requests' latency: feedback events carry the prediction's model.version and a
    # duration of their own (about 0 ms), which is not a request's.
    requests = [e for e in events if "duration_ms" in e and e.get("name") != "feedback"]
    for version in {e["model.version"] for e in requests}:
        mine = [e for e in requests if e.get("model.version") == version]
        values = np.repeat([e["duration_ms"] for e in mine], [e.get("samplerate", 1) for e in mine])
        expected[version] = [float(np.percentile(values, q, method="inverted_cdf"))
                             for q in (50, 90, 99)]
    assert expected.keys() == shown.keys()
    for version, values in expected.items():
        assert values == pytest.approx(shown[version], rel=1e-5)
