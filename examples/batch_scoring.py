"""Offline batch scoring with one wide event per row, computed vectorised.

    python examples/batch_scoring.py --rows 100000 --out scores.jsonl
    wideevents query scores.jsonl --calc COUNT --calc 'AVG(score.margin)' --breakdown prediction.label

`score_fields_batch` computes the score fields for every row of a 2-D array at once (a few
microseconds per row), so a batch job can afford one event per row, sliceable exactly like
online inference events. Use `--per-batch` for one event per batch of rows instead.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import wideevents
from wideevents.ml import score_fields_batch
from wideevents.sinks import FileSink

LABELS = [f"segment_{i}" for i in range(8)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=20_000)
    p.add_argument("--batch", type=int, default=1_024)
    p.add_argument("--out", default="scores.jsonl")
    p.add_argument("--per-batch", action="store_true", help="one event per batch, not per row")
    args = p.parse_args(argv)

    wideevents.configure(service_name="batch-scoring", sinks=[FileSink(args.out)],
                         queue_size=50_000, enqueue_timeout=1.0)
    rng = np.random.default_rng(1)
    weights = rng.normal(size=(16, len(LABELS)))
    t0 = time.perf_counter()
    with wideevents.event("batch_job", rows=args.rows) as job:
        job.model("segmenter", "2024-11-03")
        for start in range(0, args.rows, args.batch):
            x = rng.normal(size=(min(args.batch, args.rows - start), 16))
            logits = x @ weights
            if args.per_batch:
                with wideevents.event("score_batch", first_row=start, size=len(x)) as ev:
                    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
                    probs /= probs.sum(axis=1, keepdims=True)
                    ev.add({"score.top1.mean": float(probs.max(axis=1).mean())})
                continue
            for i, fields in enumerate(score_fields_batch(logits, labels=LABELS, k=3, logits=True)):
                with wideevents.event("score_row", row=start + i) as ev:
                    ev.add(fields)
    ok = wideevents.shutdown(timeout=30.0)
    elapsed = time.perf_counter() - t0
    print(f"scored {args.rows} rows in {elapsed:.2f} s -> {args.out} (delivered: {ok})")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
