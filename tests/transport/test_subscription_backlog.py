"""A slow subscriber's backlog keeps the promise "a slow reader gets the latest state of each
key" (docs/api.md) in bounded memory.

* A prefix subscription holds one entry per changed key, its latest value, in the order the
  keys first changed: a reader that falls behind still learns every key.
* Past ``maxsize`` distinct keys it overflows: it holds nothing more, unregisters, and its
  next read raises ``SubscriptionOverflow``; the reader subscribes again and reads the keys.
* A key subscription keeps its last ``maxsize`` values, as before.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from shoal import Subscription, SubscriptionOverflow
from sync.transport.peer import Peer
from tests.transport.conftest import WAIT, open_peer

N = 300


async def _drain(sub: Subscription, count: int) -> list[Any]:
    """The next ``count`` items of ``sub`` (the test fails after WAIT seconds)."""
    async with asyncio.timeout(WAIT):
        return [await anext(sub) for _ in range(count)]


async def _read_all(peer: Peer, prefix: str) -> dict[str, Any]:
    return {key: await peer.lww(key).value() async for key in peer.keys(prefix)}


async def test_a_slow_prefix_reader_learns_every_key_with_its_latest_value(
    tmp_path: Path,
) -> None:
    """300 keys each changed twice while the reader does not read, within ``maxsize``: one
    entry per key, its latest value, in the order the keys first changed. (The old queue of
    600 changes kept the last 300: the second half of the keys, twice.)"""
    async with await open_peer(tmp_path / "a.db", listen=None) as a:
        sub = a.subscribe(prefix="p:", maxsize=N)
        for i in range(N):
            await a.lww(f"p:{i:03d}").set("first")
            await a.lww(f"p:{i:03d}").set(f"last {i}")
        seen = await _drain(sub, N)
        assert seen == [(f"p:{i:03d}", f"last {i}") for i in range(N)]
        assert sub.dropped == N  # the first values, each replaced by its key's last
        assert not sub.overflowed
        await a.lww("p:000").set("again")  # read: a new change is queued again
        assert await _drain(sub, 1) == [("p:000", "again")]


async def test_a_reader_too_far_behind_is_told_and_reads_the_keys_again(tmp_path: Path) -> None:
    """300 keys changed once while the reader does not read, past ``maxsize`` (100): the
    reader is told at its next read and, doing what the docs say (subscribe again, read the
    keys), learns every key with its latest value. (The old queue silently kept the last 100
    keys; the reader never heard of the other 200.)"""
    async with await open_peer(tmp_path / "a.db", listen=None) as a:
        sub = a.subscribe(prefix="p:", maxsize=100)
        await asyncio.gather(*(a.lww(f"p:{i:03d}").set(f"v{i}") for i in range(N)))
        assert not a._prefix_subs  # it unregistered when it overflowed: no more pushes
        known: dict[str, Any] = {}
        with pytest.raises(SubscriptionOverflow) as caught:
            for key, value in await _drain(sub, N):
                known[key] = value
        assert known == {}  # told at once: what it held is stale, the keys are read again
        assert (caught.value.prefix, caught.value.maxsize) == ("p:", 100)
        assert sub.overflowed and sub.dropped >= 101
        with pytest.raises(SubscriptionOverflow):  # it stays overflowed
            await anext(sub)

        again = a.subscribe(prefix="p:")  # first subscribe, then read: no change falls between
        known = await _read_all(a, "p:")
        await a.lww("p:007").set("later")
        for key, value in await _drain(again, 1):
            known[key] = value
        assert known == {f"p:{i:03d}": f"v{i}" for i in range(N)} | {"p:007": "later"}


def _sub(maxsize: int, *, prefix: str | None = "p:") -> tuple[Subscription, list[Subscription]]:
    closed: list[Subscription] = []
    key = None if prefix is not None else "k"
    return Subscription(key, maxsize, closed.append, prefix=prefix), closed


async def test_a_changed_key_keeps_its_place_in_the_backlog() -> None:
    """A key changed again while queued keeps its place with its new value, so that a key
    changed all the time cannot be pushed back for ever behind keys changed after it; once
    read, its next change queues at the end."""
    sub, _ = _sub(10)
    for item in [("a", 1), ("b", 1), ("a", 2), ("c", 1), ("a", 3)]:
        sub.push(item)
    assert await _drain(sub, 1) == [("a", 3)]
    sub.push(("a", 4))
    sub.push(("b", 2))
    assert await _drain(sub, 3) == [("b", 2), ("c", 1), ("a", 4)]
    assert sub.dropped == 3


async def test_a_reader_that_never_reads_holds_at_most_maxsize_keys() -> None:
    sub, closed = _sub(100)
    for i in range(100):
        sub.push((f"p:{i}", "x" * 1000))
    for i in range(100):  # changes of keys already queued: still within the bound
        sub.push((f"p:{i}", "y" * 1000))
    assert not sub.overflowed and closed == []
    for i in range(100, 10_000):
        sub.push((f"p:{i}", "x" * 1000))
    assert sub.overflowed and closed == [sub]  # unregistered once, at the 101st key
    assert not sub._latest  # what it held is released, not kept for the reader
    assert sub.dropped == 100 + 100 + 1  # the replaced values, then those held and the 101st
    sub.close()  # closing an overflowed subscription changes nothing
    assert closed == [sub]
    with pytest.raises(SubscriptionOverflow, match="more than 100 keys"):
        await anext(sub)


async def test_a_waiting_reader_is_woken_by_a_change_and_by_close() -> None:
    sub, closed = _sub(2)
    reader = asyncio.ensure_future(_drain(sub, 1))
    await asyncio.sleep(0)  # (let it wait)
    sub.push(("p:a", 1))
    assert await reader == [("p:a", 1)]
    ender = asyncio.ensure_future(anext(sub))
    await asyncio.sleep(0)
    sub.close()
    with pytest.raises(StopAsyncIteration):
        async with asyncio.timeout(WAIT):
            await ender
    assert closed == [sub]


@pytest.mark.parametrize("prefix", ["p:", None], ids=["prefix", "key"])
async def test_close_delivers_everything_queued_then_ends(prefix: str | None) -> None:
    """Closing a full subscription drops nothing: the end is not a queued item."""
    sub, closed = _sub(2, prefix=prefix)
    items = [("p:a", 1), ("p:b", 2)] if prefix else [1, 2]
    for item in items:
        sub.push(item)
    sub.close()
    sub.push(items[0])  # ignored once closed
    assert [item async for item in sub] == items
    assert closed == [sub] and not sub.overflowed


async def test_a_key_subscription_keeps_its_last_maxsize_values() -> None:
    """One key: every value up to ``maxsize`` (intermediate ones too), the oldest dropped
    past it, never an overflow (its latest value is always the last queued)."""
    sub, closed = _sub(3, prefix=None)
    for value in range(10):
        sub.push(value)
    assert await _drain(sub, 3) == [7, 8, 9]
    assert sub.dropped == 7 and not sub.overflowed and closed == []


async def test_a_burst_of_writes_does_not_end_a_prefix_subscription_that_keeps_up(
    tmp_path: Path,
) -> None:
    """One round changes 300 keys (a bulk write) while the reader waits for the next change:
    the subscription holds them all (by default up to 10,000 keys, or subscriber_queue if
    more), where a bound of 100 ended every prefix subscriber at each such burst."""
    async with await open_peer(tmp_path / "a.db", listen=None) as a:
        sub = a.subscribe(prefix="p:")
        reader = asyncio.ensure_future(_drain(sub, N))
        await asyncio.sleep(0)  # the reader waits for the first change
        await asyncio.gather(*(a.lww(f"p:{i:03d}").set(f"v{i}") for i in range(N)))
        got = dict(await asyncio.wait_for(reader, WAIT))
        assert got == {f"p:{i:03d}": f"v{i}" for i in range(N)} and not sub.overflowed
