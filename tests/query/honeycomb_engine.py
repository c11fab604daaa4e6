"""A loopback Honeycomb Query Data API that computes its answers (not a scripted reply).

It answers from events as Honeycomb stored them: what the loopback Events API receiver
(``tests.support.honeycomb_receiver``) accepted, each ``{"data", "samplerate"}``. The
arithmetic is written here from Honeycomb's documentation, independently of wideevents:

* weighting (docs, "Sampling" / the Events API's ``samplerate``): an event stands for
  ``samplerate`` events; COUNT is the sum of sample rates, SUM the sum of rate x value,
  AVG that sum over the rates of the events that have a number;
* rows are the groups of the breakdowns, ordered by the query's orders (default: the
  first calculation, descending), ties by the breakdowns ascending;
* the number of rows: the created query's ``limit``, else 100 ("Create a Query": limit
  "default: 100"); with ``disable_series`` the result request's ``limit`` overrides it
  ("Create a Query Result": "The limit will override the default limit").

* filters (query-level and per calculation, "Query Specification": ``filters`` on a
  calculation apply to it alone) with ``=``, ``!=``, ``exists``, ``does-not-exist``, all
  combined with AND (``filter_combination`` AND only); ``=`` compares by value and type (a boolean is not a number); a
  calculation's ``name`` names its column in the rows;
* ``time_range`` is accepted and ignores no event: the stored events are all recent.

Supported: COUNT, SUM, AVG, MIN, MAX; breakdowns; filters as above; orders; limit;
time_range. Anything else (granularity, other filter ops) is answered 400, so a test
cannot silently rely on it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

KEY = "hcaik_engine_test_key_0123456789"
SPEC_DEFAULT_LIMIT = 100
_SUPPORTED = {"calculations", "breakdowns", "orders", "limit", "filters", "filter_combination",
              "time_range"}
_FILTER_OPS = {"=", "!=", "exists", "does-not-exist"}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if _number(a) and _number(b):
        return bool(a == b)
    return type(a) is type(b) and a == b


def _passes(data: dict[str, Any], filters: list[dict[str, Any]]) -> bool:
    for f in filters:
        value, op = data.get(f["column"]), f["op"]
        equal = value is not None and "value" in f and _same(value, f["value"])
        ok = {"=": equal, "!=": not equal, "exists": value is not None,
              "does-not-exist": value is None}[op]
        if not ok:
            return False
    return True


def unsupported(spec: dict[str, Any]) -> list[str]:
    """What of ``spec`` this engine does not compute (answered 400)."""
    out = sorted(set(spec) - _SUPPORTED)
    if spec.get("filter_combination", "AND") != "AND":
        out.append("filter_combination OR")
    filters = list(spec.get("filters") or [])
    for calc in spec.get("calculations") or []:
        filters += calc.get("filters") or []
    out += sorted({f"filter op {f.get('op')!r}" for f in filters if f.get("op") not in _FILTER_OPS})
    return out


def compute(spec: dict[str, Any], limit: int, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Honeycomb's result rows for ``spec`` over stored ``events`` (module docstring)."""
    calcs = spec.get("calculations") or [{"op": "COUNT"}]
    breakdowns = spec.get("breakdowns") or []
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for event in (e for e in events if _passes(e["data"], spec.get("filters") or [])):
        key = tuple(event["data"].get(b) for b in breakdowns)
        groups.setdefault(key, []).append(event)
    rows = []
    for key, members in groups.items():
        row: dict[str, Any] = dict(zip(breakdowns, key, strict=True))
        for calc in calcs:
            op, column = calc["op"], calc.get("column")
            mine = [e for e in members if _passes(e["data"], calc.get("filters") or [])]
            rates = [e["samplerate"] for e in mine]
            pairs = [(e["samplerate"], e["data"].get(column)) for e in mine
                     if _number(e["data"].get(column))]  # fmt: skip
            name = calc.get("name") or (op if column is None else f"{op}({column})")
            if op == "COUNT":
                row[name] = sum(rates)
            elif op == "SUM":
                row[name] = sum(r * x for r, x in pairs) if pairs else None
            elif op == "AVG":
                row[name] = sum(r * x for r, x in pairs) / sum(r for r, _ in pairs) if pairs else None
            elif op in ("MIN", "MAX"):
                xs = [x for _, x in pairs]
                row[name] = (min if op == "MIN" else max)(xs) if xs else None
            else:
                raise ValueError(f"the engine does not compute {op}")
        rows.append(row)
    first = calcs[0]
    terms = [(o.get("column") if "op" not in o else
              (o["op"] if o.get("column") is None else f"{o['op']}({o['column']})"),
              o.get("order") == "descending") for o in spec.get("orders") or []]  # fmt: skip
    if not terms:
        terms = [(first.get("name") or (first["op"] if first.get("column") is None
                  else f"{first['op']}({first['column']})"), True)]  # fmt: skip
    terms += [(b, False) for b in breakdowns]
    for name, descending in reversed(terms):
        rows.sort(key=lambda r: (r[name] is None, r[name] if not descending or r[name] is None
                                 else -r[name]))  # fmt: skip
    return rows[:limit]


class ComputingHoneycomb:
    """The three Query Data API endpoints over ``events()`` (module docstring)."""

    def __init__(self, events: Callable[[], list[dict[str, Any]]]) -> None:
        self.requests: list[tuple[str, str, Any]] = []
        self.queries: dict[str, dict[str, Any]] = {}
        self.results: dict[str, list[dict[str, Any]]] = {}
        engine = self

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
                engine.requests.append((method, self.path, body))
                if self.headers.get("X-Honeycomb-Team") != KEY:
                    return self._reply(401, {"error": "unknown API key - check your credentials"})
                parts = self.path.strip("/").split("/")
                if method == "POST" and parts[1] == "queries":
                    refused = unsupported(body)
                    if refused:
                        return self._reply(400, {"error": f"engine: unsupported {refused}"})
                    qid = f"q-{len(engine.queries)}"
                    engine.queries[qid] = body
                    return self._reply(200, {"id": qid, **body})
                if method == "POST" and parts[1] == "query_results":
                    spec = engine.queries[body["query_id"]]
                    limit = spec.get("limit", SPEC_DEFAULT_LIMIT)
                    if body.get("disable_series") and "limit" in body:
                        limit = body["limit"]
                    rid = f"r-{len(engine.results)}"
                    engine.results[rid] = compute(spec, limit, events())
                    return self._reply(201, {"id": rid, "complete": False})
                if method == "GET" and parts[1] == "query_results" and parts[3] in engine.results:
                    rows = engine.results[parts[3]]
                    return self._reply(200, {"id": parts[3], "complete": True,
                                             "data": {"results": [{"data": r} for r in rows]}})  # fmt: skip
                return self._reply(404, {"error": "not found"})

            def do_GET(self) -> None:  # noqa: N802 - stdlib naming
                self._handle("GET")

            def do_POST(self) -> None:  # noqa: N802 - stdlib naming
                self._handle("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
