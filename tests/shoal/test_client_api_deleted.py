"""The client API's ``GET /v1/keys`` leaves deleted keys out (it lists through
``Peer.keys``), at once, page by page and after a restart; SQLite and PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from shoal import Peer
from shoal.web import serve_client_api
from tests.transport.conftest import WAIT, open_peer
from tests.transport.test_keys_live import NewDatabase, new_db

__all__ = ["new_db"]

TOKEN = "client-api-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def _pages(peer: Peer, query: str, limit: int) -> list[list[str]]:
    """Every page of ``GET /v1/keys?QUERY&limit=LIMIT``, following ``next``."""
    api = await serve_client_api(peer, "127.0.0.1", 0, TOKEN)
    pages: list[list[str]] = []
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT)) as s:
            after = ""
            for _ in range(50):  # bounded: a handful of pages expected
                url = f"{api.url}/v1/keys?{query}&limit={limit}{after}"
                async with s.get(url, headers=AUTH) as resp:
                    assert resp.status == 200, await resp.text()
                    body: Any = json.loads(await resp.text())
                pages.append(body["keys"])
                if body["next"] is None:
                    return pages
                after = f"&after={body['next']}"
    finally:
        await api.aclose()
    raise AssertionError("the listing did not end")


async def _delete(peer: Peer, key: str) -> int:
    api = await serve_client_api(peer, "127.0.0.1", 0, TOKEN)
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=WAIT)) as s,
            s.delete(f"{api.url}/v1/keys/{key}", headers=AUTH) as resp,
        ):
            return resp.status
    finally:
        await api.aclose()


async def test_get_keys_leaves_deleted_keys_out(new_db: NewDatabase) -> None:
    db = await new_db("api")
    keys = [f"item:{i}" for i in range(8)]
    peer = await open_peer(db, listen=None)
    try:
        for key in keys:
            await peer.orset(key).add("x")
    finally:
        await peer.aclose()  # all checkpointed live
    peer = await open_peer(db, listen=None)
    try:
        assert await _delete(peer, "item:1") == 200
        assert await _delete(peer, "item:2") == 200
        pending = peer.orset("item:3").delete()  # not awaited: gone from the listing already
        want = ["item:0", "item:4", "item:5", "item:6", "item:7"]
        assert [k for p in await _pages(peer, "prefix=item:", 2) for k in p] == want
        assert await _pages(peer, "prefix=item:", 100) == [want]
        await pending
    finally:
        await peer.aclose()
    peer = await open_peer(db, listen=None)
    try:
        assert await _pages(peer, "prefix=item:", 3) == [want[:3], want[3:]]
    finally:
        await peer.aclose()
