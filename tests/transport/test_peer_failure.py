"""A peer whose store fails to commit stops serving; reopening resumes from its disk."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from sync.errors import PeerFailed
from sync.transport.peer import Peer

from .conftest import WAIT, eventually, linked, local_value, open_peer


async def test_a_failed_commit_stops_the_peer_and_reopening_resumes_from_disk(
    tmp_path: Path,
) -> None:
    a = await open_peer(tmp_path / "a.db")
    b = await open_peer(tmp_path / "b.db", peers=[a.url])
    try:
        await linked(a, b)
        cart = a.orset("cart")
        await cart.add("milk", w=2, timeout=WAIT)
        real_apply = a.store.apply

        async def broken(batch: Any, *, grouped: bool = True, lone: bool = False) -> None:
            raise OSError("disk full")

        a.store.apply = broken  # type: ignore[method-assign]
        with pytest.raises(PeerFailed, match="disk full"):
            await cart.add("eggs")
        with pytest.raises(PeerFailed):  # later operations too, even with the disk back
            a.store.apply = real_apply  # type: ignore[method-assign]
            await cart.add("flour")
        with pytest.raises(PeerFailed):  # reads as well, leaving no pending operation behind
            await a.node.read("cart")
        assert a.node._reads == {} and a.node._writes == {}
        # The failed write was never sent: B holds only what A had committed.
        await eventually(lambda: a.replica_id not in b.transport.links, "A's links closed")
        assert local_value(b, "cart") == frozenset({"milk"})
    finally:
        await a.aclose()
    a = await open_peer(tmp_path / "a.db", peers=[b.url])
    try:
        assert local_value(a, "cart") == frozenset({"milk"})
        await linked(a, b)
        await a.orset("cart").add("eggs", w=2, timeout=WAIT)
        await eventually(lambda: local_value(b, "cart") == {"milk", "eggs"}, "eggs at B")
    finally:
        await a.aclose()
        await b.aclose()


async def _keys(peer: Peer) -> list[str]:
    return [k async for k in peer.keys(None)]


async def test_calls_waiting_when_a_commit_fails_get_the_failure(tmp_path: Path) -> None:
    # A commit fails while the engine loads a key for a delete, and a listing of the keys
    # waits behind it: both dropped inputs are failed with PeerFailed, as the write is.
    a = await open_peer(tmp_path / "a.db", listen=None)
    await a.orset("cart").add("milk")
    await a.aclose()
    a = await open_peer(tmp_path / "a.db", listen=None, cache_bytes=1024)  # (loads keys)
    try:
        await a.orset("cart").value()  # in memory from now on
        release, loading = asyncio.Event(), asyncio.Event()

        async def broken(batch: Any, *, grouped: bool = True, lone: bool = False) -> None:
            await release.wait()
            raise OSError("disk full")

        async def stuck(keys: Any) -> Any:
            loading.set()
            await asyncio.Event().wait()  # (the fail-stop cancels the engine here)

        a.store.apply = broken  # type: ignore[method-assign]
        a.store.get_objects = stuck  # type: ignore[method-assign]
        write = a.orset("cart").add("eggs")  # its commit is under way
        delete = asyncio.ensure_future(a.delete("unknown"))  # loads the key first
        await asyncio.wait_for(loading.wait(), WAIT)
        keys = asyncio.ensure_future(_keys(a))
        await eventually(lambda: len(a.node._inputs) == 1, "the listing queued")
        release.set()
        for call in (write, delete, keys):
            with pytest.raises(PeerFailed, match="disk full"):
                await asyncio.wait_for(call, WAIT)
    finally:
        await a.aclose()
