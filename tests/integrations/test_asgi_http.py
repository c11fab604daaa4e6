"""The helpers both middlewares share: traceparent parsing, route walking, small rules."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wideevents._core import hooks
from wideevents.integrations import _http

# An independent reading of W3C Trace Context, section 3.2 (traceparent).
_REFERENCE = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?\Z",
                        re.DOTALL)


def reference_parse(value: str) -> tuple[str, str] | None:
    m = _REFERENCE.match(value.strip(" \t"))
    if m is None:
        return None
    version, trace_id, span_id, _flags, rest = m.groups()
    if version == "ff" or (version == "00" and rest is not None):
        return None
    if set(trace_id) == {"0"} or set(span_id) == {"0"}:
        return None
    return trace_id, span_id


TID, SID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


@pytest.mark.parametrize(("value", "expected"), [
    (f"00-{TID}-{SID}-01", (TID, SID)),
    (f"00-{TID}-{SID}-00", (TID, SID)),
    (f"  00-{TID}-{SID}-01\t", (TID, SID)),
    (f"01-{TID}-{SID}-01-future-stuff", (TID, SID)),
    (f"cc-{TID}-{SID}-01", (TID, SID)),
    (f"00-{TID}-{SID}-01-extra", None),
    (f"01-{TID}-{SID}-01x", None),
    (f"ff-{TID}-{SID}-01", None),
    (f"00-{TID.upper()}-{SID}-01", None),
    (f"00-{'0' * 32}-{SID}-01", None),
    (f"00-{TID}-{'0' * 16}-01", None),
    (f"00-{TID[:-1]}-{SID}-01", None),
    (f"00-{TID}-{SID}-1", None),
    (f"00_{TID}_{SID}_01", None),
    (f"0g-{TID}-{SID}-01", None),
    ("", None),
])
def test_traceparent_cases(value: str, expected: tuple[str, str] | None) -> None:
    """Known valid and invalid traceparent values parse as the specification says."""
    assert expected == _http.parse_traceparent(value)
    assert expected == reference_parse(value)


_piece = st.sampled_from(["00", "01", "ff", "0g", TID, TID.upper(), "0" * 32, SID, "0" * 16,
                          "01", "-", "--", " ", "x", "-extra", TID[:5]])


@settings(max_examples=400, derandomize=True)
@given(st.lists(_piece, min_size=1, max_size=9).map("".join))
def test_traceparent_parser_agrees_with_the_reference(value: str) -> None:
    """On random assemblies of traceparent pieces the parser agrees with a regex reference."""
    assert reference_parse(value) == _http.parse_traceparent(value)


class Match:
    def __init__(self, name: str) -> None:
        self.name = name


class FakeRoute:
    """A duck-typed route: matches a fixed path, optionally only some methods."""

    def __init__(self, path: str, pattern: str, methods: tuple[str, ...] = ()) -> None:
        self.path = path
        self._re = re.compile(pattern + r"\Z")
        self._methods = methods

    def matches(self, scope: dict[str, Any]) -> tuple[Match, dict[str, Any]]:
        if not self._re.match(scope["path"][len(scope.get("root_path", "")):]):
            return Match("NONE"), {}
        if self._methods and scope["method"] not in self._methods:
            return Match("PARTIAL"), {}
        return Match("FULL"), {}


class FakeMount:
    def __init__(self, path: str, routes: list[Any]) -> None:
        self.path = path
        self.routes = routes

    def matches(self, scope: dict[str, Any]) -> tuple[Match, dict[str, Any]]:
        rest = scope["path"][len(scope.get("root_path", "")):]
        m = re.match(r"/t/[^/]+", rest) if self.path == "/t/{tid}" else None
        if m is None:
            return Match("NONE"), {}
        return Match("FULL"), {"root_path": scope.get("root_path", "") + m.group(0)}


class Exploding:
    def matches(self, scope: dict[str, Any]) -> tuple[Match, dict[str, Any]]:
        raise RuntimeError("not a route we understand")


def test_walk_routes_by_duck_typing() -> None:
    """Full matches win over partial ones, mounts are descended, broken routes skipped."""
    routes = [
        Exploding(),
        FakeRoute("/p", r"/p", methods=("POST",)),
        FakeRoute("/a/{x}", r"/a/[^/]+"),
        FakeMount("/t/{tid}", [FakeRoute("/m/{name}", r"/m/[^/]+")]),
        FakeRoute("/p", r"/p"),
    ]
    cases = {"/a/1": "/a/{x}", "/t/acme/m/x": "/t/{tid}/m/{name}", "/t/acme/zz": "/t/{tid}/{path:path}",
             "/p": "/p", "/nothing": None}
    assert cases == {path: _http.walk_routes(routes, {"path": path, "method": "GET"})
                     for path in cases}
    only_partial = [FakeRoute("/only-post", r"/only-post", methods=("POST",))]
    assert "/only-post" == _http.walk_routes(only_partial, {"path": "/only-post", "method": "GET"})


def test_mount_template_rebuilds_parametrised_mounts() -> None:
    """The recorded leaf route gets the templates of the mounts that lead to it."""
    leaf = FakeRoute("/m/{name}", r"/m/[^/]+")
    mount = FakeMount("/t/{tid}", [leaf])
    routes = [FakeRoute("/a/{x}", r"/a/[^/]+"), mount]
    scope = {"path": "/t/acme/m/x", "method": "GET", "root_path": ""}
    assert "/t/{tid}/m/{name}" == _http.mount_template(routes, scope, leaf, "/t/acme")
    assert "/t/{tid}/{path:path}" == _http.mount_template(routes, scope, mount, "/t/acme")
    assert None is _http.mount_template(routes, scope, leaf, "/elsewhere")
    assert None is _http.mount_template(routes, scope, object(), "/t/acme")


@pytest.mark.parametrize(("status", "expected"), [
    (500, {"error": True, "error.type": "500", "error.message": "Internal Server Error"}),
    (504, {"error": True, "error.type": "504", "error.message": "Gateway Timeout"}),
    (599, {"error": True, "error.type": "599", "error.message": "HTTP 599"}),
])
def test_status_error_fields(status: int, expected: dict[str, Any]) -> None:
    """5xx statuses become error fields with the reason phrase (or 'HTTP <code>')."""
    assert expected == _http.status_error_fields(status)


def test_safe_header_values() -> None:
    """Only short printable ASCII strings may be echoed in a response header."""
    got = [_http.safe_header_value(v) for v in ("abc-1", "a\r\nb", "é", "", "x" * 257, 5)]
    assert [b"abc-1", None, None, None, None, None] == got


def test_finish_hooks_are_idempotent_and_contained() -> None:
    """A hook registers once; a failing hook is contained and the others still run."""
    from wideevents._core.event import NON_RECORDING

    calls: list[str] = []

    def failing(ev: Any) -> None:
        raise ValueError("broken hook")

    def recording(ev: Any) -> None:
        calls.append("ran")

    before = hooks.request_finish_hooks
    try:
        for hook in (failing, recording, recording):
            hooks.register_request_finish_hook(hook)
        assert (*before, failing, recording) == hooks.request_finish_hooks
        hooks.run_request_finish_hooks(NON_RECORDING)
        assert ["ran"] == calls
    finally:
        hooks.request_finish_hooks = before
