"""Child events of outgoing calls (issue 22) never carry a secret: ``url.full`` goes through
the one redaction module (``wideevents/_core/redact.py``, ``Redactor.redact_url``), with
the names given to ``configure(redact=...)``, for every instrumented library."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import aiohttp
import httpx
import orjson
import pytest
import requests
import urllib3

import wideevents
from tests.integrations.backends import Backend, running
from tests.support.integrations import memory_pipeline
from wideevents.integrations import clients
from wideevents.sinks import MemorySink

SECRETS = ("hunter2", "sk_live_51Habc", "tenantsecretvalue", "sig0123456789")


@pytest.fixture
def ok() -> Iterator[Backend]:
    with running("ok") as (backend,):
        yield backend


@pytest.fixture
def sink() -> Iterator[MemorySink]:
    with memory_pipeline(redact=["tenant_token"]) as memory:
        clients.instrument(child_events=True)
        try:
            yield memory
        finally:
            clients.uninstrument()


def _aiohttp(url: str) -> None:
    async def go() -> None:
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            await response.read()

    asyncio.run(go())


CALLS: dict[str, Callable[[str], Any]] = {
    "httpx": lambda url: httpx.get(url),
    "requests": lambda url: requests.get(url, timeout=5),
    "urllib3": lambda url: urllib3.PoolManager().request("GET", url),
    "aiohttp": _aiohttp,
}


@pytest.mark.parametrize("library", sorted(CALLS))
def test_url_full_is_redacted(sink: MemorySink, ok: Backend, library: str) -> None:
    """Userinfo, a default secret name (api_key, sig) and a configured one (tenant_token)
    are masked in url.full; the other parameter is kept; no secret appears anywhere in the
    emitted events."""
    url = (f"http://admin:hunter2@127.0.0.1:{ok.port}/search?q=shoes&api_key=sk_live_51Habc"
           "&tenant_token=tenantsecretvalue&sig=sig0123456789")
    with wideevents.event("request"):
        CALLS[library](url)
    assert wideevents.flush(5.0)
    (child,) = [e for e in sink.events if e["name"] == "GET"]
    # urllib3's PoolManager hands its pool the path only (urllib3/poolmanager.py,
    # PoolManager.urlopen: conn.urlopen(method, u.request_uri, ...)): no userinfo to mask.
    userinfo = "" if library == "urllib3" else "REDACTED:REDACTED@"
    assert (f"http://{userinfo}127.0.0.1:{ok.port}/search?q=shoes&api_key=REDACTED"
            "&tenant_token=REDACTED&sig=REDACTED") == child["url.full"]
    dumped = orjson.dumps(list(sink.events)).decode()
    assert [] == [s for s in SECRETS if s in dumped]
