"""Headless Chromium driven over the Chrome DevTools Protocol, for the HTML page tests.

Debian's ``chromium`` (``apt-get install chromium``) is started with
``--remote-debugging-port=0``; the port it chose is read from ``DevToolsActivePort`` in
its user-data directory (Chromium's documented way to find an ephemeral debugging port),
and one page target is driven over its websocket (``websocket-client``). Collected while a
page loads: console messages (``Runtime.consoleAPICalled``), uncaught exceptions
(``Runtime.exceptionThrown``), browser log entries (``Log.entryAdded``: CSP violations
and failed loads land here) and every request (``Network.requestWillBeSent``). CDP
reference: https://chromedevtools.github.io/devtools-protocol/ (domains Page, Runtime,
Log, Network). Nothing is downloaded: the browser is the system's.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

INSTALL_HINT = ("headless Chromium not found: install it with `apt-get install chromium` "
                "(Debian) to run the browser tests")


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def require_chromium() -> str:
    path = chromium_path()
    if path is None:
        pytest.skip(INSTALL_HINT)
    try:
        import websocket  # noqa: F401
    except ImportError:
        pytest.skip("websocket-client is missing: pip install -e '.[dev]'")
    return path


@dataclass
class Visit:
    """What one page load showed."""

    console: list[dict[str, Any]] = field(default_factory=list)
    exceptions: list[dict[str, Any]] = field(default_factory=list)
    log: list[dict[str, Any]] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def outside(self) -> list[str]:
        """The requests other than the page's own ``data:`` images (its embedded charts)."""
        return [u for u in self.requests if not u.startswith("data:")]

    def errors(self) -> list[str]:
        out = [f"console.{m.get('type')}: {m.get('args')}" for m in self.console
               if m.get("type") in ("error", "assert", "warning")]
        out += [f"exception: {e.get('exceptionDetails', {}).get('text')}" for e in self.exceptions]
        out += [f"log.{e['entry'].get('level')}: {e['entry'].get('text')}" for e in self.log
                if e["entry"].get("level") in ("error", "warning")]
        return out


class Browser:
    """One headless Chromium with one page; use as a context manager."""

    def __init__(self, width: int = 1200, height: int = 900) -> None:
        self.binary = require_chromium()
        self.width, self.height = width, height
        self.profile = tempfile.mkdtemp(prefix="wideevents-chromium-")
        self.proc: subprocess.Popen[bytes] | None = None
        self.ws: Any = None
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def __enter__(self) -> Browser:
        import websocket

        args = [self.binary, "--headless", "--disable-gpu", "--no-first-run",
                "--no-default-browser-check", "--disable-extensions", "--hide-scrollbars",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-features=Translate,MediaRouter",
                f"--user-data-dir={self.profile}", "--remote-debugging-port=0",
                f"--window-size={self.width},{self.height}", "about:blank"]
        if os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = Path(self.profile, "DevToolsActivePort")
        deadline = time.monotonic() + 60
        while not (port_file.exists() and len(port_file.read_text().splitlines()) >= 2):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"chromium did not start (exit {self.proc.poll()})")
            time.sleep(0.05)
        port = int(port_file.read_text().splitlines()[0])
        ws_url = None
        while ws_url is None and time.monotonic() < deadline:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
                targets = json.load(r)
            ws_url = next((t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page"),
                          None)
            if ws_url is None:
                time.sleep(0.05)
        self.ws = websocket.create_connection(ws_url, timeout=60, suppress_origin=True)
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.ws is not None:
            self.ws.close()
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(20)
        shutil.rmtree(self.profile, ignore_errors=True)

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        """Send a command and return its result; events that arrive meanwhile are kept."""
        self.next_id += 1
        mine = self.next_id
        self.ws.send(json.dumps({"id": mine, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == mine:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if "method" in msg:
                self.events.append(msg)

    def wait_for(self, method: str, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        for i, e in enumerate(self.events):
            if e["method"] == method:
                return self.events.pop(i)
        while time.monotonic() < deadline:
            msg = json.loads(self.ws.recv())
            if "method" in msg:
                if msg["method"] == method:
                    return msg
                self.events.append(msg)
        raise TimeoutError(method)

    def visit(self, path: Path) -> Visit:
        """Load ``path`` (file://), wait for its load event, return what it did."""
        self.events.clear()
        self.send("Page.navigate", url=path.resolve().as_uri())
        self.wait_for("Page.loadEventFired")
        self.evaluate("1")  # a round trip, so messages sent during the load have arrived
        visit = Visit()
        for e in self.events:
            p = e.get("params", {})
            if e["method"] == "Runtime.consoleAPICalled":
                visit.console.append(p)
            elif e["method"] == "Runtime.exceptionThrown":
                visit.exceptions.append(p)
            elif e["method"] == "Log.entryAdded":
                visit.log.append(p)
            elif e["method"] == "Network.requestWillBeSent":
                visit.requests.append(p["request"]["url"])
        return visit

    def evaluate(self, expression: str) -> Any:
        """The JSON value of ``expression`` in the page (DevTools evaluation is not subject
        to the page's Content-Security-Policy, which forbids the page's own scripts)."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"])
        return result["result"].get("value")

    def screenshot(self) -> bytes:
        """A PNG of the whole page."""
        data = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        return base64.b64decode(data["data"])
