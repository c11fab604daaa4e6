"""StdoutSink never hands terminal controls from event fields to the operator's terminal
(issue 10). ``pretty`` escapes every key and value (wideevents/_core/terminal.py); ``json``
stays JSON, with DEL, C1, bidi controls and U+2028/U+2029 written as ``\\u`` escapes
(RFC 8259, section 7), which orjson leaves raw.

The end-to-end case sends a crafted request through a real uvicorn and the real ASGI
middleware, in a subprocess configured with ``WIDEEVENTS_SINK=stdout:pretty``.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import wideevents
from wideevents.sinks import StdoutSink

ROOT = Path(__file__).resolve().parent.parent.parent
HOSTILE = {
    "osc52": "\x1b]52;c;aGVsbG8=\x07",
    "osc8": "\x1b]8;;http://evil.example/\x1b\\click\x1b]8;;\x1b\\",
    "csi": "\x1b[2J\x1b[H",
    "c1": "\x9b2J",
    "bidi": "\u202eevil\u202c",
    "isolate": "\u2066x\u2069",
    "del": "a\x7fb",
    "sep": "a\u2028b",
}
RAW_ATTACKS = ["\x1b]52", "\x1b]8", "\x1b[2J", "\x9b", "\u202e", "\u2066", "\x7f", "\u2028", "\x07"]
UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028-\u202e\u2066-\u2069]")


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def _emit(stream: io.StringIO, fmt: str) -> str:
    wideevents.configure(service_name="svc", sinks=[StdoutSink(format=fmt, stream=stream)])
    with wideevents.event("GET /\x1b]0;title\x07") as ev:
        ev.add(HOSTILE)
        ev.add({"k\x1b[31m": "v", "nested": ["\x9b", {"x": "\u202e"}]})
    assert wideevents.flush(5.0) is True
    return stream.getvalue()


def test_pretty_off_a_tty_has_no_control_characters() -> None:
    """Off a terminal: not one control, C1 or bidi character; the escapes are visible
    (values with a space, = or quote are quoted, as structlog's renderer does)."""
    text = _emit(io.StringIO(), "pretty")
    (line,) = text.splitlines()
    visible = ["osc52='\\x1b]52;c;aGVsbG8=\\x07'", "c1=\\x9b2J", "bidi=\\u202eevil\\u202c",
               "GET /\\x1b]0;title\\x07", "k\\x1b[31m=v"]  # fmt: skip
    assert (None, []) == (UNSAFE.search(line), [v for v in visible if v not in line])


def test_pretty_on_a_tty_keeps_its_colours_but_no_hostile_sequence() -> None:
    """On a terminal the renderer's own colours stay; none of the fields' sequences do."""
    text = _emit(FakeTTY(), "pretty")
    assert (True, []) == ("\x1b[" in text, [a for a in RAW_ATTACKS if a in text])


def test_json_lines_parse_back_to_the_same_values_with_no_raw_controls() -> None:
    """JSON lines: the hostile values round-trip exactly, and the text has none raw."""
    text = _emit(io.StringIO(), "json")
    (line,) = text.splitlines()
    event = json.loads(line)
    assert (HOSTILE, None) == ({k: event[k] for k in HOSTILE}, UNSAFE.search(line))


def test_json_lines_on_the_real_stdout_are_escaped(tmp_path: Path) -> None:
    """Through sys.stdout's binary buffer in a subprocess: the bytes hold no C1/bidi/DEL."""
    script = tmp_path / "emit.py"
    script.write_text(textwrap.dedent(f"""
        import wideevents
        from wideevents.sinks import StdoutSink
        wideevents.configure(service_name="svc", sinks=[StdoutSink()])
        with wideevents.event("e") as ev:
            ev.add({HOSTILE!r})
        wideevents.shutdown(5.0)
    """))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WIDEEVENTS_", "OTEL_"))}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, timeout=60, env=env)
    raw = proc.stdout
    assert (0, HOSTILE, None) == (
        proc.returncode, {k: json.loads(raw)[k] for k in HOSTILE},
        re.search(rb"[\x00-\x09\x0b-\x1f\x7f]|\xc2[\x80-\x9f]|\xe2\x80[\xa8-\xae]|\xe2\x81[\xa6-\xa9]", raw),
    )


ASGI_SCRIPT = textwrap.dedent("""
    import socket, sys, threading, time
    import uvicorn
    import wideevents
    from wideevents.integrations.asgi import WideEventsMiddleware

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(WideEventsMiddleware(app), log_level="warning", access_log=False,
                            lifespan="on", http="h11")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    request = (b"GET /x%1b]52;c;aGVsbG8h%07/%e2%80%ae HTTP/1.1\\r\\nHost: localhost\\r\\n"
               b"User-Agent: Mozilla\\x9b2J\\xe2\\x80\\xaeevil\\r\\nConnection: close\\r\\n\\r\\n")
    with socket.create_connection(sock.getsockname()) as client:
        client.sendall(request)
        reply = b""
        while chunk := client.recv(65536):
            reply += chunk
    print("STATUS", reply.split(b" ")[1].decode(), file=sys.stderr)
    server.should_exit = True
    thread.join(10)
    wideevents.shutdown(5.0)
""")


def test_a_crafted_request_through_asgi_middleware_to_stdout_pretty(tmp_path: Path) -> None:
    """A User-Agent with a C1 CSI and a bidi override, a path with an OSC 52 (percent-
    encoded, decoded by the server): stdout:pretty shows them escaped, never raw. No space,
    = or quote in them: structlog's renderer would repr() such a value (escaping it)."""
    pytest.importorskip("uvicorn")
    script = tmp_path / "server.py"
    script.write_text(ASGI_SCRIPT)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WIDEEVENTS_", "OTEL_"))}
    env |= {"PYTHONPATH": str(ROOT), "WIDEEVENTS_SINK": "stdout:pretty"}
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, timeout=60, env=env)
    out = proc.stdout.decode("utf-8")
    (line,) = [line for line in out.splitlines() if "url.path" in line]
    # h11 hands the header to the app as bytes; the middleware decodes it as latin-1, so the
    # UTF-8 of U+202E (e2 80 ae) arrives as "â", C1 0x80, "®".
    visible = ["url.path=/x\\x1b]52;c;aGVsbG8h\\x07/\\u202e",
               "user_agent.original=Mozilla\\x9b2Jâ\\x80®evil"]
    assert ("STATUS 200", None, []) == (
        proc.stderr.decode().strip().splitlines()[-1], UNSAFE.search(out.replace("\n", "")),
        [v for v in visible if v not in line],
    ), (out, proc.stderr.decode())
