"""The client API on a key left with nothing live: a set's last element removed, a map's
last entry removed, a key deleted, here or on another peer. The write answers 200 and
every subscriber of the key (or of a prefix covering it) hears ``kind: null`` and stays
subscribed; a key that clashes under a prefix is skipped, not the end of the stream."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shoal import Peer
from tests.shoal.test_client_api import Client, _client, _next, _ws, client, peer
from tests.transport.conftest import eventually, linked, open_peer

__all__ = ["client", "peer"]

EMPTY = {"vv": {}, "cloud": []}


def _gone(key: str) -> dict[str, Any]:
    return {"type": "change", "key": key, "kind": None, "value": None}


async def _ready(client: Client, query: str) -> Any:
    ws = await _ws(client, query)
    assert await _next(ws) == {"type": "ready"}
    return ws


async def test_emptying_a_set_or_a_map_answers_200_and_tells_subscribers(
    client: Client, peer: Peer
) -> None:
    page = await _ready(client, "prefix=shop:")
    one = await _ready(client, "key=shop:done")
    status, reply = await client.post("shop:done", kind="orset", op="add", args=["i1"])
    assert status == 200
    assert (await _next(page))["value"] == ["i1"] == (await _next(one))["value"]

    status, reply = await client.post("shop:done", kind="orset", op="remove", args=["i1"])
    assert status == 200, reply
    assert reply["object"] == {"key": "shop:done", "kind": "orset", "value": [], "version": EMPTY}
    assert await _next(page) == _gone("shop:done") == await _next(one)
    assert (await client.get("shop:done"))[0] == 404  # nothing live: as a deleted key

    # Still subscribed, both of them.
    await client.post("shop:done", kind="orset", op="add", args=["i2"])
    assert (await _next(page))["value"] == ["i2"] == (await _next(one))["value"]

    lww = {"kind": "lww", "op": "set", "args": ["milk"]}
    await client.post("shop:items", kind="ormap", op="update", args=["i2", lww])
    assert (await _next(page))["value"] == {"i2": "milk"}
    status, reply = await client.post("shop:items", kind="ormap", op="remove", args=["i2"])
    assert status == 200, reply
    assert reply["object"]["value"] == {} and reply["object"]["kind"] == "ormap"
    assert await _next(page) == _gone("shop:items")

    status, _ = await client.call("DELETE", "/v1/keys/shop:done")
    assert status == 200
    assert await _next(page) == _gone("shop:done") == await _next(one)
    await peer.orset("shop:done").add("i3")  # and again: nothing was closed
    assert (await _next(page))["value"] == ["i3"] == (await _next(one))["value"]
    for ws in (page, one):
        await ws.close()


async def test_a_delete_on_another_peer_reaches_subscribers_here(tmp_path: Path) -> None:
    a = await open_peer(tmp_path / "a.db")
    b = await open_peer(tmp_path / "b.db", listen=None, peers=[a.url])
    try:
        await linked(a, b)
        async for client in _client(b):
            page = await _ready(client, "prefix=shop:")
            one = await _ready(client, "key=shop:done")
            await a.orset("shop:done").add("i1", w=2)
            assert (await _next(page))["value"] == ["i1"] == (await _next(one))["value"]
            await a.orset("shop:done").remove("i1", w=2)
            assert await _next(page) == _gone("shop:done") == await _next(one)
            await a.orset("shop:done").add("i2", w=2)
            await a.delete("shop:done", w=2)
            seen = [await _next(page), await _next(page)]
            assert seen == [{**seen[0], "value": ["i2"]}, _gone("shop:done")]
            await b.orset("shop:other").add("x")
            assert (await _next(page))["key"] == "shop:other"
    finally:
        await b.aclose()
        await a.aclose()


async def test_a_key_that_clashes_under_a_prefix_is_skipped(tmp_path: Path) -> None:
    a = await open_peer(tmp_path / "a.db")
    try:
        b = await open_peer(tmp_path / "b.db", listen=None)  # offline: writes concurrently
        await b.orset("shop:x").add("from b")
        await b.aclose()
        await a.lww("shop:x").set("from a")
        b = await open_peer(tmp_path / "b.db", listen=None, peers=[a.url])
        try:
            await linked(a, b)
            await eventually(lambda: len(a.replica.kinds_of("shop:x")) == 2, "the clash at a")
            async for client in _client(a):
                page = await _ready(client, "prefix=shop:")
                # As if the key changed, then clashed before the stream read it.
                for sub in a._prefix_subs:
                    sub.push(("shop:x", "from a"))
                await a.orset("shop:y").add("next")
                assert (await _next(page))["key"] == "shop:y"  # the stream goes on
                await page.close()
        finally:
            await b.aclose()
    finally:
        await a.aclose()
