"""A loopback Honeycomb receiver in its own process that journals accepted request ids.

    python -m tests.support.apps.journal_receiver --key KEY --journal PATH [--port N] [--delay S]

Prints ``PORT <n>`` and serves until killed (the tests SIGKILL it mid-stream and start it
again on the same port). The journal is written before each reply, so it keeps what the
receiver accepted even when the reply never left.
"""

from __future__ import annotations

import argparse
import threading

from tests.support.reliability import JournalingReceiver


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--key", required=True)
    parser.add_argument("--journal", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    receiver = JournalingReceiver(args.journal, args.key, store=False, delay=args.delay)
    receiver.start(args.port)
    print(f"PORT {receiver.port}", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
