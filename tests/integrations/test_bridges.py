"""The structlog processor and the stdlib logging handler that feed the current event."""

from __future__ import annotations

import asyncio
import copy
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from structlog.contextvars import bind_contextvars, clear_contextvars

import wideevents
from wideevents import ConfigurationError
from wideevents._core import hooks
from wideevents.integrations import structlog as bridge
from wideevents.integrations.asgi import WideEventsMiddleware
from wideevents.integrations.logging import WideEventsHandler
from wideevents.integrations.structlog import AddToEvent, add_to_event
from wideevents.testing import capture_events


class NamedLogger:
    def __init__(self, name: str) -> None:
        self.name = name


APP_LOGGER = NamedLogger("app")


@pytest.fixture()
def events() -> Iterator[list[dict[str, Any]]]:
    with capture_events() as captured:
        yield captured


@pytest.fixture()
def restore_merge_hooks() -> Iterator[None]:
    """Bridges built with merge_contextvars register process-wide hooks: undo them."""
    before, prefixes = hooks.request_finish_hooks, dict(bridge._merge_prefixes)
    try:
        yield
    finally:
        hooks.request_finish_hooks = before
        bridge._merge_prefixes.clear()
        bridge._merge_prefixes.update(prefixes)
        clear_contextvars()


# -- structlog ----------------------------------------------------------------------------


def test_fields_counts_messages_and_last_error(events: list[dict[str, Any]]) -> None:
    """Each call adds its fields under log., counts per level, keeps messages and last error."""
    calls = [("info", {"event": "start", "n": 1}), ("warning", {"event": "slow", "ms": 5}),
             ("error", {"event": "failed", "code": 7}), ("info", {"event": "retry", "n": 2})]
    with wideevents.event("work"):
        for method, event_dict in calls:
            add_to_event(APP_LOGGER, method, event_dict)
    [ev] = events
    expected = {"log.n": 2, "log.ms": 5, "log.code": 7, "log.info_count": 2,
                "log.warning_count": 1, "log.error_count": 1,
                "log.messages": ["start", "slow", "failed", "retry"], "log.last_error": "failed"}
    assert expected == {k: v for k, v in ev.items() if k.startswith("log.")}


def test_last_n_keeps_the_newest_messages(events: list[dict[str, Any]]) -> None:
    """With last_n=2 only the two newest messages remain, oldest first; 0 keeps none."""
    two, none = AddToEvent(last_n=2), AddToEvent(prefix="quiet.", last_n=0)
    with wideevents.event("work"):
        for i in range(5):
            two(APP_LOGGER, "info", {"event": f"m{i}"})
            none(APP_LOGGER, "info", {"event": f"m{i}"})
    [ev] = events
    assert (["m3", "m4"], None, 5) == (ev["log.messages"], ev.get("quiet.messages"),
                                       ev["quiet.info_count"])


def test_level_names_are_mapped(events: list[dict[str, Any]]) -> None:
    """exception->error, warn->warning, fatal->critical, the 'level' key wins, unknown->other."""
    with wideevents.event("work"):
        add_to_event(APP_LOGGER, "exception", {"event": "e1"})
        add_to_event(APP_LOGGER, "warn", {"event": "w"})
        add_to_event(APP_LOGGER, "fatal", {"event": "f"})
        add_to_event(APP_LOGGER, "info", {"event": "lvl", "level": "ERROR"})
        add_to_event(APP_LOGGER, "notice", {"event": "odd"})
    [ev] = events
    counts = {k: v for k, v in ev.items() if k.endswith("_count")}
    assert {"log.error_count": 2, "log.warning_count": 1, "log.critical_count": 1,
            "log.other_count": 1} == counts
    assert "lvl" == ev["log.last_error"]


def test_the_event_dict_passes_on_unchanged() -> None:
    """The processor returns the very same dict, unmodified, and rendering is unaffected."""
    event_dict = {"event": "hello", "user": {"id": 3}, "level": "info"}
    before = copy.deepcopy(event_dict)
    with capture_events():
        with wideevents.event("work"):
            returned = add_to_event(APP_LOGGER, "info", event_dict)
    assert returned is event_dict and before == event_dict

    def render(with_bridge: bool) -> str:
        chain: list[Any] = [structlog.processors.add_log_level]
        if with_bridge:
            chain.append(add_to_event)
        chain.append(structlog.processors.JSONRenderer(sort_keys=True))
        log = structlog.wrap_logger(structlog.ReturnLogger(), processors=chain)
        with capture_events(), wideevents.event("work"):
            return str(log.info("hello", user_id=3))

    assert render(False) == render(True)


def test_no_current_event_is_a_no_op(events: list[dict[str, Any]]) -> None:
    """Outside any event the processor does nothing and emits nothing."""
    event_dict = {"event": "alone", "x": 1}
    assert add_to_event(APP_LOGGER, "error", event_dict) is event_dict
    assert ([], {"event": "alone", "x": 1}) == (events, event_dict)


def test_reserved_keys_are_never_overwritten(events: list[dict[str, Any]]) -> None:
    """Even with an empty prefix, identity/timing/trace/error keys are not written."""
    raw = AddToEvent(prefix="")
    hostile = {"event": "x", "name": "hijack", "timestamp": "2000-01-01", "duration_ms": -1,
               "trace.trace_id": "f" * 32, "trace.parent_id": "e" * 16, "samplerate": 100,
               "error": True, "error.type": "Fake", "meta.dropped_count": 9,
               "service.name": "other", "messages": "not a list", "info_count": 99,
               "user_id": 7}
    with wideevents.event("real") as ev:
        trace_id = ev.trace_id
        raw(APP_LOGGER, "info", hostile)
    [out] = events
    assert ("real", trace_id, None, None, None, 7, 1, ["x"]) == (
        out["name"], out["trace.trace_id"], out.get("trace.parent_id"), out.get("error"),
        out.get("samplerate"), out["user_id"], out["info_count"], out["messages"])
    assert out["duration_ms"] >= 0 and out["service.name"] != "other"
    assert "meta.dropped_count" not in out and "error.type" not in out


def test_structlog_bookkeeping_keys_are_not_fields(events: list[dict[str, Any]]) -> None:
    """timestamp, logger, exc_info and friends stay out of the event."""
    with wideevents.event("work"):
        add_to_event(APP_LOGGER, "error", {"event": "oops", "timestamp": "t", "logger": "app",
                                           "exc_info": True, "exception": "Traceback...",
                                           "order_id": 12})
    [ev] = events
    assert {"log.order_id": 12, "log.error_count": 1, "log.messages": ["oops"],
            "log.last_error": "oops"} == {k: v for k, v in ev.items() if k.startswith("log.")}


def test_records_of_the_wideevents_logger_are_ignored(events: list[dict[str, Any]]) -> None:
    """Our own logger's calls (by logger name or stdlib record) never reach the event."""
    with wideevents.event("work"):
        add_to_event(NamedLogger("wideevents"), "warning", {"event": "internal"})
        add_to_event(APP_LOGGER, "warning", {"event": "internal",
                                             "_record": logging.makeLogRecord(
                                                 {"name": "wideevents.pipeline"})})
    [ev] = events
    assert [] == [k for k in ev if k.startswith("log.")]


def test_a_log_call_after_the_event_ended_is_counted_late(events: list[dict[str, Any]]) -> None:
    """A thread that outlives its event logs: nothing is added, the fields count as late."""
    release = threading.Event()

    def outlive() -> None:
        release.wait(5)
        add_to_event(APP_LOGGER, "info", {"event": "too late", "k": 1})

    with wideevents.event("work"):
        thread = threading.Thread(target=wideevents.in_context(outlive))
        thread.start()
    release.set()
    thread.join(5)
    [ev] = events
    # The call carries k, messages and info_count: three fields arrive late.
    assert (3, []) == (wideevents.stats()["fields"]["dropped"].get("late"),
                       [k for k in ev if k.startswith("log.")])


def test_merge_contextvars_at_each_call(events: list[dict[str, Any]],
                                        restore_merge_hooks: None) -> None:
    """Bindings are merged under the prefix without replacing the call's own fields."""
    merging = AddToEvent(merge_contextvars=True)
    with wideevents.event("work"):
        bind_contextvars(tenant="acme", order_id=1)
        merging(APP_LOGGER, "info", {"event": "e", "order_id": 2})
    [ev] = events
    assert ("acme", 2) == (ev["log.tenant"], ev["log.order_id"])


def test_merge_contextvars_when_a_middleware_event_finishes(events: list[dict[str, Any]],
                                                           restore_merge_hooks: None) -> None:
    """Bindings made by an endpoint that never logs are merged when the request ends."""
    AddToEvent(prefix="ctx.", merge_contextvars=True)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        bind_contextvars(user_id=42)
        wideevents.add({"ctx.kept": "handler"})
        bind_contextvars(kept="binding")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def run() -> None:
        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b""}

        async def send(message: dict[str, Any]) -> None:
            return None

        scope = {"type": "http", "method": "GET", "path": "/", "headers": []}
        await WideEventsMiddleware(app)(scope, receive, send)

    asyncio.run(run())
    [ev] = events
    assert (42, "handler") == (ev["ctx.user_id"], ev["ctx.kept"])


def test_bad_structlog_options() -> None:
    """A negative last_n or a non-string prefix is a ConfigurationError."""
    for kwargs in ({"last_n": -1}, {"last_n": 2.5}, {"prefix": 3}):
        with pytest.raises(ConfigurationError):
            AddToEvent(**kwargs)  # type: ignore[arg-type]


# -- stdlib logging -----------------------------------------------------------------------


@pytest.fixture()
def app_logger() -> Iterator[logging.Logger]:
    logger = logging.getLogger("tests.bridges.app")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    handler = WideEventsHandler()
    logger.addHandler(handler)
    try:
        yield logger
    finally:
        logger.removeHandler(handler)


def test_handler_counts_warnings_and_errors(events: list[dict[str, Any]],
                                            app_logger: logging.Logger) -> None:
    """Warnings and errors are counted, info is below the default level, last error kept."""
    with wideevents.event("work"):
        app_logger.info("fine")
        app_logger.warning("careful %s", "now")
        app_logger.error("broken %d", 1)
        app_logger.critical("down")
        app_logger.error("broken %d", 2)
    [ev] = events
    assert {"log.warning_count": 1, "log.error_count": 2, "log.critical_count": 1,
            "log.last_error": "broken 2"} == {k: v for k, v in ev.items()
                                              if k.startswith("log.")}


def test_handler_level_and_prefix(events: list[dict[str, Any]]) -> None:
    """A lower level counts info too; a prefix renames the keys."""
    logger = logging.getLogger("tests.bridges.verbose")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    handler = WideEventsHandler(logging.INFO, prefix="stdlog.")
    logger.addHandler(handler)
    try:
        with wideevents.event("work"):
            logger.debug("ignored")
            logger.info("counted")
            logger.exception("with exc_info")
    finally:
        logger.removeHandler(handler)
    [ev] = events
    assert {"stdlog.info_count": 1, "stdlog.error_count": 1,
            "stdlog.last_error": "with exc_info"} == {k: v for k, v in ev.items()
                                                      if k.startswith("stdlog.")}


def test_handler_ignores_the_wideevents_logger(events: list[dict[str, Any]]) -> None:
    """Records of 'wideevents' and its children are never counted."""
    handler = WideEventsHandler()
    with wideevents.event("work"):
        for name in ("wideevents", "wideevents.pipeline"):
            handler.handle(logging.makeLogRecord({"name": name, "levelno": logging.ERROR,
                                                  "levelname": "ERROR", "msg": "internal"}))
        handler.handle(logging.makeLogRecord({"name": "wideeventsish", "levelno": logging.ERROR,
                                              "levelname": "ERROR", "msg": "user"}))
    [ev] = events
    assert {"log.error_count": 1, "log.last_error": "user"} == {
        k: v for k, v in ev.items() if k.startswith("log.")}


def test_handler_outside_events_and_with_bad_arguments(events: list[dict[str, Any]],
                                                       app_logger: logging.Logger) -> None:
    """No event: nothing happens; a malformed %-format is contained and still counted."""
    app_logger.error("no event here")
    handler = WideEventsHandler()
    bad = logging.makeLogRecord({"name": "app", "levelno": logging.ERROR, "levelname": "ERROR",
                                 "msg": "value %d", "args": ("not a number",)})
    with wideevents.event("work"):
        handler.handle(bad)
    [ev] = events
    assert (1, "'value %d'") == (ev["log.error_count"], ev["log.last_error"])
