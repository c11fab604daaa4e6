"""Three real sinks for the redaction tests: a MemorySink, a FileSink and a HoneycombSink
posting to the loopback Events API, whose request bodies are kept as decoded bytes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

import wideevents
from tests.support.honeycomb_receiver import HoneycombReceiver
from tests.support.loopback_http import decode_body
from wideevents.sinks import FileSink, HoneycombSink, MemorySink

KEY = "hcaik_01redactiontestkeyDONOTLEAK0123456789abcdefghijklmnopqrstu"


class RawReceiver(HoneycombReceiver):
    """The loopback Events API, also keeping every request body as it was sent (decoded)."""

    def __init__(self) -> None:
        super().__init__(api_key=KEY)
        self.bodies: list[bytes] = []

    def handle_batch(self, dataset: str, encoding: str, raw: bytes) -> tuple[int, Any, str]:
        try:
            body = decode_body(encoding, raw)
        except ValueError:
            body = raw
        with self.lock:
            self.bodies.append(body)
        return super().handle_batch(dataset, encoding, raw)


class Outputs:
    """A pipeline writing to all three sinks; ``bytes_since`` returns what each one wrote."""

    def __init__(self, receiver: RawReceiver, path: Path, **configure: Any) -> None:
        self.receiver = receiver
        self.path = path
        self.memory = MemorySink()
        honeycomb = HoneycombSink(KEY, "redaction", receiver.url, send_interval=0.01,
                                  backoff_initial=0.02, backoff_max=0.2)
        wideevents.configure(service_name="redaction-test", sinks=[
            self.memory, FileSink(str(path)), honeycomb], **configure)
        self._marks = (0, 0, 0)

    def flush(self) -> None:
        assert wideevents.flush(10.0) is True

    def mark(self) -> None:
        """Forget what was written so far (the next ``written`` starts here)."""
        self.flush()
        with self.receiver.lock:
            bodies = len(self.receiver.bodies)
        self._marks = (len(self.memory.lines), self.path.stat().st_size if self.path.exists()
                       else 0, bodies)

    def written(self) -> dict[str, bytes]:
        """Every byte each sink produced since the last ``mark`` (memory: lines and fields)."""
        self.flush()
        mem, file_at, body_at = self._marks
        lines = self.memory.lines[mem:]
        fields = self.memory.events[mem:]
        with open(self.path, "rb") as f:
            f.seek(file_at)
            file_bytes = f.read()
        with self.receiver.lock:
            bodies = self.receiver.bodies[body_at:]
        return {
            "memory": b"\n".join(lines) + orjson.dumps(fields, default=repr),
            "file": file_bytes,
            "honeycomb": b"\n".join(bodies),
        }

    def events(self) -> list[dict[str, Any]]:
        """The events the MemorySink received since the last ``mark``."""
        self.flush()
        return self.memory.events[self._marks[0]:]


@contextmanager
def three_sinks(tmp_path: Path, **configure: Any) -> Iterator[Outputs]:
    """A configured pipeline into memory, a file and the loopback Honeycomb receiver."""
    with RawReceiver() as receiver:
        outputs = Outputs(receiver, tmp_path / "events.jsonl", **configure)
        try:
            yield outputs
        finally:
            wideevents.shutdown(timeout=5.0)
