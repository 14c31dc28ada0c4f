"""The client API's websocket keeps "a slow reader gets the latest state of each key"
(docs/api.md, GET /v1/subscribe): a reader that falls behind hears of every key, or is
told by the socket's closing that it must read the keys again; it never silently misses
one."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import WSCloseCode, WSMsgType

from shoal import Peer
from shoal.web import ClientAPI, serve_client_api
from tests.transport.conftest import WAIT

TOKEN = "client-api-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
N = 300


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[Peer, ClientAPI, aiohttp.ClientSession]]:
    async with (
        Peer.open(tmp_path / "api.db", subscriber_queue=100) as peer,
        await serve_client_api(peer, "127.0.0.1", 0, TOKEN) as served,
        aiohttp.ClientSession(headers=AUTH, timeout=aiohttp.ClientTimeout(total=WAIT)) as http,
    ):
        yield peer, served, http


async def _heard(ws: aiohttp.ClientWebSocketResponse, want: set[str]) -> tuple[set[str], bool]:
    """The keys of the changes sent until ``want`` are all heard or the socket closes (then
    True)."""
    heard: set[str] = set()
    async with asyncio.timeout(WAIT):
        while not want <= heard:
            msg = await ws.receive()
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING):
                assert ws.close_code == WSCloseCode.GOING_AWAY
                return heard, True
            change = json.loads(msg.data)
            assert change["type"] == "change" and change["value"] == f"v{change['key'][2:]}"
            heard.add(change["key"])
    return heard, False


async def _listed(http: aiohttp.ClientSession, url: str) -> set[str]:
    async with http.get(url + "/v1/keys?prefix=p:&limit=1000") as reply:
        assert reply.status == 200
        return set((await reply.json())["keys"])


@pytest.mark.parametrize("holds", [True, False], ids=["held", "overflowed"])
async def test_a_websocket_reader_that_falls_behind_misses_no_key(
    api: tuple[Peer, ClientAPI, aiohttp.ClientSession],
    holds: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """300 keys change at once: the reader hears of them all (a prefix subscription holds
    up to 10,000 keys); or, when that is more than the subscription holds (made 100 here),
    its socket is closed (1001) and it reads the keys again. (Before, it heard of the last
    100 and then of nothing, with the socket open.)"""
    from sync.transport import changefeed

    if not holds:
        monkeypatch.setattr(changefeed, "PREFIX_KEYS", 100)
    peer, served, http = api
    ws = await http.ws_connect(served.url.replace("http", "ws") + "/v1/subscribe?prefix=p:")
    await ws.send_json({"token": TOKEN})
    assert await ws.receive_json(timeout=WAIT) == {"type": "ready"}
    # Queued at once: their changes reach the subscription together, before its reader runs.
    writes = [peer.lww(f"p:{i:03d}").set(f"v{i:03d}") for i in range(N)]
    await asyncio.gather(*writes)
    want = {f"p:{i:03d}" for i in range(N)}
    heard, closed = await _heard(ws, want)
    if closed:  # told: it reads the keys again (each written once: the list is enough)
        heard |= await _listed(http, served.url)
    assert heard == want
    assert closed is not holds
    if closed:
        assert not peer._prefix_subs  # the socket's subscription is gone
