"""Local query engine (issue 8): ``run_local`` vs hand-written DuckDB SQL vs a Python loop."""

from __future__ import annotations

import datetime as dt
import os
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import orjson

from wideevents.query import Query, run_local

FIRST_TARGET = 1.5  # first query on a new file: at most 1.5x hand-written DuckDB SQL
REPEAT_TARGET = 10.0  # repeated query: at least 10x faster than a pure-Python loop
BUCKETS = 20

ROUTES = ["/v1/predict", "/v1/rank", "/v2/predict", "/v2/rank"]
VERSIONS = ["2024-11-03", "2024-11-10", "2024-12-01"]
LABELS = ["cat", "dog", "bird", "fish"]


def generate(path: Path, n: int, seed: int = 1) -> None:
    """``n`` inference events (~30 fields) as the file sink writes them, 1 in 4 sampled."""
    rng = random.Random(seed)
    t0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC).timestamp()
    with path.open("wb") as f:
        for i in range(n):
            route = rng.choice(ROUTES)
            ts = dt.datetime.fromtimestamp(t0 + i * 0.01, dt.UTC)
            ev = {
                "timestamp": ts.isoformat(timespec="microseconds").replace("+00:00", "Z"),
                "name": "POST " + route, "duration_ms": round(rng.lognormvariate(3, 0.6), 3),
                "service.name": "ranker", "host.name": "web-1", "process.pid": 4242,
                "trace.trace_id": f"{rng.getrandbits(128):032x}",
                "trace.span_id": f"{rng.getrandbits(64):016x}",
                "http.request.method": "POST", "http.route": route, "url.path": route,
                "http.response.status_code": rng.choice([200] * 30 + [500, 404]),
                "request.id": f"{rng.getrandbits(128):032x}",
                "prediction.id": f"{rng.getrandbits(128):032x}", "user.id": rng.randrange(10_000),
                "model.name": "ranker", "model.version": rng.choice(VERSIONS), "model.stage": "prod",
                "score.top1": rng.random(), "score.top1.label": rng.choice(LABELS),
                "score.margin": rng.random() / 2, "score.entropy": rng.random() * 2,
                "prediction.label": rng.choice(LABELS),
                "timing.feature_fetch_ms": rng.random() * 5, "timing.model_ms": rng.random() * 20,
                "feature.age": rng.randrange(18, 90), "error": rng.random() < 0.02,
                "samplerate": rng.choice([1, 1, 1, 4]),
            }  # fmt: skip
            f.write(orjson.dumps(ev) + b"\n")


ML_NUMERIC = [f"f{i:02d}" for i in range(20)]
ML_CATEGORIES = {
    "country": ["de", "fr", "us", "in", "br"],
    "device": ["ios", "android", "web"],
    "plan": ["free", "pro", "enterprise"],
}
ML_TENANTS = ["acme", "globex", "initech", "umbrella"]
ML_REGIONS = ["us-east-1", "eu-west-1", "ap-south-1"]
ML_VERSIONS = ["2024-11-03", "2024-11-20", "2024-12-01"]  # champion, canary, candidate
_DECILES = np.array([-1.2815515655446004, -0.8416212335729142, -0.5244005127080407,
                     -0.2533471031357997, 0.0, 0.2533471031357997, 0.5244005127080407,
                     0.8416212335729142, 1.2815515655446004])  # standard normal deciles
_SCORE_EDGES = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9])  # score.bin's


def ml_profile() -> dict[str, Any]:
    """The training profile of :func:`generate_ml`'s features (a Profile v2 document):
    feature ``f<i>`` is normal(i / 4, 1) in training, so its decile edges are exact."""
    features: list[dict[str, Any]] = []
    for i, name in enumerate(ML_NUMERIC):
        mean = i / 4
        features.append({"name": name, "kind": "numeric", "count": 100_000, "null_rate": 0.0,
                         "min": mean - 5.0, "max": mean + 5.0,
                         "edges": [float(mean + d) for d in _DECILES],
                         "bin_fractions": [0.1] * 10})
    shares = {"country": [0.3, 0.2, 0.2, 0.2, 0.1], "device": [0.5, 0.3, 0.2],
              "plan": [0.6, 0.3, 0.1]}
    for name, values in ML_CATEGORIES.items():
        features.append({"name": name, "kind": "categorical", "count": 100_000,
                         "null_rate": 0.0, "categories": values, "frequencies": shares[name]})
    score = {"kind": "binary", "count": 100_000, "null_rate": 0.0,
             "bin_fractions": [0.1] * 10}
    return {"format": "wideevents.profile", "version": 2, "features": features, "score": score}


def generate_ml(path: Path, n: int, seed: int = 3) -> None:
    """``n`` lines of a binary classifier's events as the file sink writes them: prediction
    events (~60 fields: 20 numeric features with their ``feature_bin.*`` against
    :func:`ml_profile`, 3 categorical features, ``prediction.p_positive``, ``score.bin``,
    three model versions, tenants, regions; 1 in 4 with ``samplerate`` 4) and, for about a
    quarter of them, a ``feedback`` event carrying the prediction's fields and the observed
    label. Incidents: tenant ``globex`` serves ``f03`` shifted by +1.5 and ``f11`` as 0
    (drift); the canary ``2024-11-20`` is over-confident (it reports sigmoid(2z) where the
    truth is sigmoid(z): calibration); android in ap-south-1 is slow (compare)."""
    rng = np.random.default_rng(seed)
    t0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC).timestamp()
    chunk = 10_000
    written = 0
    means = np.arange(len(ML_NUMERIC)) / 4
    cat_p = {"country": [0.3, 0.2, 0.2, 0.2, 0.1], "device": [0.5, 0.3, 0.2],
             "plan": [0.6, 0.3, 0.1]}
    with path.open("wb") as f:
        while written < n:
            x = rng.normal(size=(chunk, len(ML_NUMERIC))) + means
            tenant = rng.choice(len(ML_TENANTS), size=chunk, p=[0.4, 0.3, 0.2, 0.1])
            globex = tenant == 1
            x[globex, 3] += 1.5
            x[globex, 11] = 0.0
            bins = np.stack([np.searchsorted(means[j] + _DECILES, x[:, j], side="right")
                             for j in range(len(ML_NUMERIC))], axis=1)
            region = rng.choice(len(ML_REGIONS), size=chunk, p=[0.4, 0.3, 0.3])
            version = rng.choice(len(ML_VERSIONS), size=chunk, p=[0.6, 0.2, 0.2])
            cats = {k: rng.choice(len(v), size=chunk, p=cat_p[k]) for k, v in ML_CATEGORIES.items()}
            z = 0.8 * (x[:, 0] - means[0]) - 0.6 * (x[:, 5] - means[5]) + rng.normal(0, 0.5, chunk)
            true_p = 1 / (1 + np.exp(-z))
            reported = np.where(version == 1, 1 / (1 + np.exp(-2 * z)), true_p)
            score_bins = np.searchsorted(_SCORE_EDGES, reported, side="right")
            outcome = rng.random(chunk) < true_p
            slow = (cats["device"] == 1) & (region == 2)
            duration = rng.lognormal(3, 0.5, chunk) * np.where(slow, 4.0, 1.0)
            rates = rng.choice([1, 1, 1, 4], size=chunk)
            give_feedback = rng.random(chunk) < 0.25
            ids = rng.integers(0, 2**63, size=(chunk, 2))
            lines: list[bytes] = []
            for r in range(chunk):
                ts = dt.datetime.fromtimestamp(t0 + (written + len(lines)) * 0.01, dt.UTC)
                p = float(reported[r])
                label = "yes" if p >= 0.5 else "no"
                ev: dict[str, Any] = {
                    "timestamp": ts.isoformat(timespec="microseconds").replace("+00:00", "Z"),
                    "name": "POST /v1/score", "duration_ms": round(float(duration[r]), 3),
                    "service.name": "scorer", "host.name": "web-1", "process.pid": 4242,
                    "trace.trace_id": f"{ids[r, 0]:016x}{ids[r, 1]:016x}",
                    "http.route": "/v1/score", "http.response.status_code": 200,
                    "prediction.id": f"{ids[r, 1]:016x}{ids[r, 0]:016x}",
                    "user.id": int(ids[r, 0] % 10_000),
                    "model.name": "scorer", "model.version": ML_VERSIONS[version[r]],
                    "slice.tenant": ML_TENANTS[tenant[r]], "slice.region": ML_REGIONS[region[r]],
                    "prediction.label": label, "prediction.score": p,
                    "prediction.p_positive": p, "score.bin": int(score_bins[r]),
                    "samplerate": int(rates[r]),
                }  # fmt: skip
                for j, name in enumerate(ML_NUMERIC):
                    ev["feature." + name] = round(float(x[r, j]), 4)
                    ev["feature_bin." + name] = int(bins[r, j])
                for k, values in ML_CATEGORIES.items():
                    ev["feature." + k] = values[cats[k][r]]
                lines.append(orjson.dumps(ev))
                if give_feedback[r]:
                    observed = "yes" if outcome[r] else "no"
                    fb = {key: ev[key] for key in (
                        "prediction.id", "model.name", "model.version", "slice.tenant",
                        "slice.region", "prediction.label", "prediction.score",
                        "prediction.p_positive", "score.bin", "samplerate")}
                    fb |= {"timestamp": ev["timestamp"], "name": "feedback",
                           "feedback.label": observed, "feedback.correct": observed == label,
                           "feedback.matched": True}
                    lines.append(orjson.dumps(fb))
            lines = lines[: n - written]
            f.write(b"\n".join(lines) + b"\n")
            written += len(lines)


QUERIES: dict[str, Query] = {
    "COUNT by model.version": Query(calculations=["COUNT"], breakdowns=["model.version"]),
    "P99(duration_ms) by model.version, http.route where status = 200": Query(
        calculations=["P99(duration_ms)"],
        breakdowns=["model.version", "http.route"],
        filters=[{"column": "http.response.status_code", "op": "=", "value": 200}],
    ),
    "HEATMAP(score.top1)": Query(calculations=["HEATMAP(score.top1)"]),
}

_W = "CASE WHEN samplerate > 0 THEN samplerate ELSE 1 END"


def _hand_sql(name: str, path: str) -> str:
    """What a DuckDB user would write by hand for the same weighted answer."""
    src = f"read_json_auto('{path}')"
    if name.startswith("COUNT"):
        return f'SELECT "model.version", sum({_W}) FROM {src} GROUP BY 1'
    if name.startswith("P99"):
        return (
            f'WITH v AS (SELECT "model.version" AS m, "http.route" AS r, duration_ms AS x, {_W} AS w'
            f' FROM {src} WHERE "http.response.status_code" = 200 AND duration_ms IS NOT NULL)'
            " SELECT m, r, min(x) FILTER (WHERE cw / tot >= 0.99) FROM (SELECT m, r, x,"
            " sum(w) OVER (PARTITION BY m, r ORDER BY x ROWS UNBOUNDED PRECEDING) AS cw,"
            " sum(w) OVER (PARTITION BY m, r) AS tot FROM v) GROUP BY 1, 2"
        )
    return (
        f'WITH v AS (SELECT "score.top1" AS x, {_W} AS w FROM {src} WHERE "score.top1" IS NOT NULL),'
        " r AS (SELECT min(x) AS lo, max(x) AS hi FROM v)"
        f" SELECT least(floor((x - lo) / (hi - lo) * {BUCKETS}), {BUCKETS - 1})::INT AS b, sum(w)"
        " FROM v, r GROUP BY 1 ORDER BY 1"
    )


def _python_loop(name: str, path: Path) -> Any:
    """The same answer from a plain loop over the lines (orjson, dicts, sorting)."""
    groups: dict[Any, Any] = {}
    xs: list[float] = []
    ws: list[int] = []
    with path.open("rb") as f:
        for line in f:
            ev = orjson.loads(line)
            rate = ev.get("samplerate")
            w = rate if isinstance(rate, int) and not isinstance(rate, bool) and rate > 0 else 1
            if name.startswith("COUNT"):
                key = ev.get("model.version")
                groups[key] = groups.get(key, 0) + w
            elif name.startswith("P99"):
                x = ev.get("duration_ms")
                if ev.get("http.response.status_code") == 200 and isinstance(x, (int, float)):
                    groups.setdefault((ev.get("model.version"), ev.get("http.route")), []).append(
                        (x, w)
                    )
            else:
                x = ev.get("score.top1")
                if isinstance(x, (int, float)) and not isinstance(x, bool):
                    xs.append(x)
                    ws.append(w)
    if name.startswith("COUNT"):
        return groups
    if name.startswith("P99"):
        out = {}
        for key, pairs in groups.items():
            pairs.sort()
            total, running = sum(w for _, w in pairs), 0
            for x, w in pairs:
                running += w
                if running / total >= 0.99:
                    out[key] = x
                    break
        return out
    lo, hi = min(xs), max(xs)
    counts = [0] * BUCKETS
    for x, w in zip(xs, ws, strict=True):
        counts[min(int((x - lo) / (hi - lo) * BUCKETS), BUCKETS - 1)] += w
    return counts


def _answer(name: str, rows: list[Any]) -> Any:
    """run_local rows in the comparison shape."""
    if name.startswith("COUNT"):
        return {r["model.version"]: r["COUNT"] for r in rows}
    if name.startswith("P99"):
        return {(r["model.version"], r["http.route"]): r["P99(duration_ms)"] for r in rows}
    return [b["count"] for b in rows[0]["HEATMAP(score.top1)"]["buckets"]]


def _hand_answer(name: str, rows: list[tuple[Any, ...]]) -> Any:
    if name.startswith("COUNT"):
        return {str(r[0]): r[1] for r in rows}
    if name.startswith("P99"):
        return {(str(r[0]), r[1]): r[2] for r in rows}
    counts = [0] * BUCKETS
    for b, c in rows:
        counts[b] = c
    return counts


def _close(a: Any, b: Any) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    return bool(np.isclose(float(a), float(b), rtol=1e-9))


def _timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Best time of ``repeat`` runs (the least disturbed by other load) and the result."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def _measure(
    name: str, query: Query, path: Path, tmp: Path, repeat: int, judge: bool
) -> tuple[bool, str]:
    """Time one query four ways; (verdict, markdown table row)."""
    fresh = iter(range(1_000_000))
    warm = tmp / f"cache-warm-{abs(hash(name))}"

    def first() -> Any:
        return run_local(query, path, cache=tmp / f"cache-{name[:5]}-{next(fresh)}")

    def hand() -> Any:
        con = duckdb.connect()
        try:
            return con.execute(_hand_sql(name, str(path))).fetchall()
        finally:
            con.close()

    # Alternate the two contenders so that load from elsewhere hits both alike.
    firsts, hands = [], []
    for _ in range(repeat):
        t, ours = _timed(first, 1)
        firsts.append(t)
        t, theirs = _timed(hand, 1)
        hands.append(t)
    t_first, t_hand = min(firsts), min(hands)
    run_local(query, path, cache=warm)
    t_repeat, _ = _timed(lambda: run_local(query, path, cache=warm), repeat + 2)
    t_loop, loop = _timed(lambda: _python_loop(name, path), 1)
    answer = _answer(name, ours.rows)
    agree = _close(answer, _hand_answer(name, theirs)) and _close(answer, loop)
    ratio, speedup = t_first / t_hand, t_loop / t_repeat
    ok = ratio <= FIRST_TARGET and speedup >= REPEAT_TARGET and agree
    row = (
        f"| {name} | {t_first * 1e3:,.0f} | {t_hand * 1e3:,.0f} | {ratio:.2f}x |"
        f" {t_repeat * 1e3:,.1f} | {t_loop * 1e3:,.0f} | {speedup:,.0f}x |"
        f" {'yes' if agree else 'NO'} | {('PASS' if ok else 'FAIL') if judge else 'n/a'} |"
    )
    return ok, row


def run(quick: bool = False) -> str:
    """Generate the file, time each query four ways, return the markdown section."""
    n = 20_000 if quick else 1_000_000
    repeat = 1 if quick else 5
    rows_md, verdicts = [], []
    with tempfile.TemporaryDirectory(prefix="wideevents-bench-query-") as tmp:
        path = Path(tmp) / "events.jsonl"
        generate(path, n)
        size_mb = path.stat().st_size / 1e6
        path.read_bytes()  # every contender starts with the file in the page cache
        for name, query in QUERIES.items():
            ok, row = _measure(name, query, path, Path(tmp), repeat, judge=not quick)
            verdicts.append(ok)
            rows_md.append(row)
    lines = [
        "## Local query engine (`run_local`)",
        "",
        f"A generated file of {n:,} inference events ({size_mb:,.0f} MB of JSON lines, ~30 fields,"
        " 1 in 4 events with `samplerate` 4). Each query is timed four ways, all with the file"
        " in the page cache: **first** = `run_local` on a file it has never seen (fresh cache"
        " directory: one pass over the JSON writing a typed Parquet copy of the fields it"
        " needs, then the query); **hand SQL** = a hand-written DuckDB query over"
        " `read_json_auto` computing the same weighted answer; **repeated** = `run_local`"
        " again (cached columns); **Python loop** = orjson over the lines computing the same"
        f" answer. Best of {repeat} run(s), first and hand SQL alternating ({repeat + 2} for"
        " repeated; 1 for the loop)."
        f" {os.cpu_count()} CPU cores, DuckDB {duckdb.__version__}.",
        "",
        "| query | first (ms) | hand SQL (ms) | first / hand | repeated (ms) | Python loop (ms)"
        " | loop / repeated | same answer | verdict |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|",
        *rows_md,
        "",
        f"Targets: first query within {FIRST_TARGET}x of the hand-written DuckDB SQL; repeated"
        f" queries at least {REPEAT_TARGET:.0f}x faster than the Python loop; the three answers"
        " agree. Result: "
        + (
            "not judged (quick mode: too small to mean anything)"
            if quick
            else "PASS"
            if all(verdicts)
            else "FAIL"
        )
        + ".",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(run())
