"""The HTML pages without a browser: escaping, the Content-Security-Policy, what the page
may reference, writing the file, the report's CLI errors and Honeycomb links, and the
analysis pages built from ``--json`` documents of issue 19's shapes."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import sys
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from wideevents._errors import ConfigurationError
from wideevents.query._html import Section, analysis_page, render_page, write_page
from wideevents.query._html._escape import label, text
from wideevents.query._html._page import CSP, STYLE


class _Collect(HTMLParser):
    """Every start tag with its attributes, and the page's text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(page: str) -> _Collect:
    c = _Collect()
    c.feed(page)
    return c


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wideevents._cli", *args], capture_output=True,
                          text=True, timeout=300, cwd=cwd)


def _events(path: Path, extra: list[dict[str, Any]] = ()) -> Path:  # type: ignore[assignment]
    rows = [{"timestamp": f"2026-01-01T00:{i // 60:02d}:{i % 60:02d}Z", "name": "predict",
             "duration_ms": float(i % 50), "model.version": "v1" if i % 2 else "v2",
             "error": i % 9 == 0} for i in range(300)]
    path.write_text("".join(json.dumps(r) + "\n" for r in [*rows, *extra]))
    return path


def test_text_escapes_markup_and_control_characters() -> None:
    """Markup becomes entities, control and bidi characters visible escapes."""
    assert "&lt;script&gt;x&lt;/script&gt;\\x1b[31m\\u202e&quot;&#x27;&amp;" == text(
        "<script>x</script>\x1b[31m\u202e\"'&")


def test_label_is_cut_and_escaped() -> None:
    """A chart label shows control characters escaped and is cut at 60 characters."""
    assert "a\\x00b" == label("a\x00b")
    assert 60 == len(label("x" * 500))


def test_csp_forbids_everything_but_the_page_style_and_data_images() -> None:
    """The CSP is default-src 'none' with the stylesheet's own sha256 (CSP Level 3,
    "hash-source": base64 of the SHA-256 of the style element's text)."""
    digest = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
    expected = (f"default-src 'none'; style-src 'sha256-{digest}'; img-src data:; "
                "base-uri 'none'; form-action 'none'")
    assert expected == CSP
    page = render_page("t", [Section(title="s", headers=["a"], rows=[[1]])])
    meta = [a for t, a in _parse(page).tags if t == "meta" and a.get("http-equiv")]
    assert [{"http-equiv": "Content-Security-Policy", "content": expected}] == meta
    assert f"<style>{STYLE}</style>" in page


def test_page_references_nothing_outside(tmp_path: Path) -> None:
    """A query page has no script, and every src/href is a data: image or an anchor."""
    events = _events(tmp_path / "e.jsonl")
    out = tmp_path / "q.html"
    done = _cli("query", str(events), "--calc", "COUNT", "--calc", "P99(duration_ms)",
                "--breakdown", "model.version", "--granularity", "600", "--no-cache",
                "--html", str(out))
    assert 0 == done.returncode, done.stderr
    tags = _parse(out.read_text()).tags
    assert [] == [t for t, _ in tags if t in ("script", "iframe", "link", "object", "embed")]
    refs = [a.get("src") or a.get("href") for _, a in tags if "src" in a or "href" in a]
    assert refs and [] == [r for r in refs if not (r or "").startswith(("data:image/svg+xml;", "#"))]


def test_query_html_caption_is_the_command(tmp_path: Path) -> None:
    """The caption of `query --html` is the command (without --html), pasteable."""
    events = _events(tmp_path / "e.jsonl")
    out = tmp_path / "q.html"
    assert 0 == _cli("query", str(events), "--calc", "COUNT", "--breakdown", "model.version",
                     "--where", "duration_ms > 3", "--no-cache", "--html", str(out)).returncode
    page = out.read_text()
    codes = set(re.findall(r"<code>(.*?)</code>", page))
    expected = (f"wideevents query {events} --calc COUNT --breakdown model.version --where "
                "&#x27;duration_ms &gt; 3&#x27;")
    assert {expected} == codes


def test_dollar_signs_in_labels_are_not_mathtext(tmp_path: Path) -> None:
    """A group named like TeX math ($\\frac{$) is drawn as text, not parsed (matplotlib
    rcParams 'text.parse_math' False) and the page is written."""
    events = _events(tmp_path / "e.jsonl", [{"name": "predict", "duration_ms": 1.0,
                                             "model.version": "$\\frac{$"}])
    out = tmp_path / "q.html"
    done = _cli("query", str(events), "--calc", "COUNT", "--breakdown", "model.version",
                "--no-cache", "--html", str(out))
    assert 0 == done.returncode, done.stderr
    assert "$\\frac{$" in "".join(_parse(out.read_text()).text)


def test_write_page_into_missing_directory_says_so(tmp_path: Path) -> None:
    """A page for a directory that does not exist, or onto a directory, is a
    ConfigurationError saying what to fix."""
    with pytest.raises(ConfigurationError, match="does not exist"):
        write_page(tmp_path / "gone" / "r.html", "<p>")
    with pytest.raises(ConfigurationError, match="it is a directory"):
        write_page(tmp_path, "<p>")


def test_query_html_bad_path_fails_before_the_query(tmp_path: Path) -> None:
    """`query --html` into a missing directory exits 2 with the fix, printing no table."""
    events = _events(tmp_path / "e.jsonl")
    done = _cli("query", str(events), "--calc", "COUNT", "--no-cache", "--html",
                str(tmp_path / "gone" / "q.html"))
    assert (2, "") == (done.returncode, done.stdout)
    assert "does not exist" in done.stderr


def test_report_cli_errors_are_exit_2_with_the_fix(tmp_path: Path) -> None:
    """Bad --where, a missing output directory, --team without a dataset, a file that is
    not a profile: exit 2, a message saying what to fix, nothing written."""
    events = _events(tmp_path / "e.jsonl")
    bad_where = _cli("report", str(events), "--where", "duration_ms", cwd=tmp_path)
    missing = _cli("report", str(events), "-o", str(tmp_path / "no" / "r.html"), "--no-cache")
    team = _cli("report", str(events), "--team", "t", "--no-cache", cwd=tmp_path)
    (tmp_path / "p.json").write_text('{"not": "a profile"}')
    profile = _cli("report", str(events), "--profile", str(tmp_path / "p.json"), cwd=tmp_path)
    assert (2, 2, 2, 2) == (bad_where.returncode, missing.returncode, team.returncode,
                            profile.returncode)
    assert "is not a wideevents profile" in profile.stderr
    assert "cannot read filter" in bad_where.stderr
    assert "does not exist" in missing.stderr
    assert "--dataset" in team.stderr
    assert [] == list(tmp_path.glob("*.html"))  # each failed before writing anything


def test_report_links_to_honeycomb_with_team(tmp_path: Path) -> None:
    """With --team and --dataset, query charts link to Honeycomb's UI (query template links)."""
    events = _events(tmp_path / "e.jsonl")
    out = tmp_path / "r.html"
    done = _cli("report", str(events), "-o", str(out), "--team", "acme", "--dataset", "svc",
                "--no-cache")
    assert 0 == done.returncode, done.stderr
    hrefs = [a["href"] for t, a in _parse(out.read_text()).tags
             if t == "a" and not (a.get("href") or "#").startswith("#")]
    assert len(hrefs) >= 3
    assert all((h or "").startswith("https://ui.honeycomb.io/acme/datasets/svc") for h in hrefs)


COMPARE = {"fields": [
    {"column": "region", "score": 0.62, "kind": "categorical",
     "top": [{"value": "ap-south-1", "selection": 0.7, "baseline": 0.08},
             {"value": None, "missing": True, "selection": 0.0, "baseline": 0.1}]},
    {"column": "size", "score": 0.2, "kind": "numeric",
     "top": [{"range": [0.0, 5.5], "selection": 0.5, "baseline": 0.3}]}]}
DRIFT = {"features": [
    {"feature": "feature.ctr", "psi": 3.1, "js": 0.8, "kind": "numeric",
     "bins": [{"range": [0, 1], "reference": 0.5, "target": 0.99, "psi": 2.0},
              {"range": [1, 2], "reference": 0.5, "target": 0.01, "psi": 1.1}]},
    {"feature": "feature.len", "psi": 0.01, "js": 0.02, "kind": "numeric", "bins": []}]}
CALIBRATION = {"groups": [
    {"group": "v2", "kind": "binary", "count": 120, "ece": 0.21, "brier": 0.3,
     "accuracy": 0.6, "bins": [{"bin": 0, "lower": 0.0, "upper": 0.5, "count": 60,
                                "mean_predicted": 0.3, "observed_rate": 0.1},
                               {"bin": 1, "lower": 0.5, "upper": 1.0, "count": 60,
                                "mean_predicted": 0.9, "observed_rate": 0.6}]}]}


def _tables(page: str) -> dict[str, list[list[str]]]:
    """Each section's table rows (cells as text), keyed by the section's kind."""
    out: dict[str, list[list[str]]] = {}
    for kind, body in re.findall(r'data-section="([^"]+)".*?<tbody>(.*?)</tbody>', page, re.S):
        rows = re.findall(r"<tr>(.*?)</tr>", body, re.S)
        out.setdefault(kind, []).extend(
            [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", r)]
            for r in rows)
    return out


@pytest.mark.parametrize(("kind", "doc", "section", "expected"), [
    ("compare", COMPARE, "compare", [["region", "categorical", "0.62"], ["size", "numeric", "0.2"]]),
    ("compare", COMPARE, "compare-detail", [["ap-south-1", "0.7", "0.08"], ["(missing)", "0", "0.1"],
                                            ["[0, 5.5]", "0.5", "0.3"]]),
    ("drift", DRIFT, "drift", [["feature.ctr", "numeric", "3.1", "0.8"],
                               ["feature.len", "numeric", "0.01", "0.02"]]),
    ("drift", DRIFT, "drift-bins", [["[0, 1]", "0.5", "0.99", "2"], ["[1, 2]", "0.5", "0.01", "1.1"]]),
    ("calibration", CALIBRATION, "calibration", [["v2 (binary)", "120", "0.21", "0.3", "0.6"]]),
])
def test_analysis_page_tables_show_the_document(kind: str, doc: dict[str, Any], section: str,
                                                expected: list[list[str]]) -> None:
    """The tables of a compare/drift/calibration page hold the document's numbers."""
    page = analysis_page(kind, doc, command=f"wideevents {kind} e.jsonl")
    assert expected == _tables(page)[section]


def test_analysis_page_lists_links() -> None:
    """--link lines become a table of Honeycomb links on the page."""
    page = analysis_page("drift", DRIFT, links=["feature.ctr: https://ui.honeycomb.io/t/x"])
    assert [["feature.ctr", "https://ui.honeycomb.io/t/x"]] == _tables(page)["links"]


def test_long_tables_are_cut_and_say_so() -> None:
    """A table over 5,000 rows shows the first 5,000 and says how many there were."""
    page = render_page("t", [Section(title="s", headers=["n"], rows=[[i] for i in range(6000)])])
    assert 5000 == page.count("<tr><td")
    assert "first 5000 of 6000 rows" in page


def test_time_charts_narrow_to_where_the_events_are(tmp_path: Path) -> None:
    """With a late tail (feedback hours later), the time charts cover a window holding at
    least 90% of the events in under a tenth of the span; the caption carries that window
    (--start-time/--end-time), the note counts the events left out, and the per-second
    counts equal numpy's over the window."""
    t0 = 1_780_000_200
    times = [t0 + i * 0.25 for i in range(400)] + [t0 + 600 + i * 900 for i in range(20)]
    rows = [{"timestamp": t, "name": "predict", "duration_ms": 1.0 + i % 7}
            for i, t in enumerate(times)]
    events = tmp_path / "e.jsonl"
    events.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "r.html"
    assert 0 == _cli("report", str(events), "-o", str(out), "--no-cache").returncode
    page = out.read_text()
    caption = re.search(r'data-section="series".*?<code>(.*?)</code>', page, re.S)
    assert caption is not None
    start, end, g = (int(re.search(rf"--{k} (\d+)", caption.group(1)).group(1))  # type: ignore[union-attr]
                     for k in ("start-time", "end-time", "granularity"))
    ts = np.array(times)
    inside = (ts >= start) & (ts < end)
    assert inside.mean() >= 0.9 and (end - start) * 10 < ts.max() - ts.min()
    note = re.search(r"(\d+) of them outside it are left out", page)
    assert note is not None and int((~inside).sum()) == int(note.group(1))
    shown = {r[0]: float(r[1]) for r in _tables(page)["series"]}
    expected = {datetime.fromtimestamp(b, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"):
                float(((np.floor(ts / g) * g == b) & inside).sum())
                for b in range(int(np.floor(ts[inside].min() / g) * g),
                               int(ts[inside].max()) + 1, g)}
    assert expected == shown


def test_fields_of_late_events_are_found(tmp_path: Path) -> None:
    """A field only events after the first 1,000 lines have (errors, feedback) still gets
    its section: the report asks the whole files, not a sample of their first lines."""
    rows = [{"timestamp": 1_780_000_000 + i, "name": "predict", "duration_ms": 5.0,
             "model.version": "v1"} for i in range(1100)]
    rows += [{"timestamp": 1_780_001_100 + i, "name": "predict", "duration_ms": 9.0,
              "model.version": "v1", "error": True} for i in range(10)]
    events = tmp_path / "e.jsonl"
    events.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "r.html"
    assert 0 == _cli("report", str(events), "-o", str(out), "--no-cache").returncode
    assert [["v1", "10", "1110", "0.00900901"]] == _tables(out.read_text())["errors"]


def test_dense_heatmap_series_stays_small(tmp_path: Path) -> None:
    """A HEATMAP over 900 time buckets (18,000 cells) is drawn as one embedded raster
    inside its SVG: the page stays under 2 MB while its table keeps every cell."""
    from tests.query.test_html_browser import _events as many

    many(tmp_path / "e.jsonl", n=20_000, seed=2)
    out = tmp_path / "q.html"
    done = _cli("query", str(tmp_path / "e.jsonl"), "--calc", "HEATMAP(duration_ms)",
                "--granularity", "2", "--no-cache", "--html", str(out))
    assert 0 == done.returncode, done.stderr
    assert out.stat().st_size < 2_000_000, out.stat().st_size
    assert "The numbers (18000 rows)" in out.read_text()


def test_feedback_neither_stretches_the_time_charts_nor_enters_latency(tmp_path: Path) -> None:
    """Feedback events (name "feedback", duration_ms about 0, the prediction's
    model.version) arriving hours after their requests: the time window is the requests',
    and the duration percentiles per model.version are the requests' only (before: the
    demo's report showed a 6-hour axis with the requests in one column, and P50 per
    version pulled down by the feedback's zeros)."""
    t0 = 1_780_000_200
    rows = [{"timestamp": t0 + i * 0.5, "name": "GET /search", "duration_ms": 10.0 + i % 50,
             "model.version": "v1"} for i in range(200)]
    rows += [{"timestamp": t0 + 120 + i * 100, "name": "feedback", "duration_ms": 0.01,
              "model.version": "v1"} for i in range(200)]
    events = tmp_path / "e.jsonl"
    events.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "r.html"
    assert 0 == _cli("report", str(events), "-o", str(out), "--no-cache").returncode
    page = out.read_text()
    caption = re.search(r'data-section="series".*?<code>(.*?)</code>', page, re.S)
    assert caption is not None
    start, end = (int(re.search(rf"--{k} (\d+)", caption.group(1)).group(1))  # type: ignore[union-attr]
                  for k in ("start-time", "end-time"))
    assert start <= t0 and t0 + 100 <= end and end - start < 1000
    durations = np.array([r["duration_ms"] for r in rows if r["name"] != "feedback"])
    (row,) = _tables(page)["percentiles"]
    expected = [float(np.percentile(durations, q, method="inverted_cdf")) for q in (50, 90, 99)]
    assert ["v1", *expected] == [row[0], *[float(x) for x in row[1:4]]]
