"""The pytest plugin (issue 22): the ``wideevents_events`` fixture and its helpers, run
the way a user's project runs them: a real pytest in a subprocess (``pytester``) on test
files written here.

The inner pytest runs with ``PYTEST_DISABLE_PLUGIN_AUTOLOAD=1`` and ``-p
wideevents.pytest_plugin``, so the plugin is loaded exactly once whether or not this
environment's install metadata already has the ``pytest11`` entry point (pytest docs,
"Disabling plugins from autoloading"); the entry point itself is checked separately.
"""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]


def _run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, source: str,
         *args: str) -> pytest.RunResult:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    for name in ("WIDEEVENTS_SINK", "WIDEEVENTS_SAMPLE_RATE", "OTEL_RESOURCE_ATTRIBUTES",
                 "OTEL_SERVICE_NAME"):
        monkeypatch.delenv(name, raising=False)
    pytester.makepyfile(test_app=source)
    return pytester.runpytest_subprocess("-p", "wideevents.pytest_plugin", "-p", "no:cacheprovider",
                                         *args, timeout=120)


def test_events_are_captured_with_their_fields(pytester: pytest.Pytester,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Events are in the fixture as soon as their block ends (no flush), nested and
    normalised, and the helpers find them; each inner test checks one helper."""
    result = _run(pytester, monkeypatch, '''
import numpy as np
import wideevents

def checkout(items):
    with wideevents.event("POST /checkout", **{"cart.items": items}) as ev:
        with wideevents.event("db.query"):
            wideevents.rollup("db.calls", 1)
        ev.add({"score": np.float64(0.5)})

def test_one_and_assert_fields(wideevents_events):
    checkout(3)
    ev = wideevents_events.one("POST /checkout")
    wideevents_events.assert_fields(ev, {"cart.items": 3, "rollup.db.calls": 1, "score": 0.5})
    assert type(ev["score"]) is float
    assert ["db.query", "POST /checkout"] == wideevents_events.names()

def test_find_values_and_len(wideevents_events):
    checkout(1)
    checkout(2)
    assert 4 == len(wideevents_events)
    assert [1, 2] == wideevents_events.values("cart.items")
    assert 1 == len(wideevents_events.find("POST /checkout", {"cart.items": 2}))
    wideevents_events.clear()
    assert [] == list(wideevents_events)

def test_each_test_starts_empty(wideevents_events):
    assert 0 == len(wideevents_events)
''')
    result.assert_outcomes(passed=3)


def test_failing_helpers_say_what_differs(pytester: pytest.Pytester,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """assert_fields lists each wrong or absent field; one() names what was captured."""
    result = _run(pytester, monkeypatch, '''
import wideevents

def test_wrong_field(wideevents_events):
    with wideevents.event("e", status=500):
        pass
    wideevents_events.assert_fields(wideevents_events[0], {"status": 200, "user.id": 7})

def test_missing_event(wideevents_events):
    with wideevents.event("e"):
        pass
    wideevents_events.one("other")
''')
    result.assert_outcomes(failed=2)
    # The helpers hide their own frames (pytest docs, "Writing well-integrated assertion
    # helpers": __tracebackhide__), so the report points at the test's line.
    assert "pytest_plugin.py" not in result.stdout.str()
    result.stdout.fnmatch_lines([
        "*event 'e' differs:*",
        "*status: expected 200, got 500*",
        "*user.id: expected 7, got '<absent>'*",
        "*expected exactly one event named 'other', found 0; captured: ?'e'?",
    ])


def test_configured_fields_and_redaction_carry_over_and_the_pipeline_comes_back(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """A configure() done before the test: its static and dynamic fields and redaction apply
    to captured events, nothing reaches its sinks, and it is current again afterwards."""
    result = _run(pytester, monkeypatch, '''
import pytest
import wideevents
from wideevents._core import runtime
from wideevents.sinks import MemorySink

APP_SINK = MemorySink()

@pytest.fixture(scope="module", autouse=True)
def app():
    pipeline = wideevents.configure(service_name="shop", sinks=[APP_SINK],
                                    static_fields={"team": "payments"},
                                    dynamic_fields={"build": lambda: "b42"},
                                    redact=["card"])
    yield pipeline

def test_captured(app, wideevents_events):
    with wideevents.event("pay", card="4111111111111111", password="hunter2"):
        pass
    ev = wideevents_events.one("pay")
    wideevents_events.assert_fields(ev, {"service.name": "shop", "team": "payments",
                                         "build": "b42"})
    assert "4111111111111111" != ev["card"] and "hunter2" != ev["password"]

def test_afterwards(app):
    assert runtime.current() is app
    assert wideevents.flush(5.0)
    assert [] == APP_SINK.events
''')
    result.assert_outcomes(passed=2)


def test_sampling_is_off_unless_the_test_keeps_the_sampler(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the marker every event is captured; with keep_sampler=True the configured
    sampler decides, so a sampler can be tested (kept events carry samplerate)."""
    result = _run(pytester, monkeypatch, '''
import pytest
import wideevents

def errors_always(event):
    return 1 if event.get("error") else 0

@pytest.fixture(autouse=True)
def app():
    wideevents.configure(service_name="svc", sinks="none", sampler=errors_always)

def emit():
    for i in range(10):
        try:
            with wideevents.event("e", i=i):
                if i % 5 == 0:
                    raise ValueError(i)
        except ValueError:
            pass

def test_everything_by_default(wideevents_events):
    emit()
    assert 10 == len(wideevents_events)

@pytest.mark.wideevents(keep_sampler=True)
def test_sampler_kept(wideevents_events):
    emit()
    assert [0, 5] == wideevents_events.values("i")
    assert [1, 1] == wideevents_events.values("samplerate")
    assert 8 == wideevents_events.stats()["dropped"]["sampled"]
''')
    result.assert_outcomes(passed=2)


def test_the_plugin_is_declared_as_a_pytest11_entry_point() -> None:
    """pyproject.toml registers the module under pytest11 (pytest docs, "Making your plugin
    installable by others"); when this environment's metadata has it, it is the same."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert {"wideevents.pytest_plugin": "wideevents.pytest_plugin"} == (
        project["project"]["entry-points"]["pytest11"])
    installed = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="pytest11")
                 if ep.value.startswith("wideevents")}
    assert installed in ({}, {"wideevents.pytest_plugin": "wideevents.pytest_plugin"})


def test_naming_the_plugin_with_p_beside_the_entry_point_loads_it_once(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """With plugin autoloading on (the default) and the entry point installed, a project
    that also names the plugin (``-p wideevents.pytest_plugin``, as with autoloading off)
    runs: the entry point carries the module's own name, and pytest skips a ``-p`` plugin
    already registered under that name (pytest ``PytestPluginManager.import_plugin``; under
    another name it was "Plugin already registered under a different name", found here)."""
    installed = [ep for ep in importlib.metadata.entry_points(group="pytest11")
                 if ep.value == "wideevents.pytest_plugin"]
    if not installed:
        pytest.skip("the pytest11 entry point is not in this environment's metadata: "
                    "reinstall (pip install -e '.[dev]')")
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    pytester.makepyfile(test_app="""
import wideevents

def test_captured(wideevents_events):
    with wideevents.event("x"):
        pass
    assert ["x"] == wideevents_events.values("name")
""")
    result = pytester.runpytest_subprocess("-p", "wideevents.pytest_plugin",
                                           "-p", "no:cacheprovider", timeout=120)
    result.assert_outcomes(passed=1)


def _readme_testing_snippet() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Testing", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readme_testing_example_passes(pytester: pytest.Pytester,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's "Testing" code, run as written against a small FastAPI app under the
    ASGI middleware (the ``client`` fixture it assumes), passes."""
    pytester.makeconftest('''
import pytest
from fastapi import FastAPI
from starlette.testclient import TestClient

import wideevents
from wideevents.integrations.asgi import WideEventsMiddleware

app = FastAPI()

@app.post("/checkout")
def checkout(body: dict) -> dict:
    wideevents.add({"cart.items": len(body["items"])})
    return {"ok": True}

@pytest.fixture
def client():
    with TestClient(WideEventsMiddleware(app)) as c:
        yield c
''')
    result = _run(pytester, monkeypatch, "import pytest\n\n" + _readme_testing_snippet())
    result.assert_outcomes(passed=2)
