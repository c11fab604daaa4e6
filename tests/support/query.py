"""Shared helpers for the query tests: synthetic events and an independent numpy reference."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import math
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

T0 = 1_735_689_600.0  # 2025-01-01T00:00:00Z
MISSING = object()


def rfc3339(seconds: float) -> str:
    """RFC 3339 UTC with microseconds, like the event timestamps wideevents writes."""
    moment = dt.datetime.fromtimestamp(seconds, tz=dt.UTC)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def write_events(path: Path, events: Iterable[dict[str, Any]], *, compress: bool = False) -> Path:
    """Write events as JSON lines (gzip when ``compress``)."""
    text = "".join(json.dumps(e) + "\n" for e in events)
    if compress:
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def make_events(n: int, seed: int = 7, *, sampled: bool = True) -> list[dict[str, Any]]:
    """Inference-like events with missing keys, nulls, mixed types and sample rates."""
    rng = np.random.default_rng(seed)
    events = []
    for i in range(n):
        ev: dict[str, Any] = {
            "timestamp": rfc3339(T0 + i * 0.5),
            "name": "predict",
            "duration_ms": float(np.round(rng.lognormal(3.0, 0.7), 3)),
            "score.top1": float(rng.random()),
            "user.id": int(rng.integers(0, 50)),
            "error": bool(rng.random() < 0.1),
            "http.route": str(rng.choice(["/v1/predict", "/v1/rank", "/v2/predict"])),
        }
        version = rng.choice(["v1", "v2", "v3", "null", "missing"], p=[0.4, 0.3, 0.2, 0.05, 0.05])
        if version == "null":
            ev["model.version"] = None
        elif version != "missing":
            ev["model.version"] = str(version)
        kind = rng.random()
        if kind < 0.05:
            del ev["duration_ms"]
        elif kind < 0.08:
            ev["duration_ms"] = str(ev["duration_ms"])  # a string: not a number
        elif kind < 0.15:
            ev["duration_ms"] = int(ev["duration_ms"])
        if sampled:
            rate = rng.choice([1, 1, 5, 10, 0, -1])
            if rate != -1:
                ev["samplerate"] = int(rate)
        events.append(ev)
    return events


def weight(ev: dict[str, Any]) -> int:
    """An event's weight, restated from docs/sampling.md ("Sample rates"): a number or a
    decimal string is rounded half up and counts at least 1; anything else counts 1."""
    rate = ev.get("samplerate")
    if isinstance(rate, str) and re.fullmatch(r"[ \t\n\r]*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?[ \t\n\r]*",
                                              rate, flags=re.ASCII):
        rate = float(rate)
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate):
        return 1
    return max(1, math.floor(rate + 0.5))


def is_number(value: Any) -> bool:
    """True for int/float values that are not bools."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


PCTS = {
    "P001": 0.1, "P01": 1, "P05": 5, "P10": 10, "P20": 20, "P25": 25, "P50": 50, "P75": 75,
    "P80": 80, "P90": 90, "P95": 95, "P99": 99, "P999": 99.9,
}  # fmt: skip


def reference(
    events: Sequence[dict[str, Any]], op: str, column: str | None, buckets: int = 20
) -> Any:
    """One calculation over events, written directly from docs/query.md, "Semantics" with numpy."""
    w_all = np.array([weight(e) for e in events], dtype=np.float64)
    if op == "COUNT":
        return float(w_all.sum())
    values = [e.get(column or "") for e in events]
    if op == "COUNT_DISTINCT":
        return len({json.dumps(v) for v in values if v is not None})
    keep = [i for i, v in enumerate(values) if is_number(v)]
    if not keep:
        return {"buckets": []} if op == "HEATMAP" else None
    x = np.array([values[i] for i in keep], dtype=np.float64)
    w = w_all[keep]
    if op == "SUM":
        return float((w * x).sum())
    if op == "AVG":
        return float((w * x).sum() / w.sum())
    if op == "MIN":
        return float(x.min())
    if op == "MAX":
        return float(x.max())
    if op in PCTS:
        return float(np.percentile(x, PCTS[op], method="inverted_cdf", weights=w))
    if op == "HEATMAP":
        lo, hi = float(x.min()), float(x.max())
        if lo == hi:
            return {"buckets": [{"lower": lo, "upper": hi, "count": float(w.sum())}]}
        counts, edges = np.histogram(x, bins=buckets, range=(lo, hi), weights=w)
        return {
            "buckets": [
                {"lower": float(edges[k]), "upper": float(edges[k + 1]), "count": float(counts[k])}
                for k in range(buckets)
            ]
        }
    raise AssertionError(op)


def group_by(
    events: Sequence[dict[str, Any]], keys: Sequence[str]
) -> dict[tuple[Any, ...], list[dict[str, Any]]]:
    """Events grouped by breakdown values (missing and null are the same group: None)."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for ev in events:
        groups.setdefault(tuple(ev.get(k) for k in keys), []).append(ev)
    return groups


def normalise(value: Any) -> Any:
    """Numbers as floats (rounded to 9 significant digits) so results compare by value."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return float(f"{float(value):.9g}")
    if isinstance(value, dict):
        return {k: normalise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(v) for v in value]
    return value


def rows_by_key(rows: Sequence[dict[str, Any]], keys: Sequence[str]) -> dict[tuple[Any, ...], Any]:
    """Result rows indexed by their breakdown values, values normalised."""
    return {tuple(r[k] for k in keys): normalise(r) for r in rows}


def where(
    events: Sequence[dict[str, Any]], test: Callable[[dict[str, Any]], bool]
) -> list[dict[str, Any]]:
    """The events passing ``test``."""
    return [e for e in events if test(e)]


# --- a loopback Honeycomb Query Data API ------------------------------------------------

KEY = "hcaik_test_secret_key_123"
ROWS = [{"model.version": "v1", "COUNT": 12, "P99(duration_ms)": 81.5}]
SERIES = [{"time": "2025-01-01T00:00:00Z", "data": {"model.version": "v1", "COUNT": 12}}]


class FakeHoneycomb:
    """The three Query Data API endpoints (docs/query.md, "In Honeycomb"), with scripted failures."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, Any]] = []
        self.polls_until_complete = 2
        self.throttle = 0  # how many 429s (no Retry-After) before accepting a result request
        self.fail_5xx = 0
        self.never_complete = False
        self._polls = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, status: int, body: Any) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _handle(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                fake.requests.append((method, self.path, body))
                if self.headers.get("X-Honeycomb-Team") != KEY:
                    return self._reply(401, {"error": "unknown API key - check your credentials"})
                if fake.fail_5xx:
                    fake.fail_5xx -= 1
                    return self._reply(503, {"error": "try later"})
                parts = self.path.strip("/").split("/")
                if method == "POST" and parts[1] == "queries":
                    return self._reply(200, {"id": "q-1", **body})
                if method == "POST" and parts[1] == "query_results":
                    if fake.throttle:
                        fake.throttle -= 1
                        return self._reply(429, {"error": "rate limited"})
                    return self._reply(201, {"id": "r-1", "complete": False})
                if method == "GET" and parts[1] == "query_results" and parts[3] == "r-1":
                    fake._polls += 1
                    done = not fake.never_complete and fake._polls >= fake.polls_until_complete
                    if not done:
                        return self._reply(200, {"id": "r-1", "complete": False})
                    return self._reply(200, {
                        "id": "r-1", "complete": True,
                        "data": {"results": [{"data": r} for r in ROWS], "series": SERIES},
                        "links": {"query_url": "https://ui.honeycomb.io/t/datasets/d/result/r-1"},
                    })  # fmt: skip
                return self._reply(404, {"error": "not found"})

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
