"""Redaction at any depth, through the real pipeline into a MemorySink, a FileSink and a
HoneycombSink on the loopback Events API: the secret never appears in any output byte and
the non-secret siblings survive (docs/reliability.md, "Secrets and redaction")."""

from __future__ import annotations

import collections
import dataclasses
import enum
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import wideevents
from tests.core.redaction_support import Outputs, three_sinks

SECRET = "Zq7SECRETvalue9x"
R = "[REDACTED]"


class Creds(NamedTuple):
    user: str
    password: str


@dataclasses.dataclass
class Login:
    user: str
    password: str


class Field(enum.Enum):
    PASSWORD = "password"


def _nest(depth: int, leaf: dict[str, Any]) -> dict[str, Any]:
    """``{"l1": {"l2": ... leaf}}`` with ``depth`` levels above the leaf."""
    out: dict[str, Any] = leaf
    for level in range(depth, 0, -1):
        out = {f"l{level}": out}
    return out


def _bytes_text(raw: bytes) -> str:
    """docs/schema.md, "Values": bytes are their length and a SHA-256 prefix, never content."""
    return f"<{len(raw)} bytes sha256:{hashlib.sha256(raw).hexdigest()[:16]}>"


def _deep_lists(depth: int) -> Any:
    value: Any = [{"password": SECRET}]
    for _ in range(depth):
        value = [value]
    return value


def _cycle() -> dict[str, Any]:
    loop: dict[str, Any] = {"password": SECRET, "n": 1}
    loop["self"] = loop
    return loop


# (fields added to the event, what the MemorySink's event must hold for some of its keys)
CASES: dict[str, tuple[dict[Any, Any], dict[str, Any]]] = {
    "list-of-mappings": (
        {"users": [{"password": SECRET, "name": "ann"}]},
        {"users": ['{"password":"[REDACTED]","name":"ann"}']}),
    "list-of-header-pairs": (
        {"headers": [("Authorization", "Bearer " + SECRET), ("Accept", "text/plain")]},
        {"headers": ['["Authorization","[REDACTED]"]', '["Accept","text/plain"]']}),
    "asgi-bytes-header-pairs": (
        {"headers": [(b"authorization", b"Bearer " + SECRET.encode()), (b"accept", b"*/*")]},
        {"headers": [f'["{_bytes_text(b"authorization")}","[REDACTED]"]',
                     f'["{_bytes_text(b"accept")}","{_bytes_text(b"*/*")}"]']}),
    "tuple-of-pairs": (
        {"creds": (("password", SECRET), ("user", "ann"))},
        {"creds": ['["password","[REDACTED]"]', '["user","ann"]']}),
    "set-of-pairs": (
        {"creds": {("password", SECRET)}},
        {"creds": ['["password","[REDACTED]"]']}),
    "frozenset-in-list": (
        {"creds": [frozenset({("api_key", SECRET)})]},
        {"creds": ['[["api_key","[REDACTED]"]]']}),
    "deque-of-lists": (
        {"creds": collections.deque([["X-Api-Key", SECRET], ["x", "y"]])},
        {"creds": ['["X-Api-Key","[REDACTED]"]', '["x","y"]']}),
    "secret-key-over-a-mapping": (
        {"password": {"value": SECRET}, "db": {"host": "h1", "password": SECRET}},
        {"password": R, "db.host": "h1", "db.password": R}),
    "secret-key-over-a-list": (
        {"cookies": [SECRET, SECRET], "api_key": (SECRET,)},
        {"cookies": R, "api_key": R}),
    "six-levels": (
        _nest(5, {"l6": {"password": SECRET, "k": 1}}),
        {"l1.l2.l3.l4.l5.l6": '{"password":"[REDACTED]","k":1}'}),
    "ten-levels": (
        _nest(9, {"password": SECRET, "k": 1}),
        {"l1.l2.l3.l4.l5.l6": '{"l7":{"l8":{"l9":{"password":"[REDACTED]","k":1}}}}'}),
    "secret-mapping-below-six-levels": (
        _nest(7, {"secret": {"inner": SECRET}, "k": 2}),
        {"l1.l2.l3.l4.l5.l6": '{"l7":{"secret":"[REDACTED]","k":2}}'}),
    "mixed-case-dashes-spaces": (
        {"Db": {"PassWord": SECRET}, "API-KEY": SECRET, "X-Auth-Token": SECRET,
         "api key": SECRET, " Password ": SECRET, "conn": {"x-api-key": {"v": SECRET}}},
        {"Db.PassWord": R, "API-KEY": R, "X-Auth-Token": R, "api key": R, " Password ": R,
         "conn.x-api-key": R}),
    "flat-dotted-last-segment": (
        {"token.count": 3, "db.password": SECRET, "tokenizer": {"eos_token": "</s>"},
         "password_policy.length": 12, "user_session_id": "u1"},
        {"token.count": 3, "db.password": R, "tokenizer.eos_token": "</s>",
         "password_policy.length": 12, "user_session_id": "u1"}),
    "mapping-in-list-in-mapping": (
        {"a": {"b": [{"api_key": SECRET, "n": 1}, 2]}},
        {"a.b": ['{"api_key":"[REDACTED]","n":1}', 2]}),
    "secret-container-in-list": (
        {"rows": [{"credentials": {"user": "u", "pass": SECRET}}]},
        {"rows": ['{"credentials":"[REDACTED]"}']}),
    "numpy-object-array": (
        {"rows": np.array([{"secret": SECRET, "n": 1}], dtype=object)},
        {"rows": ['{"secret":"[REDACTED]","n":1}']}),
    "namedtuple": (
        {"creds": Creds("ann", SECRET)},
        {"creds.user": "ann", "creds.password": R}),
    "dataclass": (
        {"login": Login("ann", SECRET)},
        {"login.user": "ann", "login.password": R}),
    "dataclass-in-a-list": (
        {"logins": [{"l": Login("ann", SECRET)}, Creds("bob", SECRET)]},
        {"logins": ['{"l":{"user":"ann","password":"[REDACTED]"}}',
                    '{"user":"bob","password":"[REDACTED]"}']}),
    "bytes-and-enum-keys": (
        {"m": {b"password": SECRET, Field.PASSWORD: SECRET, "ok": 1}},
        {"m.b'password'": R, "m.Field.PASSWORD": R, "m.ok": 1}),
    "secret-bytes-value": (
        {"private_key": SECRET.encode()},
        {"private_key": R}),
    "dataframe-password-column": (
        {"frame": pd.DataFrame({"password": [SECRET, SECRET], "age": [41, 42]})},
        {"frame": [R, 41, R, 42]}),
    "dataframe-password-index": (
        {"frame": pd.DataFrame({"v": [SECRET, "ok"]}, index=["password", "user"])},
        {"frame": [R, "ok"]}),
    "series-named-password": (
        {"s": pd.Series([SECRET, SECRET], name="password")},
        {"s": R}),
    "series-password-index": (
        {"s": pd.Series({"user": "ann", "password": SECRET})},
        {"s": ["ann", R]}),
    "dataframe-in-a-list": (
        {"frames": [pd.DataFrame({"api_key": [SECRET]})]},
        {"frames": ['[["[REDACTED]"]]']}),
    "self-referencing": (
        {"loop": _cycle()},
        {"loop.password": R, "loop.n": 1, "loop.self.password": R}),
    "keys-cut-for-length": (
        {"x" * 300 + ".password": SECRET, "a" * 300: {"api_key": SECRET}},
        {"x" * 255: R, "a" * 255: R}),
    "forty-levels-of-lists": (
        {"deep": _deep_lists(40)},
        {}),
}


@pytest.fixture
def outputs(tmp_path: Path) -> Iterator[Outputs]:
    with three_sinks(tmp_path) as out:
        yield out


def _assert_no_secret(written: dict[str, bytes], secret: str = SECRET) -> None:
    for sink, data in written.items():
        assert data, f"{sink} wrote nothing"
        assert secret.encode() not in data, f"{sink} leaked the secret"


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_shapes_never_leak_and_siblings_survive(outputs: Outputs, case: str) -> None:
    """Each shape of the issue: no secret byte in any sink; siblings keep their values."""
    fields, expected = CASES[case]
    outputs.mark()
    with wideevents.event("shape") as ev:
        ev.add(fields)
    _assert_no_secret(outputs.written())
    (event,) = outputs.events()
    assert expected == {k: event.get(k, "<missing>") for k in expected}
    assert {} == wideevents.stats()["dropped"]


def test_a_processor_returning_nested_secrets_is_redacted(tmp_path: Path) -> None:
    """Nested dicts, lists and pairs added by a processor are walked before serialisation."""

    def processor(ev: dict[str, Any]) -> dict[str, Any]:
        ev["extra"] = {"auth": {"password": SECRET}, "n": 1}
        ev["rows"] = [{"api_key": SECRET}, ("Authorization", SECRET)]
        ev["pairs"] = [("Cookie", SECRET), ("accept", "json")]
        ev["client_secret"] = {"v": SECRET}
        ev["frame"] = pd.DataFrame({"password": [SECRET]})
        ev["login"] = Login("ann", SECRET)
        return ev

    with three_sinks(tmp_path, processors=[processor]) as out:
        out.mark()
        with wideevents.event("processed"):
            pass
        _assert_no_secret(out.written())
        (event,) = out.events()
    assert {"auth": {"password": R}, "n": 1} == event["extra"]
    assert [["Cookie", R], ["accept", "json"]] == event["pairs"]
    assert R == event["client_secret"]
    assert {"user": "ann", "password": R} == event["login"]


def test_processors_still_see_flat_secret_scalars(tmp_path: Path) -> None:
    """A processor can read (and hash) a flat secret field: it is redacted after processors."""
    seen: list[Any] = []

    def processor(ev: dict[str, Any]) -> dict[str, Any]:
        seen.append(ev.get("user.api_key"))
        ev["user.api_key_sha"] = hashlib.sha256(str(ev["user.api_key"]).encode()).hexdigest()[:8]
        return ev

    with three_sinks(tmp_path, processors=[processor]) as out:
        out.mark()
        with wideevents.event("processed") as ev:
            ev.add({"user.api_key": SECRET, "nested": {"password": {"v": SECRET}}})
        _assert_no_secret(out.written())
        (event,) = out.events()
    assert [SECRET] == seen
    assert R == event["user.api_key"]
    assert hashlib.sha256(SECRET.encode()).hexdigest()[:8] == event["user.api_key_sha"]
    assert R == event["nested.password"]


def test_configured_names_apply_at_any_depth(tmp_path: Path) -> None:
    """Names given to configure(redact=...) are honoured inside containers and 10 levels deep."""
    with three_sinks(tmp_path, redact=["ssn", "*_pin"]) as out:
        out.mark()
        with wideevents.event("custom") as ev:
            ev.add({"people": [{"ssn": SECRET, "name": "ann"}], "deep": _nest(9, {
                "card_pin": SECRET, "k": 1}), "user.ssn": SECRET})
        _assert_no_secret(out.written())
        (event,) = out.events()
    assert ['{"ssn":"[REDACTED]","name":"ann"}'] == event["people"]
    assert R == event["user.ssn"]


# -- property: secrets planted under secret keys at random depths ------------------------------
SECRET_KEYS = st.sampled_from([
    "password", "Password", "PASSWD", "api_key", "api-key", "API Key", "x-api-key",
    "authorization", "Authorization", "cookie", "set-cookie", "secret", "client_secret",
    "access_token", "refresh_token", "X-Auth-Token", "private_key", "db.password",
    "db_password", "x-honeycomb-team", "credentials",
])
PLAIN_KEYS = st.sampled_from(["a", "items", "meta", "token.count", "user", "rows", "x y",
                              "tokens", "eos_token", "session_id"])
SCALARS = st.one_of(st.integers(-5, 5), st.sampled_from(["v", "w", "", "</s>"]), st.none())


@st.composite
def planted(draw: st.DrawFn, secret: str) -> Any:
    """A secret under a secret key (as a mapping entry or a header pair), wrapped in random
    containers 0 to 12 levels deep, with plain siblings at every level."""
    key = draw(SECRET_KEYS)
    inner = draw(st.sampled_from(["scalar", "mapping", "list", "bytes"]))
    value: Any = {"scalar": secret, "mapping": {"value": secret, "n": 1},
                  "list": [secret, 1], "bytes": secret.encode()}[inner]
    node: Any = draw(st.sampled_from([
        {key: value, "n": 1}, [(key, value)], [[key, value], ["k", "v"]], ((key, value),),
    ]))
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(["dict", "list", "tuple", "pairs", "set-of-pairs"]))
        sibling = draw(SCALARS)
        if kind == "dict":
            node = {draw(PLAIN_KEYS): node, "sib": sibling}
        elif kind == "list":
            node = [sibling, node]
        elif kind == "tuple":
            node = (node, sibling)
        elif kind == "pairs":
            node = [("name", sibling), (draw(PLAIN_KEYS), node)]
        else:
            try:
                node = {(draw(PLAIN_KEYS), node)}
            except TypeError:  # unhashable: a set cannot hold it
                node = [node]
    return node


PROPERTY_SETTINGS = settings(max_examples=60, derandomize=True, deadline=None, database=None,
                             suppress_health_check=[HealthCheck.too_slow])
EVENTS = st.tuples(st.dictionaries(PLAIN_KEYS, planted(SECRET), min_size=1, max_size=3),
                   st.dictionaries(PLAIN_KEYS, SCALARS, max_size=2))


def test_planted_secrets_never_reach_any_sink(tmp_path: Path) -> None:
    """Random nesting of dicts, lists, tuples, pairs and sets: no secret byte in any sink."""
    with three_sinks(tmp_path) as out:

        @PROPERTY_SETTINGS
        @given(EVENTS)
        def check(drawn: tuple[dict[str, Any], dict[str, Any]]) -> None:
            fields, plain = drawn
            out.mark()
            with wideevents.event("planted") as ev:
                ev.add({**plain, **fields})
            _assert_no_secret(out.written())
            (event,) = out.events()
            for key, value in plain.items():
                if key not in fields:
                    assert value == event[key]

        check()
