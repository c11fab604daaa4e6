"""PrometheusSink under prometheus_client's multiprocess mode (PROMETHEUS_MULTIPROC_DIR),
each case in a fresh process: the client chooses its value class when first imported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.reliability import child_env

ROOT = Path(__file__).resolve().parent.parent.parent


def _scenario(name: str, directory: Path) -> tuple[dict[str, Any], str]:
    out = subprocess.run(
        [sys.executable, "-m", "tests.sinks.prometheus_mp_scenario", name],
        env=child_env(PROMETHEUS_MULTIPROC_DIR=str(directory)), cwd=ROOT,
        capture_output=True, text=True, timeout=120)
    assert 0 == out.returncode, out.stderr
    return json.loads(out.stdout.splitlines()[-1]), out.stderr


def test_missing_multiprocess_directory_is_a_configuration_error(tmp_path: Path) -> None:
    """PROMETHEUS_MULTIPROC_DIR naming no directory fails when the sink is built, saying
    what to do (the client itself would only fail at the first labelled increment)."""
    result, _ = _scenario("missing_dir", tmp_path / "not-created")
    assert "ConfigurationError" == result["error"]
    assert "PROMETHEUS_MULTIPROC_DIR" in result["message"]
    assert "create" in result["message"]


def test_directory_removed_while_running_is_counted_not_raised(tmp_path: Path) -> None:
    """The directory removed before the first series: each event is dropped for this sink
    as export_error, flush() says False once, the failure is logged once, nothing raises."""
    (tmp_path / "mp").mkdir()
    result, stderr = _scenario("removed_dir", tmp_path / "mp")
    assert ({"export_error": 3}, 0, 0) == (result["stats"]["dropped"], result["stats"]["sent"],
                                            result["stats"]["series"])
    assert (False, True) == (result["flush"], result["flush_again"])
    assert 1 == stderr.count("PrometheusSink could not measure an event (FileNotFoundError)")


def test_fork_while_the_worker_is_inside_an_increment_does_not_hang_the_child(
        tmp_path: Path) -> None:
    """os.fork() while another thread exports back to back and is stopped inside the
    client's increment (its lock held): the fork waits for the next event boundary, so the
    child's own increments do not hang on a lock copied held; the parent goes on."""
    result, stderr = _scenario("fork_mid_increment", tmp_path)
    assert 0 == result["child_exit"], stderr
    assert result["fork_waited_s"] < 2.0  # it got the lock: it did not give up waiting
    assert result["parent_sent"] > 1
