"""Closing a peer as an app does: from two tasks at once, cancelled midway, with calls in
flight. Once an ``aclose()`` returns (or raises ``CancelledError``), the peer is closed for
good: its tasks have ended, its database is let go (this process may open it again at
once) and what it acknowledged is on disk; every call that was in flight has its answer or
a clear error, none waits for ever.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from .conftest import open_peer

WAIT = 5.0


def _others() -> set[asyncio.Task[object]]:
    """The tasks still running beside the test's own."""
    return {t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()}


async def _resume(path: Path, count: int) -> None:
    """Open ``path`` again at once: it holds the ``count`` elements written before."""
    again = await open_peer(path, listen=None)
    try:
        assert await again.orset("cart").value() == frozenset(range(count))
    finally:
        await again.aclose()


async def test_a_second_aclose_returns_once_the_peer_is_closed(tmp_path: Path) -> None:
    peer = await open_peer(tmp_path / "a.db")
    cart = peer.orset("cart")
    writes = [cart.add(i) for i in range(50)]
    first = asyncio.ensure_future(peer.aclose())
    await asyncio.sleep(0)  # the first close has begun
    await asyncio.wait_for(peer.aclose(), WAIT)  # (it returned at once, the peer half open)
    assert _others() <= {first}
    await asyncio.wait_for(first, WAIT)
    await asyncio.wait_for(asyncio.gather(*writes), WAIT)
    await _resume(tmp_path / "a.db", 50)


async def test_an_aclose_cancelled_midway_still_closes_the_peer(tmp_path: Path) -> None:
    # Cancelled at each step of the close in turn (the links, the engine's last round, the
    # database): the cancelled caller returns once the close is over, and a later aclose()
    # has nothing left to do.
    for turns in range(1, 12, 2):
        path = tmp_path / f"{turns}.db"
        peer = await open_peer(path)
        cart = peer.orset("cart")
        writes = [cart.add(i) for i in range(20)]
        closing = asyncio.ensure_future(peer.aclose())
        for _ in range(turns):
            await asyncio.sleep(0)
        closing.cancel()
        await asyncio.wait({closing}, timeout=WAIT)
        assert closing.done()
        assert _others() == set(), f"tasks left running after a close cancelled at {turns}"
        await asyncio.wait_for(peer.aclose(), WAIT)
        await asyncio.wait_for(asyncio.gather(*writes), WAIT)
        await _resume(path, 20)
