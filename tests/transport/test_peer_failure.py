"""A peer whose store fails to commit stops serving; reopening resumes from its disk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sync.errors import PeerFailed

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

        async def broken(batch: Any, *, grouped: bool = True) -> None:
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
