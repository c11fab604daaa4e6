"""``wideevents compare``, ``drift`` and ``calibration`` through the real command line: the
``--json`` document is the Python API's ``to_dict()``, text output escapes terminal
controls, ``--link`` prints Honeycomb links, mistakes exit 2 with a message."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.parse
from pathlib import Path
from typing import Any

from wideevents.query import calibration, compare, drift

ROOT = Path(__file__).resolve().parent.parent.parent
UNSAFE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028-\u202e\u2066-\u2069]")


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "HONEYCOMB_"))}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-m", "wideevents._cli", *args],
                          capture_output=True, text=True, timeout=120, env=env)  # fmt: skip


def _events() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i in range(120):
        slow = i % 4 == 0
        p = (i % 10) / 10 + 0.05
        out.append({"name": "predict", "prediction.id": f"p{i}", "duration_ms": 300 + i if slow
                    else 20 + i % 7, "slice.region": "ap\x1b[31m" if slow else "us",
                    "model.version": "v1" if i % 2 else "v2", "feature.x": i % 13,
                    "prediction.p_positive": p, "prediction.label": "y" if p >= 0.5 else "n",
                    "score.bin": int(p * 10), "samplerate": 1 + i % 3})
        if i % 3 == 0:
            out.append({"name": "feedback", "prediction.id": f"p{i}",
                        "feedback.label": "y" if i % 5 < 3 else "n"})
    return out


def _file(tmp_path: Path) -> Path:
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in _events()))
    return path


def test_json_documents_are_the_python_results(tmp_path: Path) -> None:
    """Each command's --json equals its Python function's to_dict() (through JSON)."""
    path = _file(tmp_path)
    runs = [
        (["compare", str(path), "--where", "duration_ms > 250", "--json"],
         compare([path], where="duration_ms > 250")),
        (["drift", str(path), "--baseline", "model.version = v1", "--breakdown",
          "slice.region", "--json"],
         drift([path], baseline="model.version = v1", breakdown="slice.region")),
        (["calibration", str(path), "--breakdown", "model.version", "--bins", "5", "--json"],
         calibration([path], breakdown="model.version", bins=5)),
    ]
    for argv, result in runs:
        proc = _cli(*argv)
        assert 0 == proc.returncode, proc.stderr
        assert json.loads(json.dumps(result.to_dict())) == json.loads(proc.stdout), argv[0]


def test_text_output_escapes_terminal_controls(tmp_path: Path) -> None:
    """A value holding ESC [ 31 m is shown as \\x1b[31m in every command's text."""
    path = _file(tmp_path)
    for argv in (["compare", str(path), "--where", "duration_ms > 250"],
                 ["drift", str(path), "--baseline", "model.version = v1", "--breakdown",
                  "slice.region"],
                 ["calibration", str(path), "--breakdown", "model.version"]):
        proc = _cli(*argv)
        assert 0 == proc.returncode, proc.stderr
        assert UNSAFE.search(proc.stdout) is None, argv[0]
    proc = _cli("compare", str(path), "--where", "duration_ms > 250")
    assert "ap\\x1b[31m" in proc.stdout
    assert "slice.region" == proc.stdout.splitlines()[4].split()[0]


def test_link_prints_the_queries_behind_the_answer(tmp_path: Path) -> None:
    """--link prints query template links (docs/query.md, "In Honeycomb") whose query holds
    the selection's filters; without --team it is a usage error saying what to add."""
    path = _file(tmp_path)
    proc = _cli("compare", str(path), "--where", "duration_ms > 250", "--link", "--team",
                "acme", "--dataset", "mixer")
    assert 0 == proc.returncode, proc.stderr
    links = [line.split(": ", 1)[1] for line in proc.stdout.splitlines()
             if line.startswith("Honeycomb ")]
    assert 1 == len(links)
    query = json.loads(urllib.parse.parse_qs(urllib.parse.urlparse(links[0]).query)["query"][0])
    assert [{"column": "duration_ms", "op": ">", "value": 250}] == query["filters"]
    proc = _cli("calibration", str(path), "--link")
    assert 2 == proc.returncode
    assert "--team" in proc.stderr


def test_mistakes_exit_2_with_a_message(tmp_path: Path) -> None:
    """No --where, both references, or a file that does not exist: exit 2 and a message."""
    path = _file(tmp_path)
    assert 2 == _cli("compare", str(path)).returncode
    proc = _cli("drift", str(path), "--profile", str(tmp_path / "none.json"))
    assert (2, True) == (proc.returncode, "not found" in proc.stderr or "cannot read"
                         in proc.stderr)
    proc = _cli("calibration", str(tmp_path / "missing.jsonl"))
    assert (2, True) == (proc.returncode, "no file matches" in proc.stderr)
