"""A loopback Honeycomb receiver that keeps up with a tight loop, as a script (issue 16,
item 23: a producer that starves the sender, against a backend that is not the limit).

Two differences from ``tests.support.honeycomb_receiver``, whose per-request costs make
it the bottleneck at about 60,000 events/s on a 2-core machine:

- ``TCP_NODELAY`` (``disable_nagle_algorithm``, socketserver.StreamRequestHandler): the
  reply goes out in two writes (headers, body); with Nagle's algorithm the second waits
  for the client's delayed ACK, about 40 ms per request on Linux.
- No per-event validation: a batch is decoded, parsed and counted, and every event is
  answered ``{"status": 202}`` (the Events API's success reply, docs/backends.md).

    python -m tests.support.fast_honeycomb --key KEY

prints ``PORT <n>`` and serves until stdin closes, storing nothing (counts only).
"""

from __future__ import annotations

import argparse
from typing import Any

import orjson

from .honeycomb_receiver import HoneycombReceiver
from .honeycomb_receiver import _Handler as _BaseHandler
from .loopback_http import decode_body


class _Handler(_BaseHandler):
    disable_nagle_algorithm = True


class FastHoneycombReceiver(HoneycombReceiver):
    handler = _Handler

    def handle_batch(self, dataset: str, encoding: str, raw: bytes) -> tuple[int, Any, str]:
        try:
            batch = orjson.loads(decode_body(encoding, raw))
        except (ValueError, orjson.JSONDecodeError) as exc:
            return 400, {"error": str(exc)}, ""
        if not isinstance(batch, list):
            return 400, {"error": "request body should be a JSON array of events"}, ""
        with self.lock:
            self.counts[dataset] = self.counts.get(dataset, 0) + len(batch)
        return 200, b"[" + b",".join([b'{"status":202}'] * len(batch)) + b"]", ""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--key", default="test-key")
    args = parser.parse_args(argv)
    FastHoneycombReceiver(args.key, store=False).serve_until_stdin_closes()


if __name__ == "__main__":
    main()
