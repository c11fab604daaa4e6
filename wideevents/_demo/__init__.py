"""``wideevents demo``: a small model-serving loop that shows what wide events look like."""

from __future__ import annotations

import argparse
from typing import Any


def add_demo_parser(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="simulate a model-serving loop and write one event per inference",
        description="Simulate a small numpy classifier serving requests (two model versions, "
        "varied latencies, some failures), write one wide event per inference to a JSON-lines "
        "file, print a few of them and a summary.",
    )
    p.add_argument("--requests", type=int, default=400, help="inferences to simulate (400)")
    p.add_argument("--seed", type=int, default=7, help="random seed (7)")
    p.add_argument("--out", default="events.jsonl", help="JSON-lines file to write (events.jsonl)")
    p.add_argument("--sink", action="append", default=[],
                   help="also send to this sink: stdout, stdout:pretty, file:PATH, honeycomb, otlp")
    p.add_argument("--show", type=int, default=3, help="events to print in full (3)")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ._classifier import run_demo

    return run_demo(requests=args.requests, seed=args.seed, out=args.out, extra_sinks=args.sink,
                    show=args.show)
