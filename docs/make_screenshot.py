"""Make docs/report.png: the demo's ``report.html``, as headless Chromium draws it.

Runs ``wideevents demo`` (which ends by writing ``report.html`` beside its events with
the same rendering code as ``wideevents report``) in a temporary directory, then has
Debian's Chromium (``apt-get install chromium``) take a screenshot of the top of the page.
Nothing is downloaded. Usage, from the repository root::

    python docs/make_screenshot.py [--out docs/report.png] [--height 2200]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).with_name("report.png")))
    parser.add_argument("--width", type=int, default=1200)
    parser.add_argument("--height", type=int, default=2200)
    parser.add_argument("--requests", type=int, default=1500)
    args = parser.parse_args()
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        print("make_screenshot: install Chromium first: apt-get install chromium", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="wideevents-shot-") as tmp:
        events = Path(tmp, "events.jsonl")
        # a relative --out, so the page's captions read `events.jsonl` as a user's would
        subprocess.run([sys.executable, "-m", "wideevents._cli", "demo", "--out", events.name,
                        "--requests", str(args.requests)], check=True,
                       stdout=subprocess.DEVNULL, cwd=tmp)
        page = Path(tmp, "report.html")
        if not page.is_file():
            print("make_screenshot: the demo wrote no report.html", file=sys.stderr)
            return 1
        shot = Path(tmp, "shot.png")
        command = [browser, "--headless", "--disable-gpu", "--hide-scrollbars",
                   f"--user-data-dir={Path(tmp, 'profile')}",
                   f"--window-size={args.width},{args.height}", f"--screenshot={shot}",
                   page.as_uri()]
        if os.geteuid() == 0:
            command.insert(1, "--no-sandbox")  # Chromium will not run as root with its sandbox
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=120)
        shutil.copyfile(shot, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
