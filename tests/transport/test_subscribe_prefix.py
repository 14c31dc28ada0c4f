"""``peer.subscribe(prefix=...)``: ``(key, value)`` for every key under the prefix, local or
remote; nothing for other keys; closed with the peer; bad arguments refused."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.transport.conftest import WAIT, linked, open_peer


async def test_a_prefix_subscription_gets_every_key_under_it(tmp_path: Path) -> None:
    a = await open_peer(tmp_path / "a.db")
    b = await open_peer(tmp_path / "b.db", listen=None, peers=[a.url])
    try:
        await linked(a, b)
        async with a.subscribe(prefix="cart:") as changes, a.subscribe("cart:bob") as one:
            await a.orset("cart:alice").add("milk")
            await a.orset("other").add("not under the prefix")
            await b.orset("cart:bob").add("eggs")  # a remote change
            async with asyncio.timeout(WAIT):
                seen = [await anext(changes), await anext(changes)]
                assert await anext(one) == frozenset({"eggs"})
            assert seen == [("cart:alice", frozenset({"milk"})), ("cart:bob", frozenset({"eggs"}))]
            assert changes.key is None and changes.prefix == "cart:"
        assert not a._prefix_subs  # leaving async with unregistered it
        everything = a.subscribe(prefix="")
        await a.gcounter("n").increment()
        async with asyncio.timeout(WAIT):
            assert await anext(everything) == ("n", 1)
    finally:
        await b.aclose()
        await a.aclose()
    with pytest.raises(StopAsyncIteration):  # closing the peer ended it
        async with asyncio.timeout(WAIT):
            await anext(everything)


async def test_subscribe_takes_a_key_or_a_prefix(tmp_path: Path) -> None:
    async with await open_peer(tmp_path / "a.db", listen=None) as a:
        with pytest.raises(TypeError, match="not both"):
            a.subscribe("k", prefix="k")
        with pytest.raises(TypeError, match="prefix must be a str"):
            a.subscribe(prefix=3)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="key must be a str"):
            a.subscribe()
        assert not a._prefix_subs and not a._subs
