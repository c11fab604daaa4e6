"""``wideevents demo``: the search mixer (or, with ``--simple``, a tiny classifier loop)."""

from __future__ import annotations

import argparse
from typing import Any


def add_demo_parser(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="run the instrumented search mixer and query its events",
        description="Start the search-mixer service under a real uvicorn on a loopback port, "
        "drive it with traffic that contains incidents, write one wide event per request to "
        "events.jsonl, then run the local queries that expose each incident.",
    )
    p.add_argument("--requests", type=int, default=1500, help="requests to send (1500)")
    p.add_argument("--seed", type=int, default=7, help="random seed (7)")
    p.add_argument("--out", default="events.jsonl", help="JSON-lines file (events.jsonl)")
    p.add_argument("--sink", action="append", default=[],
                   help="also send to: stdout, stdout:pretty, file:PATH, honeycomb, otlp")
    p.add_argument("--simple", action="store_true",
                   help="a tiny classifier loop instead (no web framework needed)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    if args.requests < 1:
        raise SystemExit("wideevents demo: --requests must be >= 1")
    if args.simple:
        from ._classifier import run_demo

        return run_demo(requests=args.requests, seed=args.seed, out=args.out,
                        extra_sinks=args.sink)
    from .run import run_mixer_demo

    return run_mixer_demo(requests=args.requests, seed=args.seed, out=args.out,
                          extra_sinks=args.sink)
