"""A subscription whose reader went away holds nothing in the peer.

Apps read subscriptions with ``async for`` and leave the loop by ``break``, by an error of
their own or by a cancelled task (a view closed), often without closing the subscription:
an ``async for`` does not close an iterator it leaves. Such a subscription can never be
read again; the peer drops it once nothing refers to it, rather than queue every later
change for it as long as it runs. A subscription that is still referred to (and may be
read again) is kept, whatever its reader did: a ``wait_for(anext(sub), ...)`` that timed
out loses nothing.
"""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path

from sync.transport.peer import Peer

from .conftest import WAIT, open_peer


async def _first(peer: Peer, key: str) -> object:
    async for value in peer.subscribe(key):
        return value  # (leaves the loop: the subscription is not closed)
    raise AssertionError("the subscription ended")


async def _first_under(peer: Peer, prefix: str) -> object:
    async for item in peer.subscribe(prefix=prefix):
        return item
    raise AssertionError("the subscription ended")


async def _fails(peer: Peer, key: str) -> None:
    async for _ in peer.subscribe(key):
        raise ValueError("the app's own error")


async def _forever(peer: Peer, key: str) -> None:
    async for _ in peer.subscribe(key):
        pass


async def test_subscriptions_left_by_their_readers_are_dropped(tmp_path: Path) -> None:
    peer = await open_peer(tmp_path / "a.db", listen=None)
    try:
        visits = peer.gcounter("cart:visits")
        for n in range(1, 4):  # "the next change", three times
            first = asyncio.ensure_future(_first(peer, "cart:visits"))
            under = asyncio.ensure_future(_first_under(peer, "cart:"))
            await asyncio.sleep(0)
            await visits.increment()
            assert await asyncio.wait_for(first, WAIT) == n
            assert await asyncio.wait_for(under, WAIT) == ("cart:visits", n)
        failing = asyncio.ensure_future(_fails(peer, "cart:visits"))
        reader = asyncio.ensure_future(_forever(peer, "cart:visits"))  # a view, closed later
        await asyncio.sleep(0)
        await visits.increment()
        await asyncio.wait({failing}, timeout=WAIT)
        assert isinstance(failing.exception(), ValueError)
        reader.cancel()
        await asyncio.wait({reader}, timeout=WAIT)
        del failing, reader  # (the tracebacks they keep hold their subscriptions)
        gc.collect()
        assert peer._subs == {} and peer._prefix_subs == []
        await visits.increment()  # pushed to nobody
        assert await visits.value() == 5
    finally:
        await peer.aclose()


async def test_a_subscription_still_held_keeps_its_values(tmp_path: Path) -> None:
    peer = await open_peer(tmp_path / "b.db", listen=None)
    try:
        changes = peer.subscribe("visits")
        try:
            await asyncio.wait_for(anext(changes), 0.05)  # the reader gave up once
        except TimeoutError:
            pass
        gc.collect()
        await peer.gcounter("visits").increment()
        assert await asyncio.wait_for(anext(changes), WAIT) == 1
        assert peer._subs == {"visits": [changes]}
    finally:
        await peer.aclose()
